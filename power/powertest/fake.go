package powertest

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/anytime-edge/edge/power"
)

// Sampler returns Readings in order, repeating the last one; with none it
// returns an empty reading from SourceEstimate. Err, when set, is returned
// instead. Safe for concurrent use.
type Sampler struct {
	mu       sync.Mutex
	Readings []power.Reading
	Err      error
	next     int
	closed   atomic.Bool
	calls    atomic.Int64
}

// Sample implements power.Sampler.
func (s *Sampler) Sample(ctx context.Context) (power.Reading, error) {
	if err := ctx.Err(); err != nil {
		return power.Reading{}, err
	}
	s.calls.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.Err != nil {
		return power.Reading{}, s.Err
	}
	if len(s.Readings) == 0 {
		return power.Reading{Source: power.SourceEstimate}, nil
	}
	r := s.Readings[min(s.next, len(s.Readings)-1)]
	s.next++
	return r, nil
}

// Close implements power.Sampler.
func (s *Sampler) Close() error {
	s.closed.Store(true)
	return nil
}

// Closed reports whether Close was called.
func (s *Sampler) Closed() bool { return s.closed.Load() }

// Calls is how many times Sample was called (with a live context).
func (s *Sampler) Calls() int { return int(s.calls.Load()) }

// Latest is a power.Latest that returns R; a zero R is "no reading yet".
type Latest struct{ R power.Reading }

// Latest implements power.Latest.
func (l Latest) Latest() (power.Reading, bool) { return l.R, !l.R.Time.IsZero() || len(l.R.Temps) > 0 }

// Hot returns a Latest reporting one zone at c °C, throttled or not.
func Hot(c float64, throttled bool) Latest {
	r := power.Reading{Source: power.SourceSim, Temps: []power.Temp{{Zone: "tj", C: c, Source: power.SourceSim}}}
	if throttled {
		r.Throttle = &power.Throttle{Active: true, Thermal: true, Source: power.SourceSim}
	}
	return Latest{R: r}
}

// Meter attributes W watts of constant power to every stage, plus
// JoulesPerGMAC of its work, marked with Source (SourceSim if empty).
type Meter struct {
	W             float64
	JoulesPerGMAC float64
	Source        power.Source
}

// StageEnergy implements the executor's Meter.
func (m Meter) StageEnergy(start, end time.Time, gmacs float64) (float64, power.Source, bool) {
	if end.Before(start) {
		return 0, "", false
	}
	src := m.Source
	if src == "" {
		src = power.SourceSim
	}
	return m.W*end.Sub(start).Seconds() + m.JoulesPerGMAC*gmacs, src, true
}
