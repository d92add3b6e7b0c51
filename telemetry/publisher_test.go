package telemetry

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/anytime-edge/edge/telemetry/broker"
)

func startBroker(t testing.TB, addr string) *broker.Broker {
	return startTapped(t, addr, nil)
}

// startTapped starts a broker whose accepted publishes go to col.
func startTapped(t testing.TB, addr string, col *collector) *broker.Broker {
	t.Helper()
	log, _ := testLogger()
	cfg := broker.Config{Listen: addr, Log: log}
	if col != nil {
		cfg.Tap = col.tap
	}
	b, err := broker.Start(cfg)
	if err != nil {
		t.Fatalf("start broker: %v", err)
	}
	return b
}

// TestBrokerRestartNoLoss streams 2,000 results while the broker is stopped
// and started again; after de-duplication every result arrives, in order.
func TestBrokerRestartNoLoss(t *testing.T) {
	const n = 2000
	var col collector
	b := startTapped(t, "127.0.0.1:0", &col)
	addr := b.Addr()
	defer func() { b.Close() }()
	log, lb := testLogger()
	defer func() {
		if t.Failed() {
			t.Log(lb.String())
		}
	}()
	p := connectedPublisher(t, b.URL(), nil, log)
	defer closePublisher(t, p)
	publishThroughOutage(t, p, n, func() {
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
	}, func() { b = startTapped(t, addr, &col) })
	got := allInOrder(t, &col, n)
	replays := 0
	for _, r := range got {
		if r.Replay {
			replays++
		}
	}
	if replays == 0 {
		t.Error("no result was marked replay:true although the broker was down for 600 of them")
	}
	if c := p.client.Reconnects(); c == 0 {
		t.Error("Reconnects = 0 after a broker restart")
	}
}

