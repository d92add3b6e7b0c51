package source

import (
	"math/rand/v2"
	"time"
)

// DefaultStallAfter is how long a video or camera source may go without a
// frame before it is reported stalled, when Options.StallAfter is zero.
const DefaultStallAfter = 10 * time.Second

// Reopen backoff of network streams: the wait before attempt n is
// reopenMin·2^(n−1), at most reopenMax, less a random part of up to half
// (so that devices that lost one server do not all return at once).
const (
	reopenMin = 500 * time.Millisecond
	reopenMax = 30 * time.Second
)

// EventKind names what happened to a source.
type EventKind string

// Event kinds.
const (
	// EventStalled: no frame for Options.StallAfter. A network stream is
	// then reopened; any other source keeps waiting.
	EventStalled EventKind = "stalled"
	// EventLost: a network stream ended or its decoder failed (Err says
	// how); it is reopened.
	EventLost EventKind = "lost"
	// EventReopenFailed: reopen attempt Attempt failed (Err); the next
	// follows after a backoff.
	EventReopenFailed EventKind = "reopen-failed"
	// EventReopened: reopen attempt Attempt succeeded.
	EventReopened EventKind = "reopened"
	// EventResumed: a frame arrived after a stall or a loss.
	EventResumed EventKind = "resumed"
)

// Event is a change in a source's health, for the pipeline to turn into a
// log line, an MQTT event, the health state and a metric.
type Event struct {
	Kind EventKind
	// Source is the source's URI, redacted (see Redact).
	Source string
	// Silent is how long the source has gone without a frame.
	Silent time.Duration
	// Attempt counts reopen attempts since the last frame (reopen events).
	Attempt int
	// Err is the cause (lost, reopen-failed); its text is redacted.
	Err error
}

// Clock is the time a source measures silence and reopen backoff with.
// Options.Clock nil is the wall clock; tests inject a fake one.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type wallClock struct{}

func (wallClock) Now() time.Time                         { return time.Now() }
func (wallClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// backoff is the wait before reopen attempt n (1-based): min·2^(n−1), at
// most max, of which jitter() (in [0, 1)) takes away up to half.
func backoff(n int, jitter func() float64) time.Duration {
	d := reopenMin
	for i := 1; i < n && d < reopenMax; i++ {
		d *= 2
	}
	d = min(d, reopenMax)
	return d - time.Duration(jitter()*float64(d/2))
}

// defaultJitter is the jitter of real sources.
func defaultJitter() float64 { return rand.Float64() }
