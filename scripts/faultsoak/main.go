// Command faultsoak runs `edge run` for a while under injected faults and
// checks the fleet link's promise: every result is delivered exactly once
// after de-duplication by (device, boot, seq), or counted as dropped, and
// the daemon always stops on SIGTERM within a few seconds.
//
// Everything is on loopback: an in-process embedded broker (the same
// telemetry/broker the daemon embeds) that the soak stops and restarts, an
// HTTP MJPEG camera that stalls and returns, and a spool on a small tmpfs
// that is filled and emptied (mounting it needs root). Every minute (or 78 s)
// is one cycle of faults:
//
//	 0 s  streaming, broker up
//	 8 s  broker outage (12 s; every third cycle 30 s, past the spool bound)
//	      — the results spool
//	20 s  broker back; the spool drains
//	25 s  disk full (8 s), then emptied
//	33 s  camera stalls (19 s; after the daemon's 10 s stall limit it
//	      reports the stall and reopens the stream)
//	45 s  the daemon is stopped and started again, in turn: SIGTERM with the
//	      broker up, kill -9 with the broker up, SIGTERM with the broker
//	      down (from 41 s to 48 s), kill -9 with the broker down
//	52 s  camera back
//
// Stops happen with the camera stalled, so no result is half-way through
// the pipeline and the daemon's counters (scraped from its /metrics just
// before the stop) are final. At the end the broker stays up until the
// spool is empty. The soak fails when a payload is damaged, two copies of
// one (device, boot, seq) differ, more results are missing than the daemons
// counted as dropped (edge_spool_dropped_total +
// edge_publish_queue_dropped_total; those counters cover every spooled
// message, so this bounds the loss rather than matching it message by
// message), the daemon exits on its own, or a SIGTERM takes longer than
// -stop-limit.
//
//	go build -o bin/edge ./cmd/edge && go build -o bin/faultsoak ./scripts/faultsoak
//	sudo bin/faultsoak -minutes 10     # -minutes 1 for one cycle
//
// Its place in the tree, and what it may import: docs/architecture.md.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"image"
	"image/jpeg"
	"image/png"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/anytime-edge/edge/telemetry/broker"
)

func main() {
	minutes := flag.Int("minutes", 10, "length of the soak; one cycle of faults per minute")
	edgeBin := flag.String("edge", "bin/edge", "the edge binary")
	bundle := flag.String("bundle", "models/zoo/fashion-pose-adpc", "bundle to run (keypoints: no label maps, so every message is JSON)")
	frames := flag.String("frames", "models/zoo/samples/figure-10?.png", "images the camera sends, in a loop")
	stopLimit := flag.Duration("stop-limit", 5*time.Second, "longest a SIGTERM may take to end the daemon")
	keep := flag.Bool("keep", false, "keep the work directory (daemon logs) afterwards")
	flag.Parse()
	if *minutes < 1 {
		fmt.Fprintln(os.Stderr, "faultsoak: -minutes must be at least 1")
		os.Exit(2)
	}
	s, err := newSoak(*edgeBin, *bundle, *frames, *stopLimit)
	if err != nil {
		fmt.Fprintln(os.Stderr, "faultsoak:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	ok := s.run(ctx, *minutes)
	stop()
	s.cleanup(*keep)
	if !ok {
		os.Exit(1)
	}
}

// soak holds the faults it injects and what it observed.
type soak struct {
	edgeBin, bundle string
	stopLimit       time.Duration
	work, disk      string // work directory; the tmpfs holding the spool
	cam             *camera
	brokerAddr      string
	brk             *broker.Broker
	rec             *recorder
	metricsAddr     string

	proc     *exec.Cmd
	procDone chan error
	procN    int

	// Figures.
	starts, sigterms, kills, outages, diskFulls, stalls int
	stopTimes                                           []time.Duration
	published, dropped, queueDropped, spoolErrors       float64
	failures                                            []string
}

func newSoak(edgeBin, bundle, frames string, stopLimit time.Duration) (*soak, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("run as root: the spool lives on a small tmpfs that the soak mounts, fills and empties")
	}
	for _, p := range []string{edgeBin, filepath.Join(bundle, "bundle.json")} {
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("%w (build with: go build -o bin/edge ./cmd/edge)", err)
		}
	}
	work, err := os.MkdirTemp("", "faultsoak-")
	if err != nil {
		return nil, err
	}
	s := &soak{edgeBin: edgeBin, bundle: bundle, stopLimit: stopLimit, work: work, disk: filepath.Join(work, "disk"), rec: newRecorder()}
	if err := os.Mkdir(s.disk, 0o700); err != nil {
		return nil, err
	}
	// 2 MiB: the spool is bounded at 512 KiB, the rest is what the filler
	// takes to make the disk full.
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs", s.disk).CombinedOutput(); err != nil {
		os.RemoveAll(work)
		return nil, fmt.Errorf("mount tmpfs on %s: %v: %s", s.disk, err, out)
	}
	if s.cam, err = newCamera(frames); err != nil {
		s.cleanup(false)
		return nil, err
	}
	s.brokerAddr, s.metricsAddr = freeAddr(), freeAddr()
	return s, nil
}

