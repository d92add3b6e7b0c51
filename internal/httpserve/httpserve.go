// Package httpserve starts the runtime's small HTTP servers (the live view,
// metrics) with the timeouts every one of them needs: a client that sends
// its headers or body slowly, or never reads the answer, is cut off instead
// of holding a connection and a goroutine for ever.
//
// Its place in the tree, and what it may import: docs/architecture.md.
package httpserve

import (
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// Default timeouts of every request. A body (the live view's commands are
// at most a few kilobytes) must arrive within ReadTimeout of the request's
// start.
const (
	ReadHeaderTimeout = 5 * time.Second
	ReadTimeout       = 10 * time.Second
	WriteTimeout      = 30 * time.Second
	IdleTimeout       = 60 * time.Second
	MaxHeaderBytes    = 16 << 10
)

// Timeouts override the defaults; zero fields keep them.
type Timeouts struct {
	ReadHeader, Read, Write, Idle time.Duration
}

// Serve serves h on ln in the background and returns the server; stop it
// with Shutdown or Close. An error other than a clean shutdown is logged.
func Serve(ln net.Listener, h http.Handler, t Timeouts, log *slog.Logger) *http.Server {
	or := func(d, def time.Duration) time.Duration {
		if d > 0 {
			return d
		}
		return def
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: or(t.ReadHeader, ReadHeaderTimeout),
		ReadTimeout:       or(t.Read, ReadTimeout),
		WriteTimeout:      or(t.Write, WriteTimeout),
		IdleTimeout:       or(t.Idle, IdleTimeout),
		MaxHeaderBytes:    MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("http server stopped", "addr", ln.Addr().String(), "err", err)
		}
	}()
	return srv
}
