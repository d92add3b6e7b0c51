package telemetry

import (
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/anytime-edge/edge/telemetry/mqtt"
	"github.com/anytime-edge/edge/telemetry/spool"
)

// failurePause is how long the sender waits after a failed publish on a
// connection that stays up before it resends from the oldest record.
const failurePause = 2 * time.Second

// ackTimeout is how long a message may await its PUBACK before the sender
// gives up on the connection's window and resends from the oldest record.
const ackTimeout = 30 * time.Second

// dropEventEvery limits spool-dropped events.
const dropEventEvery = 10 * time.Second

// senderTick is how often the sender looks at the clock (age bound, ack
// timeouts, the pause after a failure) when nothing else wakes it.
const senderTick = 100 * time.Millisecond

// flight is a message awaiting its PUBACK.
type flight struct {
	id     uint64
	epoch  uint64
	tok    mqtt.Token
	sent   time.Time
	replay bool
	live   time.Time // append time, for the delay histogram
}

// sender publishes spooled records in order with a window of in-flight
// messages. A record is acknowledged in the spool only when its token
// completed without error and the connection epoch is the one it was sent
// on; anything else makes the sender start again from the oldest record on
// the next connection (duplicates are possible, loss is not).
//
// Its state is owned by the goroutine running run; wake, drain and stop
// are how other goroutines reach it.
type sender struct {
	spool    *spool.Spool
	client   transport
	log      *slog.Logger
	m        *metrics
	inFlight int
	// reportDrops publishes event/spool-dropped with the spool's counters
	// and the drops new since the last report.
	reportDrops func(st spool.Stats, since uint64)
	// now is the clock (time.Now; tests inject their own).
	now func() time.Time
	// onPass, when set (tests), is called at the end of every pass of the
	// loop: a test that changed something waits for two passes to know
	// that one saw the change.
	onPass func()

	wake     chan struct{}   // spool has new durable records
	stop     <-chan struct{} // closed to stop run
	drained  chan struct{}   // run signals an empty spool after drainReq
	drainReq atomic.Bool

	window     []flight
	next       uint64 // next id to read; 0: the oldest record
	sentMax    uint64 // highest id ever sent by this process
	epoch      uint64
	epochStart time.Time
	// After a failure the sender stops publishing on that connection
	// (until the epoch changes, or for failurePause when the connection
	// stays up): once paho has failed one publish, anything published
	// after it could be stored and resumed ahead of the failed one's
	// resend, out of order.
	brokenEpoch   uint64
	pauseUntil    time.Time
	lastExpire    time.Time
	reportedDrops uint64
	lastDropEvent time.Time
	acks          []uint64
}

// newSender makes a sender of sp's records over client; run returns when
// stop is closed.
func newSender(sp *spool.Spool, client transport, m *metrics, inFlight int, stop chan struct{}, log *slog.Logger) *sender {
	return &sender{
		spool: sp, client: client, m: m, inFlight: inFlight, log: log, now: time.Now,
		wake: make(chan struct{}, 1), stop: stop, drained: make(chan struct{}, 1),
	}
}

// notify tells the sender that the spool has new records; it never blocks.
func (s *sender) notify() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// run is the sender's loop; it returns when stop is closed.
func (s *sender) run() {
	tick := time.NewTicker(senderTick)
	defer tick.Stop()
	s.lastExpire = s.now()
	for {
		up := s.pass()
		if s.onPass != nil {
			s.onPass()
		}
		// Wait for something to do.
		var front <-chan struct{}
		if len(s.window) > 0 {
			front = s.window[0].tok.Done()
		}
		var upCh <-chan struct{}
		if !up {
			upCh = s.client.Up()
		}
		select {
		case <-s.stop:
			return
		case <-front:
		case <-upCh:
		case <-s.wake:
		case <-tick.C:
		}
	}
}

