package main

import (
	"bufio"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/anytime-edge/edge/internal/testkit"
	"github.com/anytime-edge/edge/source/sourcetest"
)

func TestWedged(t *testing.T) {
	now := time.Unix(1e9, 0)
	ago := func(d time.Duration) time.Time { return now.Add(-d) }
	var never time.Time
	const period = 10 * time.Second
	tests := []struct {
		name                       string
		inFlight, waiting, retried time.Time
		want                       string
	}{
		{"idle between frames", never, never, never, ""},
		{"a frame in flight", ago(time.Second), never, never, ""},
		{"a frame stuck", ago(11 * time.Second), never, never, "in the executor"},
		{"waiting for a frame", never, ago(5 * time.Second), never, ""},
		{"a silent source", never, ago(11 * time.Second), never, "no frame from the source"},
		{"a stream being reopened", never, ago(time.Minute), ago(3 * time.Second), ""},
		{"a stream that gave up retrying", never, ago(time.Minute), ago(20 * time.Second), "no frame from the source"},
	}
	for _, tt := range tests {
		got := wedged(now, tt.inFlight, tt.waiting, tt.retried, period)
		if (tt.want == "") != (got == "") || !strings.Contains(got, tt.want) {
			t.Errorf("%s: got %q, want %q", tt.name, got, tt.want)
		}
	}
}

// TestSIGTERMStopsARunWithAStalledCamera runs the daemon on an RTSP stream
// whose decoder never delivers a frame: SIGTERM must still end it cleanly,
// and nothing it prints may hold the stream's password.
func TestSIGTERMStopsARunWithAStalledCamera(t *testing.T) {
	lib := ortOrSkip(t)
	sourcetest.FakeFFmpeg(t) // ffmpeg hangs without a frame
	dir := t.TempDir()
	bundle, _ := filepath.Abs(filepath.Join(repo, "testdata/bundles/tiny"))
	cmd := edgeCommand(dir, nil, "run", "--ort-lib", lib, "--providers", "cpu", "--bundle", bundle,
		// No broker answers: MQTT is not what this test is about.
		"--mqtt", "tcp://"+freePort(t), "--spool", filepath.Join(dir, "spool"), "--site", "t", "--device", "d",
		"rtsp://operator:hunter2@127.0.0.1:8554/cam")
	out := testkit.Start(t, cmd, true)
	defer cmd.Process.Kill()
	lines := make(chan string, 100)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	var log []string
	read := func(until string) bool {
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					return false
				}
				log = append(log, l)
				if strings.Contains(l, until) {
					return true
				}
			case <-time.After(60 * time.Second): // a guard against a hung test
				return false
			}
		}
	}
	if !read(`"msg":"running"`) {
		t.Fatalf("the daemon did not start:\n%s", strings.Join(log, "\n"))
	}
	cmd.Process.Signal(syscall.SIGTERM)
	for read("") {
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Errorf("exit: %v\n%s", err, strings.Join(log, "\n"))
		}
	case <-time.After(60 * time.Second): // a guard against a hung test
		t.Fatalf("SIGTERM did not stop the daemon:\n%s", strings.Join(log, "\n"))
	}
	text := strings.Join(log, "\n")
	if strings.Contains(text, "hunter2") || !strings.Contains(text, "operator:***@127.0.0.1") {
		t.Errorf("the log shows the password or no redacted source:\n%s", text)
	}
}

// TestRunSaysWhenThermalLimitsLackATemperature: with a thermal limit and a
// backend that reads no temperature, frames halt at exit 1 and the fleet is
// told why (event/thermal-unknown), instead of the limit being dropped.
func TestRunSaysWhenThermalLimitsLackATemperature(t *testing.T) {
	lib := ortOrSkip(t)
	base := "anytime/v1/test/unit-3/"
	b, col := startBroker(t, base)
	err := runEdge(t, "run", "--once", "--ort-lib", lib, "--providers", "cpu", "--bundle", filepath.Join(repo, "testdata/bundles/tiny"),
		"--threshold", "2", "--power-backend", "estimate", "--thermal-soft", "80",
		"--mqtt", b.URL(), "--site", "test", "--device", "unit-3", "--spool", filepath.Join(t.TempDir(), "spool"),
		filepath.Join(repo, "testdata/images/street.png"))
	if err != nil {
		t.Fatal(err)
	}
	events := col.get(base + "event/thermal-unknown")
	if len(events) != 1 || !strings.Contains(string(events[0]), "no reading") && !strings.Contains(string(events[0]), "no temperature") {
		t.Errorf("event/thermal-unknown: got %q, want one saying why", events)
	}
	results := col.get(base + "result")
	for _, r := range results {
		if !strings.Contains(string(r), `"halt":{"exit":1,"reason":"thermal"`) {
			t.Errorf("result %s, want a thermal halt at exit 1", r)
		}
	}
	if len(results) != 1 {
		t.Errorf("got %d results, want 1", len(results))
	}
}
