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
	"mime"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/anytime-edge/edge/internal/httpserve"
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
	hosts    map[string]bool // Host headers naming this server
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
	// Timeouts override the default per-request timeouts
	// (internal/httpserve); a slow request is cut off either way.
	Timeouts httpserve.Timeouts
	Log      *slog.Logger
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
	s.hosts = loopbackHosts(ln.Addr().(*net.TCPAddr))
	s.srv = httpserve.Serve(ln, s.checkHost(mux), o.Timeouts, o.Log)
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
	if code, why := sameOriginJSON(r); code != 0 {
		s.log.Warn("command refused", "name", r.PathValue("name"), "origin", r.Header.Get("Origin"), "why", why)
		http.Error(w, why, code)
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

// checkHost answers only requests whose Host names this server (its
// loopback address, or localhost, with its port): a page on another site
// that rebinds its DNS name to 127.0.0.1 reaches the socket but not the
// handlers.
func (s *Server) checkHost(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.hosts[strings.ToLower(r.Host)] {
			http.Error(w, "unknown host "+strconv.Quote(r.Host)+": the live view answers only to its loopback address", http.StatusMisdirectedRequest)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// loopbackHosts are the Host values that name a server bound to a.
func loopbackHosts(a *net.TCPAddr) map[string]bool {
	port := strconv.Itoa(a.Port)
	return map[string]bool{
		net.JoinHostPort(a.IP.String(), port): true,
		net.JoinHostPort("localhost", port):   true,
	}
}

// sameOriginJSON says why a command request is refused (an HTTP status and
// a reason), or 0 when it may change something: a JSON body, sent by the
// page itself. Browsers send Origin and Sec-Fetch-Site with every POST;
// a cross-site form or fetch carries another origin (and cannot set the
// JSON content type without a preflight that this server never grants). A
// client that is not a browser (curl) sends neither header.
func sameOriginJSON(r *http.Request) (int, string) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return http.StatusUnsupportedMediaType, "commands must be sent as Content-Type: application/json"
	}
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" {
		return http.StatusForbidden, "cross-site command refused (Sec-Fetch-Site: " + site + ")"
	}
	if origin := r.Header.Get("Origin"); origin != "" && origin != "http://"+r.Host {
		return http.StatusForbidden, "cross-origin command refused (Origin: " + origin + ")"
	}
	return 0, ""
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