// pass does one round of work: enforce the age bound, follow the
// connection, settle completed flights, fill the window. It reports
// whether the connection is up.
func (s *sender) pass() (up bool) {
	s.expire()
	e, up := s.client.Epoch()
	if e != s.epoch {
		// A new connection, or the old one lost: no token of the old
		// window can prove delivery any more (paho completes them early
		// when it resumes the session and resends its stored copies
		// itself). Start again from the oldest record; duplicates are
		// fine. Order holds: a record missing from paho's store was
		// PUBACKed or never stored (see brokenEpoch).
		s.reset()
		s.epoch, s.epochStart = e, s.now()
	}
	if s.settle() {
		s.reset()
		s.brokenEpoch, s.pauseUntil = s.epoch, s.now().Add(failurePause)
	}
	paused := s.epoch == s.brokenEpoch && s.now().Before(s.pauseUntil)
	if up && !paused && len(s.window) < s.inFlight {
		s.fill()
	}
	if s.drainReq.Load() && len(s.window) == 0 && s.spool.Stats().Records == 0 {
		select {
		case s.drained <- struct{}{}:
		default:
		}
	}
	return up
}

func (s *sender) reset() {
	s.window = s.window[:0]
	s.next = 0
}

// expire applies the spool's age bound once a second and reports drops
// (at most one event per dropEventEvery).
func (s *sender) expire() {
	now := s.now()
	if now.Sub(s.lastExpire) <= time.Second {
		return
	}
	if n := s.spool.Expire(); n > 0 {
		s.log.Warn("dropped spooled messages older than the age bound", "count", n)
	}
	s.lastExpire = now
	if st := s.spool.Stats(); st.Dropped > s.reportedDrops && now.Sub(s.lastDropEvent) >= dropEventEvery {
		if s.reportDrops != nil {
			s.reportDrops(st, st.Dropped-s.reportedDrops)
		}
		s.reportedDrops, s.lastDropEvent = st.Dropped, now
	}
}

// settle acknowledges completed flights in order and reports whether one
// failed (error, other connection, or no PUBACK within ackTimeout).
func (s *sender) settle() (failed bool) {
	s.acks = s.acks[:0]
	for len(s.window) > 0 {
		f := s.window[0]
		if !isDone(f.tok) {
			if s.now().Sub(f.sent) > ackTimeout {
				s.log.Warn("no PUBACK in time; resending from the oldest spooled message", "id", f.id)
				failed = true
			}
			break
		}
		cur, _ := s.client.Epoch()
		if err := f.tok.Error(); err != nil || cur != f.epoch {
			s.log.Debug("publish not acknowledged on its connection; will resend", "id", f.id, "err", err)
			failed = true
			break
		}
		s.acks = append(s.acks, f.id)
		s.m.published.WithLabelValues(fmt.Sprint(f.replay)).Inc()
		if !f.replay {
			s.m.publishDelay.Observe(s.now().Sub(f.live).Seconds())
		}
		s.window = s.window[1:]
	}
	if len(s.acks) > 0 {
		if err := s.spool.Ack(s.acks...); err != nil {
			s.log.Error("spool ack failed", "err", err)
		}
	}
	return failed
}

// fill publishes the next spooled records until the window is full.
func (s *sender) fill() {
	if s.next == 0 {
		s.next = s.spool.Oldest()
	}
	recs, err := s.spool.Read(s.next, s.inFlight-len(s.window))
	if err != nil {
		s.log.Error("spool read failed", "err", err)
	}
	for _, r := range recs {
		replay := r.Recovered || r.ID <= s.sentMax || r.Time.Before(s.epochStart)
		payload := r.Payload
		if replay && r.QoS > 0 && len(payload) > 1 && payload[0] == '{' && payload[len(payload)-1] == '}' {
			payload = markReplay(payload)
		}
		tok := s.client.Publish(mqtt.Message{Topic: r.Topic, QoS: r.QoS, Payload: payload})
		s.window = append(s.window, flight{id: r.ID, epoch: s.epoch, tok: tok, sent: s.now(), replay: replay, live: r.Time})
		s.next = r.ID + 1
		s.sentMax = max(s.sentMax, r.ID)
		if isDone(tok) && tok.Error() != nil {
			break // failed at once (not connected): publish nothing after it
		}
	}
}

func isDone(t mqtt.Token) bool {
	select {
	case <-t.Done():
		return true
	default:
		return false
	}
}

// markReplay adds "replay":true at the end of a JSON object.
func markReplay(obj []byte) []byte {
	out := make([]byte, 0, len(obj)+15)
	out = append(out, obj[:len(obj)-1]...)
	if strings.TrimSpace(string(obj[1:len(obj)-1])) != "" {
		out = append(out, ',')
	}
	out = append(out, `"replay":true}`...)
	return out
}
