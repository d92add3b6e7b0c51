package liveview

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/anytime-edge/edge/internal/httpserve"
)

// TestCommandsOnlyFromThePage: a command changes anything only when it is
// JSON sent by the page itself to the server's own address; every other
// request is refused before the command path sees it.
func TestCommandsOnlyFromThePage(t *testing.T) {
	cmds := &fakeCommands{}
	s, err := Listen(Options{Addr: "127.0.0.1:0", Commands: cmds})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	self := "http://" + s.Addr()
	_, port, err := net.SplitHostPort(s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	body := `{"v":1}`
	tests := []struct {
		name    string
		method  string
		path    string
		host    string // "" keeps the server's address
		headers map[string]string
		want    int
	}{
		{"the page", "POST", "/api/command/set-deadline", "", map[string]string{"Content-Type": "application/json", "Origin": self, "Sec-Fetch-Site": "same-origin"}, http.StatusOK},
		{"the page via localhost", "POST", "/api/command/set-deadline", "localhost:" + port, map[string]string{"Content-Type": "application/json; charset=utf-8", "Origin": "http://localhost:" + port}, http.StatusOK},
		{"curl", "POST", "/api/command/set-deadline", "", map[string]string{"Content-Type": "application/json"}, http.StatusOK},
		{"another origin", "POST", "/api/command/set-deadline", "", map[string]string{"Content-Type": "application/json", "Origin": "http://evil.example"}, http.StatusForbidden},
		{"cross-site fetch", "POST", "/api/command/set-deadline", "", map[string]string{"Content-Type": "application/json", "Sec-Fetch-Site": "cross-site"}, http.StatusForbidden},
		{"a form post", "POST", "/api/command/set-deadline", "", map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, http.StatusUnsupportedMediaType},
		{"text/plain (no preflight)", "POST", "/api/command/set-deadline", "", map[string]string{"Content-Type": "text/plain"}, http.StatusUnsupportedMediaType},
		{"no content type", "POST", "/api/command/set-deadline", "", nil, http.StatusUnsupportedMediaType},
		{"DNS rebinding, command", "POST", "/api/command/set-deadline", "evil.example:" + port, map[string]string{"Content-Type": "application/json", "Origin": "http://evil.example:" + port}, http.StatusMisdirectedRequest},
		{"DNS rebinding, state", "GET", "/api/state", "evil.example:" + port, nil, http.StatusMisdirectedRequest},
		{"another port", "GET", "/api/state", "127.0.0.1:1", nil, http.StatusMisdirectedRequest},
	}
	accepted := 0
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var rd io.Reader
			if tc.method == "POST" {
				rd = strings.NewReader(body)
			}
			req, err := http.NewRequest(tc.method, self+tc.path, rd)
			if err != nil {
				t.Fatal(err)
			}
			if tc.host != "" {
				req.Host = tc.host
			}
			for k, v := range tc.headers {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Errorf("status %d, want %d", resp.StatusCode, tc.want)
			}
			if tc.method == "POST" && tc.want == http.StatusOK {
				accepted++
			}
			if got := len(cmds.received()); got != accepted {
				t.Errorf("the command path saw %d commands, want %d", got, accepted)
			}
		})
	}
}

// TestSlowBodyTimesOut: a client that sends a command's headers and then
// trickles (or withholds) its body is cut off by the read timeout instead
// of holding the connection.
func TestSlowBodyTimesOut(t *testing.T) {
	cmds := &fakeCommands{}
	s, err := Listen(Options{Addr: "127.0.0.1:0", Commands: cmds, Timeouts: httpserve.Timeouts{Read: 200 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	conn, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	req := "POST /api/command/set-deadline HTTP/1.1\r\nHost: " + s.Addr() + "\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"v\""
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	// The rest of the body never comes. The server must answer or close
	// well before this generous bound; without a read timeout it waits
	// for ever.
	if err := conn.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatalf("a command with a withheld body was answered %d", resp.StatusCode)
		}
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("the server still held the connection 10 s after the body stalled")
	}
	if got := cmds.received(); len(got) != 0 {
		t.Fatalf("the command path saw %v", got)
	}
}
