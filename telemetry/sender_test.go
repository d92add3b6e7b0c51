package telemetry

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anytime-edge/edge/telemetry/mqtt"
	"github.com/anytime-edge/edge/telemetry/spool"
)

// fakeToken is completed by the test.
type fakeToken struct {
	done chan struct{}
	err  error
}

func (t *fakeToken) Done() <-chan struct{} { return t.done }
func (t *fakeToken) Error() error          { return t.err }

type sent struct {
	msg mqtt.Message
	tok *fakeToken
}

// fakeTransport lets a test drive connection epochs and token completion,
// the way paho behaves when it resumes a session.
type fakeTransport struct {
	mu    sync.Mutex
	epoch uint64
	up    bool
	upCh  chan struct{}
	sent  []sent
}

func newFakeTransport() *fakeTransport { return &fakeTransport{upCh: make(chan struct{})} }

func (f *fakeTransport) Start()                                     {}
func (f *fakeTransport) WaitConnected(context.Context) error        { return nil }
func (f *fakeTransport) Reconnects() uint64                         { return 0 }
func (f *fakeTransport) Close(context.Context, time.Duration) error { return nil }

func (f *fakeTransport) Epoch() (uint64, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.epoch, f.up
}

// EverUp is true once the fake has been up; the sender tests start it up.
func (f *fakeTransport) EverUp() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.epoch > 0
}

func (f *fakeTransport) Up() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.upCh
}

func (f *fakeTransport) Publish(m mqtt.Message) mqtt.Token {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := &fakeToken{done: make(chan struct{})}
	switch {
	case !f.up:
		t.err = mqtt.ErrNotConnected
		close(t.done)
	case !strings.HasSuffix(m.Topic, "/result"):
		close(t.done) // only results are driven by the test
	}
	f.sent = append(f.sent, sent{m, t})
	return t
}

func (f *fakeTransport) setUp(up bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.epoch++
	if up && !f.up {
		close(f.upCh)
	}
	if !up && f.up {
		f.upCh = make(chan struct{})
	}
	f.up = up
}

// results returns the result publishes so far.
func (f *fakeTransport) results() []sent {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []sent
	for _, s := range f.sent {
		if strings.HasSuffix(s.msg.Topic, "/result") {
			out = append(out, s)
		}
	}
	return out
}

// TestEarlyTokenCompletionKeepsRecords: a token that completes without
// error after its connection was lost (paho's resume does this before any
// PUBACK) must not remove the record; a token completed on its own
// connection must.
func TestEarlyTokenCompletionKeepsRecords(t *testing.T) {
	ft := newFakeTransport()
	cfg := testConfig(t, "tcp://127.0.0.1:1")
	cfg.newTransport = func(mqtt.Config) (transport, error) { return ft, nil }
	passes := make(chan struct{}, 1024)
	cfg.onSenderPass = func() {
		select {
		case passes <- struct{}{}:
		default:
		}
	}
	log, _ := testLogger()
	p, err := New(context.Background(), cfg, nil, log)
	if err != nil {
		t.Fatal(err)
	}
	defer closePublisher(t, p)
	ft.setUp(true)
	for i := 1; i <= 5; i++ {
		if err := p.Publish(context.Background(), sampleResult(uint64(i))); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 5*time.Second, "5 results sent", func() bool { return len(ft.results()) == 5 })

	// Positive control: the first two are acknowledged on their connection.
	first := ft.results()
	close(first[0].tok.done)
	close(first[1].tok.done)
	waitFor(t, 5*time.Second, "2 records removed", func() bool { return p.spool.Stats().Records == 3 })

	// The connection drops; then paho's resume completes the other three
	// tokens without error, before any PUBACK.
	ft.setUp(false)
	for _, s := range first[2:] {
		close(s.tok.done)
	}
	// The pass under way may have begun before the completions; the one
	// after it has seen them.
	drain(passes)
	waitPasses(t, passes, 2)
	if n := p.spool.Stats().Records; n != 3 {
		t.Fatalf("spool holds %d records after early token completions, want 3", n)
	}
	// On the next connection the three are sent again, marked replay, and
	// removed once acknowledged there.
	ft.setUp(true)
	waitFor(t, 5*time.Second, "3 resends", func() bool { return len(ft.results()) == 8 })
	for i, s := range ft.results()[5:] {
		if !strings.Contains(string(s.msg.Payload), `"frame":{"id":`+string(rune('3'+i))+`,`) || !strings.HasSuffix(string(s.msg.Payload), `,"replay":true}`) {
			t.Fatalf("resend %d = %s, want frame %d with replay:true", i, s.msg.Payload, 3+i)
		}
		close(s.tok.done)
	}
	waitFor(t, 5*time.Second, "spool empty", func() bool { return p.spool.Stats().Records == 0 })
}

// drain empties a pass channel.
func drain(ch chan struct{}) {
	for {
		select {
		case <-ch:
		default:
			return
		}
	}
}

// waitPasses waits for n passes of the sender's loop.
func waitPasses(t *testing.T, ch chan struct{}, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		select {
		case <-ch:
		case <-time.After(5 * time.Second):
			t.Fatalf("the sender made %d passes in 5 s, want %d", i, n)
		}
	}
}

// TestSenderResendsAfterAckTimeout drives the sender pass by pass on an
// injected clock: a message without a PUBACK for ackTimeout makes it give
// up the window, pause for failurePause on that connection, then resend
// from the oldest unacknowledged record, marked replay.
func TestSenderResendsAfterAckTimeout(t *testing.T) {
	log, _ := testLogger()
	sp, err := spool.Open(t.TempDir(), spool.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	for i := 1; i <= 3; i++ {
		if _, err := sp.Append("anytime/v1/lab/drone-7/result", 1, []byte(fmt.Sprintf(`{"frame":%d}`, i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := sp.Sync(); err != nil {
		t.Fatal(err)
	}
	ft := newFakeTransport()
	ft.setUp(true)
	s := newSender(sp, ft, newMetrics(&Publisher{spool: sp, client: ft}), 2, make(chan struct{}), log)
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	s.now = func() time.Time { return now }
	payloads := func() []string {
		var out []string
		for _, r := range ft.results() {
			out = append(out, string(r.msg.Payload))
		}
		return out
	}
	step := func(what string, want ...string) {
		t.Helper()
		s.pass()
		if got := payloads(); strings.Join(got, " ") != strings.Join(want, " ") {
			t.Fatalf("%s: sent %v, want %v", what, got, want)
		}
	}
	step("first pass fills the window of 2", `{"frame":1}`, `{"frame":2}`)
	close(ft.results()[0].tok.done)
	step("frame 1 acknowledged, frame 3 sent", `{"frame":1}`, `{"frame":2}`, `{"frame":3}`)
	if n := sp.Stats().Records; n != 2 {
		t.Fatalf("spool holds %d records, want 2", n)
	}
	now = now.Add(ackTimeout - time.Second)
	step("still within the ack timeout", `{"frame":1}`, `{"frame":2}`, `{"frame":3}`)
	now = now.Add(2 * time.Second)
	step("ack timeout: the window is given up and the sender pauses", `{"frame":1}`, `{"frame":2}`, `{"frame":3}`)
	now = now.Add(failurePause + time.Millisecond)
	step("after the pause: resent from the oldest", `{"frame":1}`, `{"frame":2}`, `{"frame":3}`, `{"frame":2,"replay":true}`, `{"frame":3,"replay":true}`)
	if n := sp.Stats().Records; n != 2 {
		t.Fatalf("spool holds %d records, want 2 (nothing acknowledged)", n)
	}
}
