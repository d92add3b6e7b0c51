package liveview

import (
	"context"
	"encoding/json"
	"image"
	"image/png"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anytime-edge/edge/internal/testkit"
	"github.com/anytime-edge/edge/telemetry"
)

type fakeCommands struct {
	mu  sync.Mutex
	got []string
}

func (f *fakeCommands) Command(_ context.Context, name string, payload []byte) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.got = append(f.got, name+" "+string(payload))
	return []byte(`{"status":"accepted"}`), nil
}

func (f *fakeCommands) received() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.got...)
}

func TestServesFramesStateAndCommands(t *testing.T) {
	cmds := &fakeCommands{}
	s, err := Listen(Options{Addr: "127.0.0.1:0", Commands: cmds, Limits: func() any { return map[string]int{"max_exit": 3} }, MinInterval: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	base := "http://" + s.Addr()

	r, body := testkit.Get(t, base+"/")
	if r.StatusCode != 200 || !strings.Contains(string(body), `<canvas id="chart-power"`) || strings.Contains(string(body), "http") && strings.Contains(string(body), "cdn") {
		t.Fatalf("page: %d %q", r.StatusCode, body[:min(len(body), 200)])
	}
	if r, _ := testkit.Get(t, base+"/api/frame.png"); r.StatusCode != http.StatusNotFound {
		t.Errorf("frame before any: got %d, want 404", r.StatusCode)
	}

	s.Point(Point{T: time.Now(), Exit: 2})
	s.Publish(Frame{ID: 7, Source: "cam0", Halt: "deadline", HaltExit: 2,
		Exits:   []telemetry.Exit{{Exit: 1}, {Exit: 2, Frozen: 0.5}},
		Overlay: image.NewRGBA(image.Rect(0, 0, 8, 4)),
		Thumbs:  []image.Image{image.NewGray(image.Rect(0, 0, 4, 2)), image.NewGray(image.Rect(0, 0, 4, 2))},
	}, Counters{Processed: 7, Dropped: 1})

	var st stateJSON
	deadline := time.Now().Add(5 * time.Second)
	for st.Seq == 0 && time.Now().Before(deadline) {
		_, b := testkit.Get(t, base+"/api/state")
		if err := json.Unmarshal(b, &st); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if st.Frame == nil || st.Frame.ID != 7 || st.Frame.Halt != "deadline" || st.Counters.Dropped != 1 || len(st.History) != 1 || !st.Controls || st.Limits == nil {
		t.Fatalf("state: %+v", st)
	}
	r, b := testkit.Get(t, base+"/api/frame.png")
	img, err := png.Decode(strings.NewReader(string(b)))
	if r.StatusCode != 200 || err != nil || img.Bounds().Dx() != 8 {
		t.Fatalf("frame.png: %d %v", r.StatusCode, err)
	}
	if r, _ := testkit.Get(t, base+"/api/exit/2.png"); r.StatusCode != 200 {
		t.Errorf("exit 2 thumbnail: %d", r.StatusCode)
	}
	if r, _ := testkit.Get(t, base+"/api/exit/3.png"); r.StatusCode != http.StatusNotFound {
		t.Errorf("exit 3 thumbnail: got %d, want 404", r.StatusCode)
	}

	_, ack := testkit.Post(t, base+"/api/command/set-max-exit", "application/json", strings.NewReader(`{"v":1}`))
	if got := cmds.received(); string(ack) != `{"status":"accepted"}` || len(got) != 1 || got[0] != `set-max-exit {"v":1}` {
		t.Errorf("command: ack %q, forwarded %v", ack, got)
	}
	big := strings.NewReader(strings.Repeat("x", maxCommandBytes+10))
	if resp, _ := testkit.Post(t, base+"/api/command/set-deadline", "application/json", big); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("oversized command: got %d", resp.StatusCode)
	}
}

func TestRefusesNonLoopback(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:8080", ":8080", "10.1.2.3:80", "example.com:80"} {
		if _, err := Listen(Options{Addr: addr}); err == nil || !strings.Contains(err.Error(), "loopback") {
			t.Errorf("%s: got %v, want a loopback error", addr, err)
		}
	}
}

func TestHistoryForgetsOldPoints(t *testing.T) {
	st := state{keep: time.Minute}
	t0 := time.Now()
	for i := 0; i < 5; i++ {
		st.addPoint(Point{T: t0.Add(time.Duration(i) * 30 * time.Second)})
	}
	if len(st.history) != 3 || !st.history[0].T.Equal(t0.Add(60*time.Second)) {
		t.Errorf("kept %d points from %v", len(st.history), st.history[0].T.Sub(t0))
	}
}
