// Package testkit holds the small helpers that the tests of several
// packages share: a log sink safe for concurrent writes, files in a test's
// temporary directory and HTTP requests whose body is read whole. Each
// helper fails the test on error, so the tests read as what they check.
// Only tests import it.
//
// Its place in the tree, and what it may import: docs/architecture.md.
package testkit

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// Buffer is a bytes.Buffer that several goroutines may write to at once,
// such as a logger's handler used by the code under test.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write implements io.Writer.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Logger returns a text logger of records at level and above, and the
// Buffer it writes them to.
func Logger(level slog.Level) (*slog.Logger, *Buffer) {
	b := &Buffer{}
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: level})), b
}

// WriteFile writes data to path, creating the directories it needs, and
// returns the path.
func WriteFile(t testing.TB, path string, data []byte) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// Child is the running test binary again, running no test, with env
// ("NAME=value") added to the environment: for a test whose TestMain turns
// into a child process when it sees one of those variables (a writer to
// kill -9, a client to lose its connection).
func Child(env ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), env...)
	return cmd
}

// Start starts cmd and returns a reader of its standard output; with
// withStderr its standard error comes through the same pipe, else cmd's
// own Stderr is kept. The caller ends and waits for the process.
func Start(t testing.TB, cmd *exec.Cmd, withStderr bool) io.Reader {
	t.Helper()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if withStderr {
		cmd.Stderr = cmd.Stdout
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return out
}

// Do sends req with the default client and returns the response with its
// body read whole (and closed).
func Do(t testing.TB, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

// Get is Do for a GET of url.
func Get(t testing.TB, url string) (*http.Response, []byte) {
	t.Helper()
	return Do(t, Request(t, http.MethodGet, url, "", nil))
}

// Post is Do for a POST of body to url as contentType.
func Post(t testing.TB, url, contentType string, body io.Reader) (*http.Response, []byte) {
	t.Helper()
	return Do(t, Request(t, http.MethodPost, url, contentType, body))
}

// Request is http.NewRequest with the Content-Type header set when
// contentType is not empty.
func Request(t testing.TB, method, url, contentType string, body io.Reader) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	return req
}
