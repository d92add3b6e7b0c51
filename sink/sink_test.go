package sink

import (
	"context"
	"encoding/json"
	"image"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anytime-edge/edge/anytime"
	"github.com/anytime-edge/edge/bundle"
	"github.com/anytime-edge/edge/engines/enginestest"
	"github.com/anytime-edge/edge/masking"
	"github.com/anytime-edge/edge/pipeline"
	"github.com/anytime-edge/edge/source"
	"github.com/anytime-edge/edge/telemetry"
)

const (
	testChannels = 4
	testH, testW = 32, 64 // input; the output is 8×16 at stride 4
	outH, outW   = 8, 16
)

// fixedMACs and maskedMACs are each stage's fixed and masked MACs; the
// masked convolutions run at the output's resolution, so the fraction they
// compute is exactly the fraction of ones in the mask a stage is fed.
const (
	fixedMACs  = 1 << 30
	maskedMACs = 3 << 30
	outChans   = 8
)

// testBundle is a 3-stage segmentation bundle: a dense first stage, then
// masked stages, and labels of distinct colours.
func testBundle() *bundle.Bundle {
	b := enginestest.Bundle(enginestest.BundleSpec{
		Name: "sinktest", H: testH, W: testW, Labels: testChannels, Stages: 3, Threshold: 0.7, FixedMACs: fixedMACs,
		MaskedMACs: map[string]bundle.MaskedMACs{"4": {MACs: maskedMACs, OutChannels: outChans}},
	})
	for c := range b.Labels {
		b.Labels[c].Color = [3]uint8{uint8(60 * c), 0, 0}
	}
	b.SHA256 = strings.Repeat("ab", 32)
	return b
}

// frames is a finite source of n images.
type frames struct{ n, next int }

func (f *frames) Next(ctx context.Context) (source.Frame, error) {
	if f.next >= f.n {
		return source.Frame{}, io.EOF
	}
	f.next++
	img := image.NewRGBA(image.Rect(0, 0, 2*testW, 2*testH))
	for i := range img.Pix {
		img.Pix[i] = uint8(i * f.next)
	}
	return source.Frame{ID: uint64(f.next), Source: "cam0", Captured: time.Now(), Image: img}, nil
}

func (f *frames) Close() error { return nil }

// published is what a fakePublisher received.
type published struct {
	results []*telemetry.Result
	events  []*telemetry.Event
	labels  []labelsCall
}

type labelsCall struct {
	frame   uint64
	durable bool
}

type fakePublisher struct {
	mu sync.Mutex
	published
}

func (p *fakePublisher) Publish(_ context.Context, m telemetry.Message) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch v := m.(type) {
	case *telemetry.Result:
		p.results = append(p.results, v)
	case *telemetry.Event:
		p.events = append(p.events, v)
	}
	return nil
}

func (p *fakePublisher) PublishLabels(_ context.Context, frame uint64, _ time.Time, png []byte, durable bool) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.labels = append(p.labels, labelsCall{frame, durable})
	return nil
}

// run runs n frames of b through a real executor on a fake engine (seeded
// random logits, sharper with depth) and the pipeline into outs. It
// returns the fraction of ones in the mask each stage after the first was
// fed, per frame, as the engine saw it.
func run(t *testing.T, b *bundle.Bundle, n int, outs ...Output) (*Set, [][]float64) {
	t.Helper()
	fake := enginestest.NewFake(len(b.Stages), 3*testH*testW, testChannels, outH*outW)
	var fed [][]float64
	fake.Compute = func(i int, _, mask, logits []float32) error {
		if i == 0 {
			fed = append(fed, []float64{1})
		} else {
			ones := 0
			for _, m := range mask {
				if m != 0 {
					ones++
				}
			}
			fed[len(fed)-1] = append(fed[len(fed)-1], float64(ones)/float64(len(mask)))
		}
		r := rand.New(rand.NewPCG(uint64(len(fed)), uint64(i)))
		for k := range logits {
			logits[k] = float32(r.NormFloat64() * float64(1+2*i))
		}
		return nil
	}
	var p *pipeline.Pipeline
	x, err := anytime.New(b, fake, anytime.Config{OnExit: func(e anytime.Exit, merged []float32, mask []uint8) { p.OnExit(e, merged, mask) }})
	if err != nil {
		t.Fatal(err)
	}
	set := New(b, Options{}, outs...)
	p = pipeline.New(&frames{n: n}, []pipeline.Sink{set}, pipeline.Options{}, slog.New(slog.DiscardHandler))
	if err := p.Run(context.Background(), x, pipeline.Preprocess(b.Input)); err != nil {
		t.Fatal(err)
	}
	return set, fed
}