func (s *soak) cleanup(keep bool) {
	if s.proc != nil {
		s.proc.Process.Kill()
		<-s.procDone
	}
	if s.brk != nil {
		s.brk.Close()
	}
	if s.cam != nil {
		s.cam.close()
	}
	exec.Command("umount", s.disk).Run()
	if keep {
		fmt.Println("work directory kept:", s.work)
		return
	}
	os.RemoveAll(s.work)
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func (s *soak) fail(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	s.failures = append(s.failures, msg)
	fmt.Println("  FAIL:", msg)
}

func (s *soak) logf(format string, args ...any) {
	fmt.Printf("%s  %s\n", time.Now().UTC().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// brokerUp starts the broker; the recorder sees every publish it accepts,
// before its PUBACK.
func (s *soak) brokerUp() {
	if s.brk != nil {
		return
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	var err error
	for i := 0; i < 50; i++ { // the port may linger for a moment
		s.brk, err = broker.Start(broker.Config{Listen: s.brokerAddr, Log: quiet, Tap: s.rec.record})
		if err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.fail("broker restart: %v", err)
}

func (s *soak) brokerDown() {
	if s.brk == nil {
		return
	}
	s.outages++
	s.brk.Close()
	s.brk = nil
}

// startEdge starts the daemon.
func (s *soak) startEdge() {
	s.procN++
	s.starts++
	logf, err := os.Create(filepath.Join(s.work, fmt.Sprintf("edge-%02d.log", s.procN)))
	if err != nil {
		s.fail("daemon log: %v", err)
		return
	}
	cmd := exec.Command(s.edgeBin, "--log-format", "text", "run", "--bundle", s.bundle,
		"--site", "soak", "--device", "cam-1", "--mqtt", "tcp://"+s.brokerAddr,
		"--spool", filepath.Join(s.disk, "spool"), "--spool-max-bytes", "512KiB",
		"--metrics", s.metricsAddr, s.cam.url())
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		s.fail("start the daemon: %v", err)
		return
	}
	logf.Close()
	s.proc, s.procDone = cmd, make(chan error, 1)
	go func() { s.procDone <- cmd.Wait() }()
}

// exitedEarly reports (once) a daemon that ended without being stopped.
func (s *soak) exitedEarly() bool {
	if s.proc == nil {
		return false
	}
	select {
	case err := <-s.procDone:
		s.fail("the daemon (run %d) exited on its own: %v (log: edge-%02d.log)", s.procN, err, s.procN)
		s.proc = nil
		return true
	default:
		return false
	}
}

// metrics scrapes the daemon's counters.
func (s *soak) metrics() (map[string]float64, error) {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + s.metricsAddr + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 2 && !strings.HasPrefix(f[0], "#") {
			if v, err := strconv.ParseFloat(f[1], 64); err == nil {
				out[f[0]] = v
			}
		}
	}
	return out, sc.Err()
}

// stopEdge stops the daemon with sig after taking its final counters.
func (s *soak) stopEdge(sig syscall.Signal) {
	if s.exitedEarly() || s.proc == nil {
		return
	}
	m, err := s.metrics()
	if err != nil {
		s.fail("scrape the daemon's metrics before stopping it: %v", err)
	} else {
		s.published += m["edge_frames_total"]
		s.dropped += m["edge_spool_dropped_total"]
		s.queueDropped += m["edge_publish_queue_dropped_total"]
		s.spoolErrors += m["edge_spool_errors_total"]
	}
	t0 := time.Now()
	s.proc.Process.Signal(sig)
	select {
	case <-s.procDone:
	case <-time.After(30 * time.Second):
		s.fail("%v did not end the daemon within 30 s; killed", sig)
		s.proc.Process.Kill()
		<-s.procDone
	}
	d := time.Since(t0)
	if sig == syscall.SIGTERM {
		s.sigterms++
		s.stopTimes = append(s.stopTimes, d)
		if d > s.stopLimit {
			s.fail("SIGTERM took %v to end the daemon (limit %v; log: edge-%02d.log)", d.Round(time.Millisecond), s.stopLimit, s.procN)
		}
	} else {
		s.kills++
	}
	s.logf("daemon run %d stopped by %v in %v", s.procN, sig, d.Round(time.Millisecond))
	s.proc = nil
}

// fillDisk fills the spool's tmpfs and returns a function that empties it.
func (s *soak) fillDisk() func() {
	s.diskFulls++
	path := filepath.Join(s.disk, "filler")
	f, err := os.Create(path)
	if err != nil {
		s.fail("disk filler: %v", err)
		return func() {}
	}
	buf := make([]byte, 16<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			break // ENOSPC
		}
	}
	f.Close()
	return func() { os.Remove(path) }
}

// sleep waits d, checking on the daemon; false when the soak is cancelled.
func (s *soak) sleep(ctx context.Context, d time.Duration) bool {
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(min(time.Until(end), 500*time.Millisecond)):
		}
		if s.exitedEarly() {
			s.startEdge()
		}
	}
	return true
}

