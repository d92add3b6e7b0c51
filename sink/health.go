package sink

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/anytime-edge/edge/power"
	"github.com/anytime-edge/edge/telemetry"
)

// Readings is what Health and Live need of power.Recorder.
type Readings interface {
	Latest() (power.Reading, bool)
}

// Health publishes a telemetry message every period until ctx ends, and
// event/thermal-throttle when throttling starts or stops. stats returns
// the frame rate and the frames dropped so far.
func Health(ctx context.Context, pub Publisher, period time.Duration, rec Readings, stats func() (fps float64, drops uint64), log *slog.Logger) {
	t := time.NewTicker(period)
	defer t.Stop()
	throttled := false
	var lastEnergy float64
	var lastAt time.Time
	publish := func(m telemetry.Message) {
		if err := pub.Publish(ctx, m); err != nil {
			log.Warn("publish", "err", err)
		}
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		m := &telemetry.Telemetry{TempsC: map[string]float64{}}
		m.FPS, m.FrameDrops = stats()
		if r, ok := rec.Latest(); ok {
			m.PowerW, m.PowerSource = r.TotalW.V, r.TotalW.Source
			for _, tz := range r.Temps {
				m.TempsC[tz.Zone] = tz.C
				m.TempSource = tz.Source
			}
			if r.EnergyJ.OK() {
				if !lastAt.IsZero() {
					m.EnergyMJ = (r.EnergyJ.V - lastEnergy) * 1000
				}
				lastEnergy, lastAt = r.EnergyJ.V, r.Time
			}
			if active := r.Throttle != nil && r.Throttle.Active; active != throttled {
				throttled = active
				state := "left"
				if active {
					state = "entered"
				}
				publish(&telemetry.Event{Kind: "thermal-throttle", Message: "throttling " + state,
					Data: map[string]string{"reasons": strings.Join(r.Throttle.Reasons, ",")}})
			}
			m.Throttled = throttled
		}
		publish(m)
	}
}
