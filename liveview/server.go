package liveview

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/png"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/anytime-edge/edge/internal/netaddr"
)

//go:embed assets
var assets embed.FS

// Commands applies a limit change exactly as the MQTT command path does and
// returns its acknowledgement as JSON.
type Commands interface {
	Command(ctx context.Context, name string, payload []byte) (ack []byte, err error)
}

// Server is the live view. Publish and Point may be called from any
// goroutine; they never block on a client.
type Server struct {
	st       state
	cmds     Commands
	limits   func() any
	log      *slog.Logger
	srv      *http.Server
	ln       net.Listener
	encode   chan Frame
	minEvery time.Duration
	last     time.Time
	done     chan struct{}
}

// Options configure a Server.
type Options struct {
	// Addr is where to listen; it must be a loopback address.
	Addr string
	// History is how long the charts reach back (default 5 minutes).
	History time.Duration
	// MinInterval is the least time between two frames the page is sent
	// (default 200 ms): encoding images costs CPU the frames need.
	MinInterval time.Duration
	// Commands applies limit changes; nil hides the controls.
	Commands Commands
	// Limits returns the limits in force, shown beside the controls.
	Limits func() any
	Log    *slog.Logger
}

// Listen starts serving on o.Addr; Close stops.
func Listen(o Options) (*Server, error) {
	if err := checkLoopback(o.Addr); err != nil {
		return nil, err
	}
	if o.History <= 0 {
		o.History = 5 * time.Minute
	}
	if o.MinInterval <= 0 {
		o.MinInterval = 200 * time.Millisecond
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	ln, err := net.Listen("tcp", o.Addr)
	if err != nil {
		return nil, fmt.Errorf("live view: %w", err)
	}
	s := &Server{
		st: state{keep: o.History}, cmds: o.Commands, limits: o.Limits, log: o.Log, ln: ln,
		encode: make(chan Frame, 1), minEvery: o.MinInterval, done: make(chan struct{}),
	}
	mux := http.NewServeMux()
	static, _ := fs.Sub(assets, "assets")
	mux.Handle("GET /", http.FileServerFS(static))
	mux.HandleFunc("GET /api/state", s.handleState)
	mux.HandleFunc("GET /api/frame.png", s.handleImage(-1))
	mux.HandleFunc("GET /api/exit/{k}", s.handleExit)
	mux.HandleFunc("POST /api/command/{name}", s.handleCommand)
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go s.srv.Serve(ln)
	go s.encoder()
	return s, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close stops the server.
func (s *Server) Close(ctx context.Context) error {
	close(s.encode)
	<-s.done
	return s.srv.Shutdown(ctx)
}

// Publish hands the page a frame. Frames closer than MinInterval to the
// previous one are skipped (their points still reach the charts through
// Point); a frame still being encoded is replaced.
func (s *Server) Publish(f Frame, c Counters) {
	s.st.mu.Lock()
	s.st.counters = c
	s.st.mu.Unlock()
	now := time.Now()
	if now.Sub(s.last) < s.minEvery {
		return
	}
	s.last = now
	select {
	case s.encode <- f:
	default:
		select {
		case <-s.encode:
		default:
		}
		select {
		case s.encode <- f:
		default:
		}
	}
}

// Point adds a chart sample.
func (s *Server) Point(p Point) {
	s.st.mu.Lock()
	defer s.st.mu.Unlock()
	s.st.addPoint(p)
}

// encoder turns frames into PNGs off the frame loop.
func (s *Server) encoder() {
	defer close(s.done)
	for f := range s.encode {
		overlay := encodePNG(f.Overlay)
		thumbs := make([][]byte, len(f.Thumbs))
		for i, t := range f.Thumbs {
			thumbs[i] = encodePNG(t)
		}
		s.st.mu.Lock()
		s.st.seq++
		s.st.frame, s.st.overlay, s.st.thumbs = f, overlay, thumbs
		s.st.mu.Unlock()
	}
}

func encodePNG(img image.Image) []byte {
	if img == nil {
		return nil
	}
	var b bytes.Buffer
	enc := png.Encoder{CompressionLevel: png.BestSpeed}
	if err := enc.Encode(&b, img); err != nil {
		return nil
	}
	return b.Bytes()
}

// stateJSON is what /api/state returns.
type stateJSON struct {
	Seq      uint64   `json:"seq"`
	Frame    *Frame   `json:"frame"`
	History  []Point  `json:"history"`
	Counters Counters `json:"counters"`
	Limits   any      `json:"limits,omitempty"`
	Controls bool     `json:"controls"`
}

func (s *Server) handleState(w http.ResponseWriter, r *http.Request) {
	s.st.mu.Lock()
	out := stateJSON{Seq: s.st.seq, History: append([]Point(nil), s.st.history...), Counters: s.st.counters, Controls: s.cmds != nil}
	if s.st.seq > 0 {
		f := s.st.frame
		out.Frame = &f
	}
	s.st.mu.Unlock()
	if s.limits != nil {
		out.Limits = s.limits()
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(out)
}

// handleImage serves the overlay (k < 0) or exit k's thumbnail.
func (s *Server) handleImage(k int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.st.mu.Lock()
		var b []byte
		if k < 0 {
			b = s.st.overlay
		} else if k < len(s.st.thumbs) {
			b = s.st.thumbs[k]
		}
		s.st.mu.Unlock()
		if b == nil {
			http.Error(w, "no frame yet", http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "image/png")
		w.Header().Set("Cache-Control", "no-store")
		w.Write(b)
	}
}

func (s *Server) handleExit(w http.ResponseWriter, r *http.Request) {
	k, err := strconv.Atoi(strings.TrimSuffix(r.PathValue("k"), ".png"))
	if err != nil || k < 1 || k > 64 {
		http.Error(w, "want /api/exit/K.png with K an exit number", http.StatusBadRequest)
		return
	}
	s.handleImage(k-1)(w, r)
}

// maxCommandBytes bounds a command body.
const maxCommandBytes = 4096

func (s *Server) handleCommand(w http.ResponseWriter, r *http.Request) {
	if s.cmds == nil {
		http.Error(w, "commands are not enabled", http.StatusNotFound)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxCommandBytes+1))
	if err != nil || len(body) > maxCommandBytes {
		http.Error(w, "command body too large or unreadable", http.StatusBadRequest)
		return
	}
	ack, err := s.cmds.Command(r.Context(), r.PathValue("name"), body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(ack)
}

// checkLoopback refuses an address that is not on the loopback interface:
// the page has controls and no authentication.
func checkLoopback(addr string) error {
	ok, err := netaddr.Loopback(addr)
	if err != nil {
		return fmt.Errorf("live view address %q: %w", addr, err)
	}
	if !ok {
		return errors.New("live view address " + addr + ": must be a loopback address (127.0.0.1 or ::1), the page has controls and no authentication")
	}
	return nil
}
