package sink

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anytime-edge/edge/internal/testkit"
	"github.com/anytime-edge/edge/liveview"
	"github.com/anytime-edge/edge/power"
	"github.com/anytime-edge/edge/telemetry"
)

// fakePolicy and fakeExec stand for power.Policy and anytime.Executor.
type fakePolicy struct {
	mu sync.Mutex
	l  power.Limits
}

func (p *fakePolicy) Limits() power.Limits {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.l
}

func (p *fakePolicy) SetLimits(l power.Limits) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.l = l
	return nil
}

type fakeExec struct {
	mu        sync.Mutex
	threshold float32
	deadline  time.Duration
}

func (x *fakeExec) Threshold() float32 {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.threshold
}

func (x *fakeExec) SetThreshold(t float32) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.threshold = t
}

func (x *fakeExec) SetHardDeadline(d time.Duration) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.deadline = d
}

// TestLivePageTakesTheCommandPath posts the page's JSON to the live view
// wired as `edge run` wires it, over a real fleet link: the change is
// applied, acknowledged on cmd-ack and reported on
// config/reported, as an MQTT command would be, and the page gets the
// same acknowledgement. (That the path logs it is telemetry's test.)
func TestLivePageTakesTheCommandPath(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	exec := &fakeExec{threshold: 0.8}
	ctrl := NewControl(&fakePolicy{}, exec, 3)
	fl, err := OpenFleet(context.Background(), telemetry.Config{
		Site: "lab", Device: "drone-7", SpoolDir: t.TempDir(), BrokerListen: "127.0.0.1:0",
	}, ctrl, log)
	if err != nil {
		t.Fatal(err)
	}
	defer fl.Close()
	var mu sync.Mutex
	got := map[string][][]byte{}
	if err := fl.broker.Subscribe("anytime/#", 1, func(topic string, payload []byte, _ bool) {
		mu.Lock()
		defer mu.Unlock()
		got[topic] = append(got[topic], payload)
	}); err != nil {
		t.Fatal(err)
	}
	live, err := liveview.Listen(liveview.Options{Addr: "127.0.0.1:0", Commands: LiveCommands{C: fl.Pub}, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close(context.Background())

	now := time.Now().UTC()
	body := fmt.Sprintf(`{"v":1,"cmd_id":"web-1","name":"set-threshold","issued_at":%q,"expires_at":%q,"args":{"threshold":0.6}}`,
		now.Format(time.RFC3339Nano), now.Add(time.Minute).Format(time.RFC3339Nano))
	req := testkit.Request(t, http.MethodPost, "http://"+live.Addr()+"/api/command/set-threshold", "application/json", strings.NewReader(body))
	req.Header.Set("Origin", "http://"+live.Addr())
	_, raw := testkit.Do(t, req)
	var ack telemetry.CmdAck
	if err := json.Unmarshal(raw, &ack); err != nil {
		t.Fatalf("page ack %q: %v", raw, err)
	}
	if ack.Status != telemetry.AckAccepted || ack.CmdID != "web-1" || ack.Limits == nil || ack.Limits.Threshold != float64(float32(0.6)) {
		t.Fatalf("page ack = %s, want accepted with threshold 0.6", raw)
	}
	if exec.Threshold() != 0.6 {
		t.Fatalf("threshold in force %v, want 0.6", exec.Threshold())
	}
	base := fl.Pub.Topics().Base()
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		acks, reported := got[base+"cmd-ack"], got[base+"config/reported"]
		mu.Unlock()
		var last telemetry.ConfigReported
		if len(reported) > 0 {
			if err := json.Unmarshal(reported[len(reported)-1], &last); err != nil {
				t.Fatal(err)
			}
		}
		if len(acks) == 1 && last.Limits.Threshold == float64(float32(0.6)) {
			if !bytes.Contains(acks[0], []byte(`"cmd_id":"web-1"`)) || !bytes.Contains(acks[0], []byte(`"status":"accepted"`)) {
				t.Fatalf("cmd-ack = %s", acks[0])
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 10 s: cmd-ack %q, config/reported %q", acks, reported)
		}
		time.Sleep(10 * time.Millisecond) // polling the broker's deliveries
	}
}
