package telemetry

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anytime-edge/edge/anytime"
	"github.com/anytime-edge/edge/internal/testkit"
	"github.com/anytime-edge/edge/power"
	"github.com/anytime-edge/edge/telemetry/broker"
)

// testLogger logs warnings and errors to a buffer the test reads.
func testLogger() (*slog.Logger, *testkit.Buffer) { return testkit.Logger(slog.LevelWarn) }

// freeAddr returns a 127.0.0.1 address that was free a moment ago.
func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// received is one message seen by a collector.
type received struct {
	topic    string
	payload  []byte
	retained bool
}

// collector subscribes inside an embedded broker and records messages.
type collector struct {
	mu   sync.Mutex
	msgs []received
}

func (c *collector) attach(t testing.TB, b *broker.Broker, filter string) {
	t.Helper()
	if err := b.Subscribe(filter, 1, func(topic string, payload []byte, retained bool) {
		c.mu.Lock()
		c.msgs = append(c.msgs, received{topic, payload, retained})
		c.mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
}

// tap records messages as the broker accepts them, before the PUBACK.
func (c *collector) tap(topic string, payload []byte, retained bool) {
	c.mu.Lock()
	c.msgs = append(c.msgs, received{topic, payload, retained})
	c.mu.Unlock()
}

func (c *collector) snapshot() []received {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]received(nil), c.msgs...)
}

// results decodes result messages on topics ending in suffix.
type resultMsg struct {
	Device string `json:"device"`
	Boot   string `json:"boot"`
	Seq    uint64 `json:"seq"`
	Replay bool   `json:"replay"`
	Frame  struct {
		ID uint64 `json:"id"`
	} `json:"frame"`
}

func (c *collector) results(t testing.TB, suffix string) []resultMsg {
	t.Helper()
	return decoded[resultMsg](t, c, suffix)
}

// decoded decodes the JSON of each message c has on a topic ending in
// suffix, in arrival order.
func decoded[T any](t testing.TB, c *collector, suffix string) []T {
	t.Helper()
	var out []T
	for _, m := range c.snapshot() {
		if !strings.HasSuffix(m.topic, suffix) {
			continue
		}
		var v T
		if err := json.Unmarshal(m.payload, &v); err != nil {
			t.Fatalf("bad JSON on %s: %v: %s", m.topic, err, m.payload)
		}
		out = append(out, v)
	}
	return out
}

// firstSeen de-duplicates by (boot, frame id) and keeps the order of first
// arrival.
func firstSeen(rs []resultMsg) []resultMsg {
	seen := map[string]bool{}
	var out []resultMsg
	for _, r := range rs {
		k := fmt.Sprintf("%s/%d", r.Boot, r.Seq)
		if !seen[k] {
			seen[k] = true
			out = append(out, r)
		}
	}
	return out
}

func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func sampleResult(frame uint64) *Result {
	return &Result{
		Frame:  Frame{ID: frame, Source: "cam0", Width: 1280, Height: 720},
		Bundle: Bundle{Name: "adpc-hrnet18-cityscapes", SHA256: strings.Repeat("ab", 32)},
		Exits: []Exit{
			{Exit: 1, MS: 9.8, MJ: 41.0, Frozen: 0, GMACs: 41.9},
			{Exit: 2, MS: 12.1, MJ: 52.3, Frozen: 0.61, GMACs: 52.0},
		},
		Halt:    Halt{Exit: 2, Reason: anytime.ReasonDeadline, DeadlineMS: 25},
		Energy:  Energy{MJ: 93.3, Source: power.SourceJetson},
		Classes: map[string]float64{"road": 0.41, "car": 0.08},
	}
}

// fakeController records applied changes.
type fakeController struct {
	mu        sync.Mutex
	lim       Limits
	applied   int
	snapshots int
	exits     int // bundle exits; MaxExit beyond is refused
}

func (f *fakeController) Apply(_ context.Context, c Change) (Limits, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c.MaxExit != nil && *c.MaxExit > f.exits {
		return f.lim, fmt.Errorf("max exit %d: the bundle has %d exits", *c.MaxExit, f.exits)
	}
	n := f.lim
	if c.EnergyBudgetMJ != nil {
		n.EnergyBudgetMJ = *c.EnergyBudgetMJ
	}
	if c.PowerCapW != nil {
		n.PowerCapW = *c.PowerCapW
	}
	if c.Threshold != nil {
		n.Threshold = *c.Threshold
	}
	if c.MaxExit != nil {
		n.MaxExit = *c.MaxExit
	}
	if c.DeadlineMS != nil {
		n.DeadlineMS = *c.DeadlineMS
	}
	f.lim = n
	f.applied++
	return n, nil
}

func (f *fakeController) Limits() Limits {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lim
}

func (f *fakeController) Snapshot(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.snapshots++
	return nil
}

func testConfig(t testing.TB, url string) Config {
	return Config{BrokerURL: url, Site: "lab", Device: "drone-7", SpoolDir: t.TempDir(), Software: "test"}
}

func closePublisher(t testing.TB, p *Publisher) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		t.Errorf("Close: %v", err)
	}
}

// commandRig starts a broker (closed when the test ends) with a collector
// on everything under anytime/, and a Publisher connected to it for a
// controller of a 4-exit bundle at threshold 0.8; the caller closes the
// Publisher.
func commandRig(t testing.TB, log *slog.Logger) (*broker.Broker, *collector, *fakeController, *Publisher) {
	t.Helper()
	b := startBroker(t, "127.0.0.1:0")
	t.Cleanup(func() { b.Close() })
	col := &collector{}
	col.attach(t, b, "anytime/#")
	ctrl := &fakeController{exits: 4, lim: Limits{Threshold: 0.8}}
	return b, col, ctrl, connectedPublisher(t, b.URL(), ctrl, log)
}

// connectedPublisher starts a Publisher against url and waits until it is
// connected; the caller closes it.
func connectedPublisher(t testing.TB, url string, ctrl Controller, log *slog.Logger) *Publisher {
	t.Helper()
	p := newPublisher(t, testConfig(t, url), ctrl, log)
	waitConnected(t, p)
	return p
}

// newPublisher is New, failing the test on error; the caller closes it.
func newPublisher(t testing.TB, cfg Config, ctrl Controller, log *slog.Logger) *Publisher {
	t.Helper()
	p, err := New(context.Background(), cfg, ctrl, log)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// waitConnected waits up to 10 s for p's first connection.
func waitConnected(t testing.TB, p *Publisher) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
}

// embeddedPublisher starts the embedded broker that cfg asks for (as its
// owner does, StartBroker) and a Publisher connected to it; both are closed
// when the test ends.
func embeddedPublisher(t testing.TB, cfg Config, ctrl Controller, log *slog.Logger) (*broker.Broker, *Publisher) {
	t.Helper()
	b, cfg, err := StartBroker(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	p := newPublisher(t, cfg, ctrl, log)
	t.Cleanup(func() { closePublisher(t, p) }) // before the broker's
	waitConnected(t, p)
	return b, p
}

// scrape returns p's metrics page, served over HTTP as its owner serves it.
func scrape(t testing.TB, p *Publisher) []byte {
	t.Helper()
	srv := httptest.NewServer(p.Metrics())
	defer srv.Close()
	resp, body := testkit.Get(t, srv.URL+"/metrics")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", resp.StatusCode, body)
	}
	return body
}
