package sink

import (
	"context"
	"encoding/json"
	"image"
	"runtime"
	"time"

	"github.com/anytime-edge/edge/imaging"
	"github.com/anytime-edge/edge/liveview"
	"github.com/anytime-edge/edge/pipeline"
	"github.com/anytime-edge/edge/telemetry"
)

// liveEvery is the least time between two frames handed to the page.
const liveEvery = 200 * time.Millisecond

// Live feeds the live view: a chart point per frame, and at most every
// liveEvery the frame itself with its overlay and one thumbnail per exit
// (the exit's labels or heat, with the pixels it did not compute greyed).
type Live struct {
	srv      *liveview.Server
	readings Readings
	stats    func() pipeline.Stats
	last     time.Time
}

// NewLive makes the live view's output. readings gives the power and
// temperature charts; stats the frame counters.
func NewLive(srv *liveview.Server, readings Readings, stats func() pipeline.Stats) *Live {
	return &Live{srv: srv, readings: readings, stats: stats}
}

func (l *Live) exit(*view) error { return nil }

func (l *Live) frame(v *view) error {
	var energyMJ float64
	var src string
	for _, e := range v.exits {
		energyMJ += e.MJ
		if e.EnergySource != "" {
			src = string(e.EnergySource)
		}
	}
	pt := liveview.Point{T: time.Now(), Exit: len(v.exits)}
	if v.err == nil {
		pt.EnergyMJ = &energyMJ
	}
	if r, ok := l.readings.Latest(); ok {
		if r.TotalW.OK() {
			w := r.TotalW.V
			pt.PowerW = &w
		}
		if c, _, ok := r.HottestC(); ok {
			pt.TempC = &c
		}
	}
	l.srv.Point(pt)
	if v.err == nil && time.Since(l.last) < liveEvery {
		return nil
	}
	l.last = time.Now()
	f := liveview.Frame{
		ID: v.frame.ID, Source: v.frame.Source, Captured: v.frame.Captured,
		HaltExit: len(v.exits), EnergyMJ: energyMJ, EnergySource: src,
		Exits: append(v.exits[:0:0], v.exits...),
	}
	if v.result != nil {
		f.Halt = string(v.result.Halt)
	}
	if v.frame.Image != nil {
		f.Width, f.Height = v.frame.Image.Rect.Dx(), v.frame.Image.Rect.Dy()
	}
	if v.err != nil {
		f.Error = v.err.Error()
	} else if img := v.overlayImage(); img != nil {
		f.Overlay = img
	}
	for i := range v.exits {
		var computed []uint8 // the pixels exit i+1's stage computed: the mask before it
		if i > 0 {
			computed = v.masks[i-1]
		}
		var thumb image.Image
		if v.pose != nil {
			thumb = imaging.HeatThumbnail(v.peaks[i], computed, v.h, v.w)
		} else {
			thumb = imaging.ExitThumbnail(v.labels[i], computed, v.h, v.w, v.pal)
		}
		f.Thumbs = append(f.Thumbs, thumb)
	}
	st := l.stats()
	l.srv.Publish(f, liveview.Counters{Processed: st.Processed, Failed: st.Failed, Dropped: st.Dropped, Goroutines: runtime.NumGoroutine()})
	return nil
}

// Commander is what the live view's controls need: telemetry.Publisher's
// Command, the one path every command takes.
type Commander interface {
	Command(ctx context.Context, name string, payload []byte) telemetry.CmdAck
}

// LiveCommands runs the live view's controls through c and answers with
// the acknowledgement (also published on cmd-ack). It implements
// liveview.Commands.
type LiveCommands struct{ C Commander }

// Command implements liveview.Commands.
func (l LiveCommands) Command(ctx context.Context, name string, payload []byte) ([]byte, error) {
	return json.Marshal(l.C.Command(ctx, name, payload))
}