func (s *soak) run(ctx context.Context, minutes int) bool {
	start := time.Now()
	s.brokerUp()
	s.startEdge()
	s.logf("soak: %d cycles; daemon logs in %s", minutes, s.work)
	for c := 0; c < minutes && ctx.Err() == nil; c++ {
		s.logf("cycle %d", c+1)
		outage := 12 * time.Second
		if c%3 == 2 {
			outage = 30 * time.Second
		}
		steps := []struct {
			wait time.Duration
			do   func()
		}{
			{8 * time.Second, func() { s.logf("broker down for %v", outage); s.brokerDown() }},
			{outage, func() { s.logf("broker up"); s.brokerUp() }},
			{5 * time.Second, nil},
		}
		for _, st := range steps {
			if !s.sleep(ctx, st.wait) {
				break
			}
			if st.do != nil {
				st.do()
			}
		}
		if ctx.Err() != nil {
			break
		}
		s.logf("disk full for 8 s")
		empty := s.fillDisk()
		ok := s.sleep(ctx, 8*time.Second)
		empty()
		s.logf("disk emptied")
		if !ok {
			break
		}
		s.logf("camera stalls for 19 s")
		s.stalls++
		s.cam.stall(true)
		if !s.sleep(ctx, 8*time.Second) {
			break
		}
		brokerDown := c%4 >= 2
		sig := syscall.SIGTERM
		if c%2 == 1 {
			sig = syscall.SIGKILL
		}
		if brokerDown {
			s.logf("broker down")
			s.brokerDown()
		}
		// 12 s into the stall: past the daemon's stall limit, it is
		// reopening the stream.
		if !s.sleep(ctx, 4*time.Second) {
			break
		}
		s.stopEdge(sig)
		s.startEdge()
		if !s.sleep(ctx, 3*time.Second) {
			break
		}
		if brokerDown {
			s.logf("broker up")
			s.brokerUp()
		}
		if !s.sleep(ctx, 4*time.Second) {
			break
		}
		s.logf("camera back")
		s.cam.stall(false)
		if !s.sleep(ctx, 8*time.Second) {
			break
		}
	}
	// Drain: camera stalled, broker up, until the spool is empty.
	s.logf("draining")
	s.cam.stall(true)
	s.brokerUp()
	for end := time.Now().Add(90 * time.Second); time.Now().Before(end) && !s.exitedEarly(); time.Sleep(500 * time.Millisecond) {
		if m, err := s.metrics(); err == nil && m["edge_spool_records"] == 0 {
			break
		}
	}
	time.Sleep(2 * time.Second)
	s.stopEdge(syscall.SIGTERM)
	return s.report(time.Since(start))
}