// publishThroughOutage publishes results 1 to n, pausing 20 ms every 20;
// the broker is down from result 600 (stop) to result 1200 (start), for at
// least a second so that the client notices.
func publishThroughOutage(t *testing.T, p *Publisher, n int, stop, start func()) {
	t.Helper()
	var down time.Time
	for i := 1; i <= n; i++ {
		if err := p.Publish(context.Background(), sampleResult(uint64(i))); err != nil {
			t.Fatalf("Publish %d: %v", i, err)
		}
		switch i {
		case 600:
			stop()
			down = time.Now()
		case 1200:
			time.Sleep(time.Second - time.Since(down))
			start()
		}
		if i%20 == 0 {
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// allInOrder waits for results 1 to n at col and returns them after
// de-duplication, failing the test if one is lost or out of order.
func allInOrder(t *testing.T, col *collector, n int) []resultMsg {
	t.Helper()
	waitFor(t, 60*time.Second, "all results", func() bool { return len(firstSeen(col.results(t, "/result"))) >= n })
	got := firstSeen(col.results(t, "/result"))
	for i, r := range got {
		if r.Frame.ID != uint64(i+1) {
			t.Fatalf("result %d in arrival order is frame %d: lost or out of order", i+1, r.Frame.ID)
		}
	}
	if len(got) != n {
		t.Fatalf("got %d distinct results, want %d", len(got), n)
	}
	return got
}

// TestSpoolCapDropsOldest publishes into a spool too small for the outage;
// the newest results arrive and the drop counter is exact, also in the
// telemetry message.
func TestSpoolCapDropsOldest(t *testing.T) {
	const n = 1500
	addr := freeAddr(t)
	log, _ := testLogger()
	cfg := testConfig(t, "tcp://"+addr)
	cfg.SpoolMaxBytes = 64 << 10
	p, err := New(context.Background(), cfg, nil, log)
	if err != nil {
		t.Fatal(err)
	}
	var b *broker.Broker
	defer func() {
		closePublisher(t, p)
		if b != nil {
			b.Close()
		}
	}()
	for i := 1; i <= n; i++ {
		if err := p.Publish(context.Background(), sampleResult(uint64(i))); err != nil {
			t.Fatal(err)
		}
	}
	appended := func(k uint64) func() bool {
		return func() bool {
			st := p.spool.Stats()
			return uint64(st.Records)+st.Dropped >= k
		}
	}
	waitFor(t, 10*time.Second, "spool writer", appended(n))
	if p.spool.Stats().Dropped == 0 {
		t.Fatal("nothing dropped: the byte bound was not applied")
	}
	// The publisher reports the drops itself (event/spool-dropped), then
	// the runtime's telemetry carries the counter.
	waitFor(t, 5*time.Second, "spool-dropped event spooled", appended(n+1))
	tm := &Telemetry{FPS: 10}
	if err := p.Publish(context.Background(), tm); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "telemetry spooled", appended(n+2))

	var col collector
	b = startTapped(t, addr, &col)
	waitFor(t, 30*time.Second, "telemetry after replay", func() bool { return len(col.results(t, "/telemetry")) > 0 })
	// Every drop was of the oldest records, so of results.
	dropped := p.spool.Stats().Dropped
	got := firstSeen(col.results(t, "/result"))
	if uint64(len(got))+dropped != n {
		t.Fatalf("delivered %d + dropped %d != published %d", len(got), dropped, n)
	}
	for i, r := range got {
		if want := dropped + uint64(i) + 1; r.Frame.ID != want {
			t.Fatalf("delivered result %d is frame %d, want %d (the newest)", i, r.Frame.ID, want)
		}
		if !r.Replay {
			t.Fatalf("frame %d spooled during the outage lacks replay:true", r.Frame.ID)
		}
	}
	var sent Telemetry
	var ev Event
	for _, m := range col.snapshot() {
		switch {
		case strings.HasSuffix(m.topic, "/telemetry"):
			if err := json.Unmarshal(m.payload, &sent); err != nil {
				t.Fatal(err)
			}
		case strings.HasSuffix(m.topic, "/event/spool-dropped"):
			if err := json.Unmarshal(m.payload, &ev); err != nil {
				t.Fatal(err)
			}
		}
	}
	if sent.Spool.Dropped == 0 || sent.Spool.Dropped > dropped || sent.Spool.Dropped != tm.Spool.Dropped {
		t.Fatalf("telemetry spool.dropped = %d, want the counter when it was published (%d, at most %d)",
			sent.Spool.Dropped, tm.Spool.Dropped, dropped)
	}
	if evd, err := strconv.ParseUint(ev.Data["dropped_total"], 10, 64); err != nil || evd == 0 || evd > sent.Spool.Dropped {
		t.Fatalf("event/spool-dropped dropped_total = %q, want the counter before the telemetry's %d", ev.Data["dropped_total"], sent.Spool.Dropped)
	}
}

// TestRetainedWhileDisconnectedUsesNoSeq: status and config/reported are
// not sent while the link is down (announce republishes them on connect),
// so they must not use up a seq — a gap in seq is always a counted loss.
func TestRetainedWhileDisconnectedUsesNoSeq(t *testing.T) {
	b := startBroker(t, "127.0.0.1:0")
	url := b.URL()
	if err := b.Close(); err != nil { // nothing listens at url now
		t.Fatal(err)
	}
	log, _ := testLogger()
	p, err := New(context.Background(), testConfig(t, url), nil, log)
	if err != nil {
		t.Fatal(err)
	}
	defer closePublisher(t, p)
	if _, up := p.client.Epoch(); up {
		t.Fatal("connected to a closed broker")
	}
	seq := func() uint64 { p.pubMu.Lock(); defer p.pubMu.Unlock(); return p.seq }
	before := seq()
	if err := p.Publish(context.Background(), &ConfigReported{Limits: Limits{Threshold: 0.8}}); err != nil {
		t.Fatal(err)
	}
	if err := p.Publish(context.Background(), &Status{Online: true}); err != nil {
		t.Fatal(err)
	}
	if got := seq(); got != before {
		t.Fatalf("seq went from %d to %d for retained messages that were not sent", before, got)
	}
	if err := p.Publish(context.Background(), sampleResult(1)); err != nil {
		t.Fatal(err)
	}
	if got := seq(); got != before+1 {
		t.Fatalf("a spooled result moved seq from %d to %d, want +1", before, got)
	}
}
