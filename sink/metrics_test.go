package sink

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/anytime-edge/edge/internal/testkit"
)

// TestServeMetrics serves a handler on /metrics at a loopback address and
// refuses any other address.
func TestServeMetrics(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "edge_frames_total 3\n") })
	m, err := ServeMetrics("127.0.0.1:0", h, log)
	if err != nil {
		t.Fatal(err)
	}
	resp, body := testkit.Get(t, "http://"+m.Addr()+"/metrics")
	if resp.StatusCode != http.StatusOK || string(body) != "edge_frames_total 3\n" {
		t.Fatalf("GET /metrics: %d %q", resp.StatusCode, body)
	}
	if err := m.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, addr := range []string{"0.0.0.0:9464", ":9464", "10.0.0.2:9464", "127.0.0.1"} {
		if _, err := ServeMetrics(addr, h, log); err == nil || !strings.Contains(err.Error(), "metrics address") {
			t.Errorf("%s: got %v, want a refusal naming the metrics address", addr, err)
		}
	}
}
