package sink

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"

	"github.com/anytime-edge/edge/internal/httpserve"
	"github.com/anytime-edge/edge/internal/netaddr"
)

// MetricsServer serves a Prometheus handler on /metrics at a loopback
// address. Create it with ServeMetrics and stop it with Close.
type MetricsServer struct {
	srv *http.Server
	ln  net.Listener
}

// ServeMetrics serves h (e.g. telemetry.Publisher.Metrics) on
// http://addr/metrics; addr must be a loopback address.
func ServeMetrics(addr string, h http.Handler, log *slog.Logger) (*MetricsServer, error) {
	ok, err := netaddr.Loopback(addr)
	if err != nil {
		return nil, fmt.Errorf("metrics address %q: %w", addr, err)
	}
	if !ok {
		return nil, fmt.Errorf("metrics address %q: want a loopback address (127.0.0.1 or ::1)", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics listen on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", h)
	return &MetricsServer{srv: httpserve.Serve(ln, mux, httpserve.Timeouts{}, log), ln: ln}, nil
}

// Addr is the address the server listens on.
func (m *MetricsServer) Addr() string { return m.ln.Addr().String() }

// Close stops the server, waiting until ctx ends for scrapes in progress.
func (m *MetricsServer) Close(ctx context.Context) error {
	if err := m.srv.Shutdown(ctx); err != nil {
		return fmt.Errorf("metrics server: %w", err)
	}
	return nil
}
