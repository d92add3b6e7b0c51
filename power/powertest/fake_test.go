package powertest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/anytime-edge/edge/power"
)

func TestSamplerScript(t *testing.T) {
	s := &Sampler{Readings: []power.Reading{{Mode: "a"}, {Mode: "b"}}}
	var got []string
	for i := 0; i < 3; i++ {
		r, err := s.Sample(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, r.Mode)
	}
	if want := "a b b"; got[0]+" "+got[1]+" "+got[2] != want {
		t.Errorf("modes %v, want %s (the last repeats)", got, want)
	}
	s.Err = errors.New("gone")
	if _, err := s.Sample(context.Background()); err == nil || s.Calls() != 4 {
		t.Errorf("Sample with Err set = %v after %d calls", err, s.Calls())
	}
	s.Close()
	if !s.Closed() {
		t.Error("Closed = false after Close")
	}
}

func TestMeterAndHot(t *testing.T) {
	t0 := time.Unix(0, 0)
	j, src, ok := Meter{W: 2, JoulesPerGMAC: 0.5}.StageEnergy(t0, t0.Add(time.Second), 4)
	if !ok || src != power.SourceSim || j != 4 {
		t.Errorf("StageEnergy = %v %q %v, want 4 J from sim", j, src, ok)
	}
	if _, _, ok := (Meter{}).StageEnergy(t0.Add(time.Second), t0, 1); ok {
		t.Error("StageEnergy with end before start: ok")
	}
	r, ok := Hot(91, true).Latest()
	if c, _, _ := r.HottestC(); !ok || c != 91 || !r.Throttle.Thermal {
		t.Errorf("Hot(91, true) = %+v, %v", r, ok)
	}
	if _, ok := (Latest{}).Latest(); ok {
		t.Error("zero Latest reports a reading")
	}
}
