package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/anytime-edge/edge/internal/testkit"
)

// chromium finds a headless-capable Chromium, or skips.
func chromium(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("no Chromium on PATH (apt-get install chromium); skipping the live-view end-to-end test")
	return ""
}

func freePort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestLiveViewEndToEnd runs `edge run` with the live view, loads the page in
// headless Chromium, checks that a frame, its exits and the controls are
// shown, and saves a screenshot (to $E2E_OUT, or the test's temp dir).
func TestLiveViewEndToEnd(t *testing.T) {
	browser := chromium(t)
	lib := ortOrSkip(t)
	addr := freePort(t)
	broker := freePort(t)
	spool := filepath.Join(t.TempDir(), "spool")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		app := newApp()
		done <- app.RunContext(ctx, []string{"edge", "--log-level", "error", "run", "--ort-lib", lib, "--providers", "cpu",
			"--bundle", filepath.Join(repo, "testdata/bundles/tiny"), "--loop", "--fps", "20", "--http", addr,
			"--broker-listen", broker, "--spool", spool, "--site", "e2e", "--device", "browser",
			filepath.Join(repo, "testdata/images/street.png")})
	}()
	defer func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("edge run: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Error("edge run did not stop after cancel")
		}
	}()
	base := "http://" + addr
	waitForFrame(t, base)

	out := os.Getenv("E2E_OUT")
	if out == "" {
		out = t.TempDir()
	}
	args := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
		"--disable-sync", "--no-first-run", "--user-data-dir=" + t.TempDir(), "--window-size=1280,900", "--virtual-time-budget=4000"}
	dom, err := exec.Command(browser, append(args, "--dump-dom", base+"/")...).Output()
	if err != nil {
		t.Fatalf("chromium --dump-dom: %v", err)
	}
	page := string(dom)
	checks := map[string]*regexp.Regexp{
		"a loaded frame image":  regexp.MustCompile(`id="frame"[^>]*data-loaded="256x128"|data-loaded="256x128"[^>]*id="frame"`),
		"four exit thumbnails":  regexp.MustCompile(`(?s)(<img[^>]*src="/api/exit/\d\.png\?seq=\d+".*){4}`),
		"the halt reason":       regexp.MustCompile(`id="halt">exit \d \([a-z-]+\)<`),
		"the limit controls":    regexp.MustCompile(`id="controls"(?: class="")?>`),
		"the charts":            regexp.MustCompile(`<canvas id="chart-energy"`),
		"the frame counters":    regexp.MustCompile(`processed \d+ · failed 0`),
		"limits shown in force": regexp.MustCompile(`in force: \{`),
	}
	for what, re := range checks {
		if !re.MatchString(page) {
			t.Errorf("page lacks %s", what)
		}
	}
	if t.Failed() {
		testkit.WriteFile(t, filepath.Join(out, "liveview-dom.html"), dom)
	}
	shot := filepath.Join(out, "liveview.png")
	if b, err := exec.Command(browser, append(args, "--screenshot="+shot, base+"/")...).CombinedOutput(); err != nil {
		t.Fatalf("chromium --screenshot: %v: %s", err, b)
	}
	if st, err := os.Stat(shot); err != nil || st.Size() < 10_000 {
		t.Fatalf("screenshot %s: %v (size %d)", shot, err, sizeOf(st))
	}
	t.Logf("screenshot: %s", shot)

	// A limit change through the page's command path reaches the pipeline.
	body := fmt.Sprintf(`{"v":1,"cmd_id":"e2e-1","name":"set-max-exit","issued_at":%q,"expires_at":%q,"args":{"exit":2}}`,
		time.Now().UTC().Format(time.RFC3339), time.Now().Add(time.Minute).UTC().Format(time.RFC3339))
	_, raw := testkit.Post(t, base+"/api/command/set-max-exit", "application/json", strings.NewReader(body))
	var ack struct {
		Status string `json:"status"`
		Error  string `json:"error"`
	}
	mustUnmarshal(t, raw, &ack)
	if ack.Status != "accepted" {
		t.Fatalf("set-max-exit through the live view: %+v", ack)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if s := state(t, base); s.Frame != nil && s.Frame.HaltExit == 2 && s.Frame.Halt == "max-exit" {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Error("frames did not halt at exit 2 after set-max-exit")
}

type liveState struct {
	Seq   uint64 `json:"seq"`
	Frame *struct {
		HaltExit int    `json:"halt_exit"`
		Halt     string `json:"halt"`
	} `json:"frame"`
}

func state(t *testing.T, base string) liveState {
	var s liveState
	r, err := http.Get(base + "/api/state")
	if err != nil {
		return s
	}
	defer r.Body.Close()
	json.NewDecoder(r.Body).Decode(&s)
	return s
}

func waitForFrame(t *testing.T, base string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if s := state(t, base); s.Frame != nil && s.Seq > 1 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("no frame reached the live view within 60 s")
}

func sizeOf(st os.FileInfo) int64 {
	if st == nil {
		return 0
	}
	return st.Size()
}
