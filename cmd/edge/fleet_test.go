package main

import (
	"encoding/json"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/anytime-edge/edge/telemetry/broker"
)

// collector subscribes to a device's topics on the embedded broker.
type collector struct {
	mu   sync.Mutex
	msgs map[string][][]byte
}

func (c *collector) add(topic string, payload []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.msgs[topic] = append(c.msgs[topic], append([]byte(nil), payload...))
}

func (c *collector) get(topic string) [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.msgs[topic]
}

// startBroker starts an embedded broker on a free loopback port, collecting
// everything published under base.
func startBroker(t *testing.T, base string) (*broker.Broker, *collector) {
	t.Helper()
	b, err := broker.Start(broker.Config{Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	col := &collector{msgs: map[string][][]byte{}}
	if err := b.Subscribe(base+"#", 1, func(topic string, payload []byte, _ bool) { col.add(topic, payload) }); err != nil {
		t.Fatal(err)
	}
	return b, col
}

// TestRunOncePublishesOneResultPerImage runs `edge run --once` over the
// sample directory, publishing to an embedded (mochi) broker that the test
// starts first, so its in-process subscriber sees everything. Each good image
// gives exactly one final result (and intermediate ones with --progressive),
// each bad one a frame-failed event, and the run ends with the offline
// status. Label maps are spooled (QoS 1): at QoS 0 those of frames done
// before the connection is up are dropped by design.
func TestRunOncePublishesOneResultPerImage(t *testing.T) {
	lib := ortOrSkip(t)
	base := "anytime/v1/test/unit-1/"
	b, col := startBroker(t, base)
	err := runEdge(t, "run", "--once", "--ort-lib", lib, "--providers", "cpu", "--bundle", filepath.Join(repo, "testdata/bundles/tiny"),
		"--progressive", "--mqtt-labels-qos", "1", "--mqtt", b.URL(), "--site", "test", "--device", "unit-1", "--spool", filepath.Join(t.TempDir(), "spool"),
		filepath.Join(repo, "testdata/images"))
	if err == nil || !strings.Contains(err.Error(), "2 of 5 frames failed") {
		t.Errorf("run: got %v, want the two broken images reported", err)
	}
	var sources []string
	for _, r := range finals(t, col.get(base+"result")) {
		sources = append(sources, filepath.Base(r))
	}
	sort.Strings(sources)
	if strings.Join(sources, ",") != "deep16.png,grey.png,street.png" {
		t.Errorf("final results for %v, want one each for deep16, grey and street", sources)
	}
	if n := len(col.get(base + "result")); n <= 3 {
		t.Errorf("--progressive published %d results, want intermediate exits too", n)
	}
	if n := len(col.get(base + "event/frame-failed")); n != 2 {
		t.Errorf("got %d frame-failed events, want 2", n)
	}
	if n := len(col.get(base + "result/labels")); n != 3 {
		t.Errorf("got %d label maps, want 3", n)
	}
	status := col.get(base + "status")
	if len(status) == 0 || !strings.Contains(string(status[len(status)-1]), `"online":false`) {
		t.Errorf("last status is not offline: %q", status)
	}
}

// finals returns the sources of the non-progressive results.
func finals(t *testing.T, msgs [][]byte) []string {
	var out []string
	for _, m := range msgs {
		var r struct {
			Progressive bool `json:"progressive"`
			Frame       struct {
				Source string `json:"source"`
			} `json:"frame"`
		}
		if err := json.Unmarshal(m, &r); err != nil {
			t.Fatalf("bad result %q: %v", m, err)
		}
		if !r.Progressive {
			out = append(out, r.Frame.Source)
		}
	}
	return out
}

// TestSIGTERMStopsCleanly runs `edge run` as a process, sends SIGTERM once
// results flow, and expects exit status 0 and the offline status with
// reason shutdown on the broker.
func TestSIGTERMStopsCleanly(t *testing.T) {
	lib := ortOrSkip(t)
	base := "anytime/v1/test/unit-2/"
	b, col := startBroker(t, base)
	bundle := mustAbs(t, filepath.Join(repo, "testdata/bundles/tiny"))
	image := mustAbs(t, filepath.Join(repo, "testdata/images/street.png"))
	cmd := edgeCommand("", nil, "--log-level", "error", "run", "--ort-lib", lib, "--providers", "cpu", "--bundle", bundle,
		"--loop", "--fps", "50", "--mqtt", b.URL(), "--site", "test", "--device", "unit-2", "--spool", filepath.Join(t.TempDir(), "spool"), image)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for len(col.get(base+"result")) < 3 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if len(col.get(base+"result")) < 3 {
		cmd.Process.Kill()
		t.Fatalf("no results from edge run:\n%s", out.String())
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("edge run after SIGTERM: %v\n%s", err, out.String())
		}
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatal("edge run did not stop within 30 s of SIGTERM")
	}
	status := col.get(base + "status")
	if len(status) == 0 || !strings.Contains(string(status[len(status)-1]), `"reason":"shutdown"`) {
		t.Errorf("last status is not the shutdown one: %q", status[len(status)-1])
	}
}
