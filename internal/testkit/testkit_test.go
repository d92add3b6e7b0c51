package testkit

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// TestBufferTakesConcurrentWrites logs from several goroutines at once
// (go test -race checks the locking) and finds every record, and none
// below the level.
func TestBufferTakesConcurrentWrites(t *testing.T) {
	log, buf := Logger(slog.LevelInfo)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			log.Info("hello", "i", i)
			log.Debug("hidden")
		}()
	}
	wg.Wait()
	if got := strings.Count(buf.String(), "msg=hello"); got != 8 || strings.Contains(buf.String(), "hidden") {
		t.Fatalf("log:\n%s\nwant 8 info records and no debug", buf)
	}
}

// TestWriteFileCreatesItsDirectories writes below a directory that does
// not exist yet.
func TestWriteFileCreatesItsDirectories(t *testing.T) {
	dir := t.TempDir()
	path := WriteFile(t, filepath.Join(dir, "a", "b", "c.txt"), []byte("x"))
	if got, err := os.ReadFile(path); err != nil || string(got) != "x" {
		t.Fatalf("read back %q, %v", got, err)
	}
}

// TestRequestsReadTheWholeBody GETs and POSTs to a server that echoes the
// method, the content type and the body.
func TestRequestsReadTheWholeBody(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.WriteHeader(http.StatusTeapot)
		io.WriteString(w, r.Method+" "+r.Header.Get("Content-Type")+" "+string(body))
	}))
	defer srv.Close()
	if resp, body := Get(t, srv.URL); resp.StatusCode != http.StatusTeapot || string(body) != "GET  " {
		t.Errorf("GET: %d %q", resp.StatusCode, body)
	}
	if _, body := Post(t, srv.URL, "application/json", strings.NewReader(`{"a":1}`)); string(body) != `POST application/json {"a":1}` {
		t.Errorf("POST: %q", body)
	}
}

// TestStartPipesTheOutput runs a shell that writes to both streams: with
// withStderr both arrive, without only standard output does.
func TestStartPipesTheOutput(t *testing.T) {
	for _, withStderr := range []bool{true, false} {
		cmd := exec.Command("sh", "-c", "echo out; echo err >&2")
		got, err := io.ReadAll(Start(t, cmd, withStderr))
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Wait(); err != nil {
			t.Fatal(err)
		}
		want := "out\n"
		if withStderr {
			want = "out\nerr\n"
		}
		if string(got) != want {
			t.Errorf("withStderr %v: read %q, want %q", withStderr, got, want)
		}
	}
}

// TestChildRunsNoTest starts the test binary as a child with a variable
// that TestMain acts on.
func TestChildRunsNoTest(t *testing.T) {
	out, err := Child(childEnv + "=hello").Output()
	if err != nil || string(out) != "child hello\n" {
		t.Fatalf("child printed %q, %v; want %q", out, err, "child hello\n")
	}
}

const childEnv = "TESTKIT_TEST_CHILD"

func TestMain(m *testing.M) {
	if v := os.Getenv(childEnv); v != "" {
		fmt.Println("child", v)
		return
	}
	os.Exit(m.Run())
}