func (s *soak) report(elapsed time.Duration) bool {
	r := s.rec.summary()
	for _, p := range r.problems {
		s.fail("%s", p)
	}
	missing := s.published - float64(r.results)
	counted := s.dropped + s.queueDropped
	if missing > counted {
		s.fail("%.0f results missing but only %.0f messages counted as dropped", missing, counted)
	}
	if missing < 0 {
		s.fail("%.0f more results delivered than the daemons published", -missing)
	}
	sort.Slice(s.stopTimes, func(i, j int) bool { return s.stopTimes[i] < s.stopTimes[j] })
	var maxStop time.Duration
	if n := len(s.stopTimes); n > 0 {
		maxStop = s.stopTimes[n-1]
	}
	fmt.Printf(`
fault soak: %v, %d daemon runs (%d SIGTERM, %d kill -9), %d broker outages, %d disk-full periods, %d camera stalls
  results published (edge_frames_total)   %.0f
  results delivered (distinct boot, seq)  %d  over %d boots
  sent from the spool ("replay":true)     %d
  duplicates removed                      %d  (%d with "replay":true)
  results missing                         %.0f
  counted as dropped                      %.0f spool (bound, failed writes, damage) + %.0f queue; spool errors %.0f
  SIGTERM to exit                         max %v (limit %v)
`, elapsed.Round(time.Second), s.starts, s.sigterms, s.kills, s.outages, s.diskFulls, s.stalls,
		s.published, r.results, r.boots, r.firstReplay, r.duplicates, r.replayed, missing, s.dropped, s.queueDropped, s.spoolErrors,
		maxStop.Round(time.Millisecond), s.stopLimit)
	var kinds []string
	for k, v := range r.events {
		kinds = append(kinds, fmt.Sprintf("%s %d", k, v))
	}
	sort.Strings(kinds)
	fmt.Printf("  events delivered                        %s\n", strings.Join(kinds, ", "))
	stallEvents := 0
	for k, v := range r.events {
		if strings.Contains(k, "stall") {
			stallEvents += v
		}
	}
	if stallEvents == 0 {
		s.fail("the daemon reported none of the %d camera stalls (no event/…stall…)", s.stalls)
	}
	if len(s.failures) > 0 {
		fmt.Printf("fault soak: FAIL (%d problems)\n", len(s.failures))
		return false
	}
	fmt.Println("fault soak: ok")
	return true
}

// recorder keeps every message the broker accepted, by (device, boot, seq).
type recorder struct {
	mu          sync.Mutex
	seen        map[string]string // key → payload without the replay mark
	results     int
	boots       map[string]bool
	duplicates  int
	replayed    int // duplicates marked "replay":true
	firstReplay int // first copies marked "replay":true (sent from the spool after an outage or restart)
	events      map[string]int
	problems    []string
}

func newRecorder() *recorder {
	return &recorder{seen: map[string]string{}, boots: map[string]bool{}, events: map[string]int{}}
}