// TestPublishedExitsFollowTheContract: every exit record of a published
// result says what telemetry.Exit documents — frozen is the fraction of
// pixels the stage did not compute (one minus the fraction of the mask it
// was fed), gmacs the frame's cumulative effective GMACs up to that exit —
// and the summary file carries the same records.
func TestPublishedExitsFollowTheContract(t *testing.T) {
	b := testBundle()
	pub := &fakePublisher{}
	dir := t.TempDir()
	files, err := NewFiles(FilesOptions{Dir: dir, Summaries: true})
	if err != nil {
		t.Fatal(err)
	}
	_, fed := run(t, b, 3, NewResults(pub, ResultsOptions{}), files)
	if len(pub.results) != 3 || len(fed) != 3 {
		t.Fatalf("%d results for %d frames, want 3", len(pub.results), len(fed))
	}
	masked := masking.MaskedConvs{Height: outH, Width: outW, MACs: maskedMACs, OutChannels: outChans}
	someSkipped := false
	for f, res := range pub.results {
		if len(res.Exits) != len(fed[f]) {
			t.Fatalf("frame %d: %d exits published, the engine ran %d stages", f+1, len(res.Exits), len(fed[f]))
		}
		var cumulative float64
		for k, e := range res.Exits {
			active := fed[f][k]
			stage := float64(fixedMACs)
			if k > 0 {
				stage += masked.Effective(active)
			}
			cumulative += stage / (1 << 30)
			if math.Abs(e.Frozen-(1-active)) > 1e-12 {
				t.Errorf("frame %d exit %d: frozen %v, want %v (the stage was fed %v of the pixels)", f+1, e.Exit, e.Frozen, 1-active, active)
			}
			if math.Abs(e.GMACs-cumulative) > 1e-9 {
				t.Errorf("frame %d exit %d: gmacs %v, want the cumulative %v", f+1, e.Exit, e.GMACs, cumulative)
			}
			if want := map[bool]string{true: "dense", false: "masked"}[k == 0]; e.Ran != want || e.Provider != "fake" {
				t.Errorf("frame %d exit %d: ran %q on %q, want %q on fake", f+1, e.Exit, e.Ran, e.Provider, want)
			}
			someSkipped = someSkipped || e.Frozen > 0
		}
		raw, err := os.ReadFile(filepath.Join(dir, "frame00000"+string(rune('1'+f))+".json"))
		if err != nil {
			t.Fatal(err)
		}
		var s Summary
		if err := json.Unmarshal(raw, &s); err != nil {
			t.Fatal(err)
		}
		if len(s.Exits) != len(res.Exits) {
			t.Fatalf("summary of frame %d has %d exits, the result %d", f+1, len(s.Exits), len(res.Exits))
		}
		for k := range s.Exits {
			if s.Exits[k] != res.Exits[k] {
				t.Errorf("frame %d exit %d: summary %+v, result %+v", f+1, k+1, s.Exits[k], res.Exits[k])
			}
		}
	}
	if !someSkipped {
		t.Fatal("no stage skipped any pixel: the test would not tell frozen's meanings apart")
	}
}

// TestSnapshotPublishesTheNextFrameInFull: after a snapshot command the
// next frame's label map is published durably and event/snapshot names
// it; the frames after it are back to normal.
func TestSnapshotPublishesTheNextFrameInFull(t *testing.T) {
	b := testBundle()
	pub := &fakePublisher{}
	ctrl := &Control{}
	if err := ctrl.Snapshot(context.Background()); err != nil {
		t.Fatal(err)
	}
	run(t, b, 3, NewResults(pub, ResultsOptions{Snapshot: ctrl.TakeSnapshot}))
	want := []labelsCall{{1, true}, {2, false}, {3, false}}
	if len(pub.labels) != len(want) {
		t.Fatalf("label maps %+v, want %+v", pub.labels, want)
	}
	for i := range want {
		if pub.labels[i] != want[i] {
			t.Errorf("label map %d: %+v, want %+v", i, pub.labels[i], want[i])
		}
	}
	var snaps []string
	for _, e := range pub.events {
		if e.Kind == "snapshot" {
			snaps = append(snaps, e.Data["frame"])
		}
	}
	if len(snaps) != 1 || snaps[0] != "1" {
		t.Fatalf("snapshot events for frames %v, want frame 1 only", snaps)
	}
}

// TestNamesRefuseCollisions: two inputs whose files would have the same
// names are refused, naming both; distinct ones are named by their stem.
func TestNamesRefuseCollisions(t *testing.T) {
	for _, paths := range [][]string{{"a/x.png", "b/x.png"}, {"x.png", "x.jpg"}, {"cam/x.npy", "y.png", "x.png"}} {
		_, err := Names(paths)
		if err == nil {
			t.Errorf("%v: accepted", paths)
			continue
		}
		for _, p := range paths {
			if strings.Contains(filepath.Base(p), "x.") && !strings.Contains(err.Error(), p) {
				t.Errorf("%v: error %q does not name %s", paths, err, p)
			}
		}
	}
	name, err := Names([]string{"a/x.png", "b/y.png"})
	if err != nil {
		t.Fatal(err)
	}
	if got := name(&source.Frame{Source: "b/y.png"}); got != "y" {
		t.Errorf("name of b/y.png = %q, want y", got)
	}
}
