//go:build cgo

package native

import (
	"context"
	"errors"
	"math/rand/v2"
	"path/filepath"
	"testing"
)

// sharedRun is a stage of a Shared with its inputs, outputs and tables.
type sharedRun struct {
	s           *Stage
	in, state   [][]float32
	logits      []float32
	index, band map[int][]int64
}

// loadShared loads the tiny-sparse bundle's plans into sh, with tables for a
// random half-computed mask (the values do not matter here), calling loaded
// (when not nil) after each.
func loadShared(t *testing.T, sh *Shared, loaded func(*sharedRun)) []sharedRun {
	t.Helper()
	height, width, stages := bundleStages(t, filepath.Join("..", "..", "testdata", "bundles", "tiny-sparse"))
	rng := rand.New(rand.NewPCG(21, 21))
	mask4 := make([]bool, (height/4)*(width/4))
	for i := range mask4 {
		mask4[i] = rng.Float64() < 0.5
	}
	var runs []sharedRun
	for _, st := range stages {
		s, err := sh.Load(st.plan, height, width)
		if err != nil {
			t.Fatal(err)
		}
		r := sharedRun{s: s}
		for _, id := range s.inIDs {
			r.in = append(r.in, make([]float32, s.size(id)))
		}
		for _, id := range s.stateIDs {
			r.state = append(r.state, make([]float32, s.size(id)))
		}
		r.logits = make([]float32, s.size(s.logitsID))
		r.index, r.band = tables(nestedMasks(mask4, height, width, s.Strides()), st.radii, height, width)
		if loaded != nil {
			loaded(&r)
		}
		runs = append(runs, r)
	}
	return runs
}

func (r *sharedRun) run() error {
	return r.s.Run(context.Background(), r.in, r.index, r.band, r.state, r.logits)
}

// TestSharedBuffers: each stage of a Shared runs as soon as it is loaded,
// before the next, larger, stage grows the buffers; after one more round
// every stage's maps lie in the Shared's buffers (the earlier stages
// rebound), the buffers are fewer bytes than the stages' own, and a round of
// all stages allocates nothing.
func TestSharedBuffers(t *testing.T) {
	sh, err := NewShared(2)
	if err != nil {
		t.Fatal(err)
	}
	defer sh.Close()
	sh.pool.macGrain, sh.pool.elementGrain = 1, 1
	runs := loadShared(t, sh, func(r *sharedRun) {
		if err := r.run(); err != nil {
			t.Fatal(err)
		}
	})
	var sum int64
	for _, r := range runs {
		if err := r.run(); err != nil {
			t.Fatal(err)
		}
		sum += r.s.bytes
	}
	for k, r := range runs {
		for id, b := range r.s.bufOf {
			if m := r.s.maps[id]; &m.Data[0] != &sh.bufs[b][0] {
				t.Errorf("stage %d: tensor %d is not in shared buffer %d", k, id, b)
			}
		}
	}
	if got := sh.Bytes(); got >= sum {
		t.Errorf("shared buffers hold %d bytes, want fewer than the stages' %d", got, sum)
	}
	t.Logf("shared buffers: %d bytes for stages of %d bytes in all", sh.Bytes(), sum)
	round := func() {
		for _, r := range runs {
			if err := r.run(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if n := testing.AllocsPerRun(10, round); n != 0 {
		t.Errorf("a round of the shared stages allocates %v times, want 0", n)
	}
}

// TestSharedClose: closing one stage leaves the others running; closing the
// Shared stops them all and refuses new loads.
func TestSharedClose(t *testing.T) {
	sh, err := NewShared(2)
	if err != nil {
		t.Fatal(err)
	}
	runs := loadShared(t, sh, nil)
	if err := runs[0].s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := runs[0].run(); !errors.Is(err, ErrClosed) {
		t.Errorf("Run of a closed stage: %v, want ErrClosed", err)
	}
	if err := runs[1].run(); err != nil {
		t.Errorf("Run of another stage of the Shared: %v", err)
	}
	if err := sh.Close(); err != nil {
		t.Fatal(err)
	}
	if err := runs[2].run(); !errors.Is(err, ErrClosed) {
		t.Errorf("Run after the Shared closed: %v, want ErrClosed", err)
	}
	if _, err := sh.Load(filepath.Join("..", "..", "testdata", "bundles", "tiny-sparse", "stage2.plan.json"), 64, 128); !errors.Is(err, ErrClosed) {
		t.Errorf("Load after the Shared closed: %v, want ErrClosed", err)
	}
	if err := sh.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := NewShared(0); err == nil {
		t.Error("NewShared(0) succeeded, want an error")
	}
}