func (r *recorder) record(topic string, payload []byte, retained bool) {
	var env struct {
		Device string `json:"device"`
		Boot   string `json:"boot"`
		Seq    uint64 `json:"seq"`
		Replay bool   `json:"replay"`
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := json.Unmarshal(payload, &env); err != nil || env.Boot == "" || env.Seq == 0 {
		if len(r.problems) < 20 {
			r.problems = append(r.problems, fmt.Sprintf("damaged message on %s: %.80q", topic, payload))
		}
		return
	}
	if retained {
		return // status and config/reported are not spooled
	}
	body := string(bytes.TrimSuffix(payload, []byte(`,"replay":true}`)))
	key := env.Device + "/" + env.Boot + "/" + strconv.FormatUint(env.Seq, 10)
	if prev, ok := r.seen[key]; ok {
		r.duplicates++
		if env.Replay {
			r.replayed++
		}
		if strings.TrimSuffix(prev, "}") != strings.TrimSuffix(body, "}") && len(r.problems) < 20 {
			r.problems = append(r.problems, fmt.Sprintf("two different messages with (device, boot, seq) %s", key))
		}
		return
	}
	r.seen[key] = body
	r.boots[env.Boot] = true
	if env.Replay {
		r.firstReplay++
	}
	if i := strings.Index(topic, "/event/"); i >= 0 {
		r.events[topic[i+len("/event/"):]]++
	}
	if strings.HasSuffix(topic, "/result") {
		r.results++
	}
}

type summary struct {
	results, boots, duplicates, replayed, firstReplay int
	events                                            map[string]int
	problems                                          []string
}

func (r *recorder) summary() summary {
	r.mu.Lock()
	defer r.mu.Unlock()
	ev := map[string]int{}
	for k, v := range r.events {
		ev[k] = v
	}
	return summary{r.results, len(r.boots), r.duplicates, r.replayed, r.firstReplay, ev, append([]string(nil), r.problems...)}
}

// camera serves an MJPEG stream over HTTP at 10 frames/s that can stall:
// while stalled it keeps its connections open and sends nothing.
type camera struct {
	srv     *http.Server
	addr    string
	frames  [][]byte
	stalled atomic.Bool
}

func newCamera(pattern string) (*camera, error) {
	names, err := filepath.Glob(pattern)
	if err != nil || len(names) == 0 {
		return nil, fmt.Errorf("camera frames %q: none found", pattern)
	}
	c := &camera{}
	for _, n := range names {
		f, err := os.Open(n)
		if err != nil {
			return nil, err
		}
		img, err := png.Decode(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("camera frame %s: %w", n, err)
		}
		var b bytes.Buffer
		if err := jpeg.Encode(&b, toRGBA(img), &jpeg.Options{Quality: 90}); err != nil {
			return nil, err
		}
		c.frames = append(c.frames, b.Bytes())
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	c.addr = l.Addr().String()
	c.srv = &http.Server{Handler: http.HandlerFunc(c.serve), ReadHeaderTimeout: 5 * time.Second}
	go c.srv.Serve(l)
	return c, nil
}

func toRGBA(img image.Image) *image.RGBA {
	out := image.NewRGBA(img.Bounds())
	for y := img.Bounds().Min.Y; y < img.Bounds().Max.Y; y++ {
		for x := img.Bounds().Min.X; x < img.Bounds().Max.X; x++ {
			out.Set(x, y, img.At(x, y))
		}
	}
	return out
}

func (c *camera) url() string { return "http://" + c.addr + "/cam.mjpeg" }

func (c *camera) stall(on bool) { c.stalled.Store(on) }

func (c *camera) close() { c.srv.Close() }

func (c *camera) serve(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "multipart/x-mixed-replace; boundary=frame")
	fl, _ := w.(http.Flusher)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for i := 0; ; {
		select {
		case <-r.Context().Done():
			return
		case <-tick.C:
		}
		if c.stalled.Load() {
			continue
		}
		f := c.frames[i%len(c.frames)]
		i++
		if _, err := fmt.Fprintf(w, "--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n", len(f)); err != nil {
			return
		}
		if _, err := w.Write(f); err != nil {
			return
		}
		if _, err := io.WriteString(w, "\r\n"); err != nil {
			return
		}
		if fl != nil {
			fl.Flush()
		}
	}
}
