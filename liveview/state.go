package liveview

import (
	"image"
	"sync"
	"time"

	"github.com/anytime-edge/edge/telemetry"
)

// Frame is what the page shows of one frame. Overlay is the frame with its
// result drawn over it; Thumbs holds one image per exit. Exits are the
// frame's exit records, the same as in its MQTT result.
type Frame struct {
	ID           uint64           `json:"id"`
	Source       string           `json:"source"`
	Captured     time.Time        `json:"captured"`
	Width        int              `json:"width"`
	Height       int              `json:"height"`
	Exits        []telemetry.Exit `json:"exits"`
	Halt         string           `json:"halt"`
	HaltExit     int              `json:"halt_exit"`
	EnergyMJ     float64          `json:"energy_mj"`
	EnergySource string           `json:"energy_source"`
	Error        string           `json:"error,omitempty"`

	Overlay image.Image   `json:"-"`
	Thumbs  []image.Image `json:"-"`
}

// Point is one sample of the charts.
type Point struct {
	T        time.Time `json:"t"`
	PowerW   *float64  `json:"power_w,omitempty"`
	TempC    *float64  `json:"temp_c,omitempty"`
	EnergyMJ *float64  `json:"energy_mj,omitempty"`
	Exit     int       `json:"exit,omitempty"`
}

// Counters are the pipeline's frame counts and the process's health.
type Counters struct {
	Processed uint64 `json:"processed"`
	Failed    uint64 `json:"failed"`
	Dropped   uint64 `json:"dropped"`
	// Goroutines is the process's goroutine count (a leak shows here).
	Goroutines int `json:"goroutines"`
}

// state is the latest frame, its encoded images and the chart history.
type state struct {
	mu       sync.Mutex
	seq      uint64
	frame    Frame
	overlay  []byte
	thumbs   [][]byte
	history  []Point
	keep     time.Duration
	counters Counters
}

// addPoint appends p and forgets points older than keep.
func (s *state) addPoint(p Point) {
	s.history = append(s.history, p)
	cut := 0
	for cut < len(s.history) && p.T.Sub(s.history[cut].T) > s.keep {
		cut++
	}
	if cut > 0 {
		s.history = append(s.history[:0], s.history[cut:]...)
	}
}
