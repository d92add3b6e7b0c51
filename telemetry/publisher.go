package telemetry

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/anytime-edge/edge/imaging"
	"github.com/anytime-edge/edge/telemetry/mqtt"
	"github.com/anytime-edge/edge/telemetry/spool"
)

// ErrQueueFull is returned by Publish when the spool writer has fallen
// behind; the message is dropped and counted.
var ErrQueueFull = errors.New("telemetry: publish queue full, message dropped")

// ErrClosed is returned by Publish after Close.
var ErrClosed = errors.New("telemetry: publisher closed")

var kindPattern = regexp.MustCompile(`^[a-z0-9-]{1,64}$`)

// tokenTimeout bounds every wait on a paho token outside the send window.
const tokenTimeout = 10 * time.Second

// transport is what the Publisher needs from its MQTT connection;
// *mqtt.Client implements it (tests use a fake).
type transport interface {
	Start()
	WaitConnected(ctx context.Context) error
	Epoch() (uint64, bool)
	EverUp() bool
	Up() <-chan struct{}
	Reconnects() uint64
	Publish(m mqtt.Message) mqtt.Token
	Close(ctx context.Context, quiesce time.Duration) error
}

type queued struct {
	topic   string
	qos     byte
	retain  bool
	seq     uint64
	payload []byte
}

// Publisher publishes messages durably and serves commands. Create it with
// New and release it with Close. Its methods are safe for concurrent use.
type Publisher struct {
	cfg    Config
	log    *slog.Logger
	ctrl   Controller
	topics Topics
	boot   string
	start  time.Time

	spool  *spool.Spool
	client transport
	m      *metrics
	send   *sender
	cmd    *commandPath

	pubMu  sync.Mutex // orders seq assignment with queueing
	seq    uint64
	closed bool
	in     chan queued

	direct    chan queued // retained messages and QoS 0 labels
	cmds      chan inbound
	stop      chan struct{} // stops the direct and command loops
	writerEnd chan struct{} // closed when the writer has drained
	wg        sync.WaitGroup

	statusMu  sync.Mutex
	bundle    *Bundle
	providers []string

	// onSynced, when set (tests), is called by the writer with the
	// highest envelope seq made durable by each fsync.
	onSynced func(seq uint64)
}

type inbound struct {
	topic   string
	payload []byte
}

// New validates cfg, opens the spool and starts connecting to
// cfg.BrokerURL in the background. It starts no broker and serves nothing:
// the caller owns those (StartBroker for the embedded broker, Metrics for
// its HTTP handler). ctrl receives validated commands, from MQTT and from
// Command; it may be nil, in which case every command is rejected. log may
// be nil.
func New(ctx context.Context, cfg Config, ctrl Controller, log *slog.Logger) (*Publisher, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if cfg.BrokerURL == "" {
		return nil, errors.New("telemetry: no broker url (start the embedded broker with StartBroker first)")
	}
	if log == nil {
		log = slog.Default()
	}
	log = log.With("component", "telemetry", "device", cfg.Device)
	var tlsCfg *tls.Config
	if u, _ := mqtt.ValidateURL(cfg.BrokerURL); mqtt.IsTLS(u) { // checked by withDefaults
		if tlsCfg, err = cfg.tlsConfig(); err != nil {
			return nil, err
		}
	}
	p := &Publisher{
		cfg:       cfg,
		log:       log,
		ctrl:      ctrl,
		topics:    NewTopics(cfg.Root, cfg.Site, cfg.Device),
		boot:      newBootID(),
		start:     time.Now().UTC(),
		in:        make(chan queued, cfg.QueueLen),
		direct:    make(chan queued, 64),
		cmds:      make(chan inbound, 64),
		stop:      make(chan struct{}),
		writerEnd: make(chan struct{}),
		onSynced:  cfg.onSynced,
	}
	p.spool, err = spool.Open(cfg.SpoolDir, spool.Options{MaxBytes: cfg.SpoolMaxBytes, MaxAge: cfg.SpoolMaxAge, Log: log})
	if err != nil {
		return nil, err
	}
	cleanup := func() { p.spool.Close() }
	will, err := json.Marshal(&Status{
		Envelope: Envelope{V: SchemaVersion, Device: cfg.Device, Boot: p.boot, TS: p.start},
		Online:   false, Reason: "lwt", Since: p.start, Software: cfg.Software,
	})
	if err != nil {
		cleanup()
		return nil, fmt.Errorf("encode last will: %w", err)
	}
	mc := mqtt.Config{
		URL:       cfg.BrokerURL,
		ClientID:  cfg.Device,
		Username:  cfg.Username,
		Password:  cfg.Password,
		Will:      &mqtt.Message{Topic: p.topics.Topic("status"), Payload: will, QoS: 1, Retained: true},
		KeepAlive: cfg.KeepAlive,
		Subscriptions: []mqtt.Subscription{{Filter: p.topics.Commands(), QoS: 1, Handler: func(topic string, payload []byte) {
			select {
			case p.cmds <- inbound{topic, payload}:
			case <-p.stop:
			}
		}}},
		OnConnect: func(uint64) { p.announce() },
		TLS:       tlsCfg,
		Log:       log,
	}
	if cfg.newTransport != nil {
		p.client, err = cfg.newTransport(mc)
	} else {
		p.client, err = mqtt.New(mc)
	}
	if err != nil {
		cleanup()
		return nil, err
	}
	p.m = newMetrics(p)
	p.send = newSender(p.spool, p.client, p.m, cfg.InFlight, p.stop, log)
	p.send.reportDrops = p.reportDrops
	p.send.onPass = cfg.onSenderPass
	p.cmd = &commandPath{
		ctrl: ctrl, seen: newSeenCommands(maxRememberedCommands), log: log, m: p.m, now: time.Now,
		ack: p.publishAck, report: p.publishConfig,
	}
	if st := p.spool.Stats(); st.Records > 0 {
		log.Info("spool holds messages from an earlier run; they will be replayed", "records", st.Records)
	}
	p.wg.Add(4)
	go p.directLoop()
	go p.writer()
	go func() {
		defer p.wg.Done()
		p.send.run()
	}()
	go p.commandLoop()
	p.client.Start()
	return p, nil
}

func newBootID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err))
	}
	return hex.EncodeToString(b[:])
}

// Boot is this process's boot id.
func (p *Publisher) Boot() string { return p.boot }

// Topics returns the device's topics.
func (p *Publisher) Topics() Topics { return p.topics }

// Metrics is the HTTP handler of the Publisher's Prometheus metrics (the
// exposition format, for /metrics); the caller serves it.
func (p *Publisher) Metrics() http.Handler {
	return promhttp.HandlerFor(p.m.reg, promhttp.HandlerOpts{})
}

// WaitConnected waits for the broker connection; see mqtt.Client.
func (p *Publisher) WaitConnected(ctx context.Context) error { return p.client.WaitConnected(ctx) }

// Publish fills in m's envelope and queues it. It never waits for the disk
// or the network: spooled messages (result, telemetry, event, cmd-ack) go
// to the spool writer, retained ones (status, config/reported) are sent
// when connected. It returns ErrQueueFull when the writer has fallen behind
// (the message is dropped and counted). ctx is not used for waiting; it is
// there for symmetry with blocking calls and may carry cancellation in
// later versions.
func (p *Publisher) Publish(ctx context.Context, m Message) error {
	if ev, ok := m.(*Event); ok && !kindPattern.MatchString(ev.Kind) {
		return fmt.Errorf("event kind %q: want 1 to 64 of [a-z0-9-]", ev.Kind)
	}
	if t, ok := m.(*Telemetry); ok {
		p.fillTelemetry(t)
	}
	p.m.observe(m)
	suffix, k := m.route()
	p.pubMu.Lock()
	defer p.pubMu.Unlock()
	if p.closed {
		return ErrClosed
	}
	if _, up := p.client.Epoch(); k == retained && !up {
		// Not sent, so no seq is used: a gap in seq stays a counted loss.
		// announce() publishes the latest status and config on connect.
		return nil
	}
	payload, err := p.encodeLocked(m)
	if err != nil {
		return err
	}
	if k == retained {
		if !p.sendDirect(queued{topic: p.topics.Topic(suffix), qos: 1, retain: true, payload: payload}) {
			p.m.queueDrops.Inc()
		}
		return nil
	}
	return p.enqueueLocked(queued{topic: p.topics.Topic(suffix), qos: 1, seq: p.seq, payload: payload})
}

// encodeLocked fills the envelope and marshals. Called with pubMu held so
// seq order is queue order.
func (p *Publisher) encodeLocked(m Message) ([]byte, error) {
	e := m.envelope()
	p.seq++
	e.V, e.Device, e.Boot, e.Seq = SchemaVersion, p.cfg.Device, p.boot, p.seq
	if e.TS.IsZero() {
		e.TS = time.Now()
	}
	e.TS = e.TS.UTC()
	b, err := json.Marshal(m)
	if err != nil {
		p.seq-- // nothing was published under this seq
		return nil, fmt.Errorf("encode %T: %w", m, err)
	}
	return b, nil
}

func (p *Publisher) enqueueLocked(q queued) error {
	select {
	case p.in <- q:
		return nil
	default:
		p.m.queueDrops.Inc()
		return ErrQueueFull
	}
}

// PublishLabels publishes a frame's label map, a paletted PNG, on
// result/labels. The Publisher adds a tEXt chunk with the keyword
// "anytime" holding the envelope and the frame id as JSON
// ({"v":1,"device":…,"boot":…,"seq":…,"ts":…,"frame":…}), so a consumer
// can join the map to its result; the image itself is unchanged. ts is the
// frame's capture time. With LabelsQoS 1, or durable set (a snapshot), it
// is spooled like a result; otherwise it is sent at QoS 0 only while
// connected and dropped (counted) when not.
func (p *Publisher) PublishLabels(ctx context.Context, frame uint64, ts time.Time, png []byte, durable bool) error {
	topic := p.topics.Topic("result/labels")
	p.pubMu.Lock()
	defer p.pubMu.Unlock()
	if p.closed {
		return ErrClosed
	}
	meta, err := json.Marshal(labelsMeta{
		Envelope: Envelope{V: SchemaVersion, Device: p.cfg.Device, Boot: p.boot, Seq: p.seq + 1, TS: ts.UTC()},
		Frame:    frame,
	})
	if err != nil {
		return fmt.Errorf("encode labels envelope: %w", err)
	}
	payload, err := imaging.AddPNGText(png, "anytime", meta)
	if err != nil {
		return fmt.Errorf("labels of frame %d: %w", frame, err)
	}
	p.seq++
	if p.cfg.LabelsQoS == 1 || durable {
		return p.enqueueLocked(queued{topic: topic, qos: 1, seq: p.seq, payload: payload})
	}
	if _, up := p.client.Epoch(); !up || !p.sendDirect(queued{topic: topic, qos: 0, payload: payload}) {
		p.m.labelDrops.Inc()
	}
	return nil
}

// labelsMeta is the JSON in a label map's "anytime" tEXt chunk.
type labelsMeta struct {
	Envelope
	Frame uint64 `json:"frame"`
}

// sendDirect hands a non-spooled message to the direct sender when
// connected. It never waits; it reports whether the message was queued.
func (p *Publisher) sendDirect(q queued) bool {
	if _, up := p.client.Epoch(); !up {
		return false // announce() republishes status and config on connect
	}
	select {
	case p.direct <- q:
		return true
	default:
		p.log.Warn("direct publish queue full; message dropped", "topic", q.topic)
		return false
	}
}

// directLoop publishes retained messages (QoS 1, in order, so the last
// retained value wins) and QoS 0 label maps.
func (p *Publisher) directLoop() {
	defer p.wg.Done()
	for {
		var q queued
		select {
		case <-p.stop:
			return
		case q = <-p.direct:
		}
		t := p.client.Publish(mqtt.Message{Topic: q.topic, QoS: q.qos, Retained: q.retain, Payload: q.payload})
		select {
		case <-t.Done():
			if err := t.Error(); err != nil {
				p.log.Warn("publish failed", "topic", q.topic, "err", err)
			}
		case <-time.After(tokenTimeout):
			p.log.Warn("publish not acknowledged in time", "topic", q.topic)
		case <-p.stop:
			return
		}
	}
}

// announce runs after every connection: retained online status and the
// limits in force.
func (p *Publisher) announce() {
	if err := p.publishStatus(); err != nil && !errors.Is(err, ErrClosed) {
		p.log.Warn("publish status", "err", err)
	}
	p.reportConfig()
}

func (p *Publisher) publishStatus() error {
	p.statusMu.Lock()
	st := &Status{Online: true, Since: p.start, Software: p.cfg.Software, Bundle: p.bundle, Providers: p.providers}
	p.statusMu.Unlock()
	return p.Publish(context.Background(), st)
}

// SetStatus sets the bundle and execution providers that the retained
// status reports, and republishes it when connected.
func (p *Publisher) SetStatus(ctx context.Context, bundle *Bundle, providers []string) error {
	p.statusMu.Lock()
	p.bundle, p.providers = bundle, append([]string(nil), providers...)
	p.statusMu.Unlock()
	return p.publishStatus()
}

// reportConfig publishes the limits in force (after every connection).
func (p *Publisher) reportConfig() {
	if p.ctrl != nil {
		p.publishConfig(p.ctrl.Limits())
	}
}

// publishConfig publishes l on config/reported (retained).
func (p *Publisher) publishConfig(l Limits) {
	if err := p.Publish(context.Background(), &ConfigReported{Limits: l}); err != nil && !errors.Is(err, ErrClosed) {
		p.log.Warn("publish config/reported", "err", err)
	}
}

func (p *Publisher) fillTelemetry(t *Telemetry) {
	st := p.spool.Stats()
	t.Spool = SpoolState{Depth: st.Records, Bytes: st.Bytes, Dropped: st.Dropped, Corrupt: st.Corrupt}
	if !st.Oldest.IsZero() {
		t.Spool.OldestAgeS = time.Since(st.Oldest).Seconds()
	}
	_, up := p.client.Epoch()
	t.Link = LinkState{Connected: up, Reconnects: p.client.Reconnects()}
}

// writer appends queued messages to the spool in batches, one fsync per
// batch, then wakes the sender.
func (p *Publisher) writer() {
	defer p.wg.Done()
	defer close(p.writerEnd)
	batch := make([]queued, 0, 512)
	failing := 0 // appends failed in a row; only the first is logged
	for {
		q, ok := <-p.in
		if !ok {
			return
		}
		batch = append(batch[:0], q)
	fill:
		for len(batch) < cap(batch) {
			select {
			case q, ok := <-p.in:
				if !ok {
					break fill
				}
				batch = append(batch, q)
			default:
				break fill
			}
		}
		var hi uint64
		for _, q := range batch {
			hi = max(hi, q.seq)
			if _, err := p.spool.Append(q.topic, q.qos, q.payload); err != nil {
				p.m.spoolErrors.Inc()
				if failing == 0 {
					p.log.Error("spool append failed; messages are lost (and counted) until a write succeeds", "topic", q.topic, "err", err)
				}
				failing++
			} else if failing > 0 {
				p.log.Info("spool appends succeed again", "failed_appends", failing)
				failing = 0
			}
		}
		if err := p.spool.Sync(); err != nil {
			p.m.spoolErrors.Inc()
			p.log.Error("spool sync failed", "err", err)
		} else if p.onSynced != nil {
			p.onSynced(hi)
		}
		p.send.notify()
	}
}

// reportDrops publishes event/spool-dropped with the drop counters: the
// total, the new ones since the last event, and why (a failed disk write,
// damage found on reading, or else the size or age bound).
func (p *Publisher) reportDrops(st spool.Stats, since uint64) {
	bound := st.Dropped - st.WriteLost - st.Damaged
	msg := fmt.Sprintf("the spool dropped messages (since start: %d by its size or age bound, %d lost to failed disk writes, %d found damaged)", bound, st.WriteLost, st.Damaged)
	p.log.Warn("spool dropped messages", "dropped_total", st.Dropped, "new", since, "bound_total", bound, "write_lost_total", st.WriteLost, "damaged_total", st.Damaged)
	ev := &Event{Kind: "spool-dropped", Message: msg, Data: map[string]string{
		"dropped_total": fmt.Sprint(st.Dropped), "new": fmt.Sprint(since),
		"write_lost_total": fmt.Sprint(st.WriteLost), "damaged_total": fmt.Sprint(st.Damaged)}}
	if err := p.Publish(context.Background(), ev); err != nil && !errors.Is(err, ErrClosed) {
		p.log.Warn("publish spool-dropped event", "err", err)
	}
}

// commandLoop handles inbound commands one at a time.
func (p *Publisher) commandLoop() {
	defer p.wg.Done()
	for {
		select {
		case <-p.stop:
			return
		case in := <-p.cmds:
			p.cmd.handle(context.Background(), strings.TrimPrefix(in.topic, p.topics.Base()+"cmd/"), in.payload)
		}
	}
}

// Command handles a command that did not come over MQTT (the live view's
// controls) exactly as one received on cmd/{name}: parsed, validated,
// deduplicated by cmd_id, applied, logged, acknowledged on cmd-ack and
// followed by config/reported when limits changed. It returns the
// acknowledgement.
func (p *Publisher) Command(ctx context.Context, name string, payload []byte) CmdAck {
	return p.cmd.handle(ctx, name, payload)
}

func (p *Publisher) publishAck(a *CmdAck) {
	if err := p.Publish(context.Background(), a); err != nil {
		p.log.Warn("publish cmd-ack", "err", err)
	}
}

// firstConnectGrace is how long Close waits for a first connection that
// has not come up yet, so a short run still delivers its results.
const firstConnectGrace = 3 * time.Second

// Close stops accepting messages, writes what is queued to the spool, gives
// the sender until ctx ends to deliver the spool (waiting up to
// firstConnectGrace for a first connection), publishes a retained
// offline status (reason "shutdown") and disconnects. Undelivered messages
// stay in the spool for the next run.
func (p *Publisher) Close(ctx context.Context) error {
	p.pubMu.Lock()
	if p.closed {
		p.pubMu.Unlock()
		return nil
	}
	p.closed = true
	close(p.in)
	p.pubMu.Unlock()
	<-p.writerEnd

	var errs []error
	p.send.drainReq.Store(true)
	p.send.notify()
	if _, up := p.client.Epoch(); !up && !p.client.EverUp() && p.spool.Stats().Records > 0 {
		// A short run (--once) can end before its first connection: give
		// the link a moment to come up and deliver what the run made. A
		// link that was up and is now lost is not waited for.
		wctx, cancel := context.WithTimeout(ctx, firstConnectGrace)
		if err := p.client.WaitConnected(wctx); err != nil {
			p.log.Info("closing before the first connection", "err", err)
		}
		cancel()
	}
	if _, up := p.client.Epoch(); up {
		select {
		case <-p.send.drained:
		case <-ctx.Done():
			p.log.Warn("closing with undelivered messages; they stay in the spool", "records", p.spool.Stats().Records)
		}
	}
	close(p.stop)
	p.wg.Wait()

	// Offline status: published directly, waited on with a timeout.
	if _, up := p.client.Epoch(); up {
		st := &Status{Online: false, Reason: "shutdown", Since: p.start, Software: p.cfg.Software}
		p.pubMu.Lock()
		b, err := p.encodeLocked(st)
		p.pubMu.Unlock()
		if err == nil {
			t := p.client.Publish(mqtt.Message{Topic: p.topics.Topic("status"), QoS: 1, Retained: true, Payload: b})
			select {
			case <-t.Done():
				if err := t.Error(); err != nil {
					errs = append(errs, fmt.Errorf("publish offline status: %w", err))
				}
			case <-time.After(tokenTimeout):
				errs = append(errs, errors.New("publish offline status: timed out"))
			case <-ctx.Done():
			}
		}
	}
	cctx, cancel := context.WithTimeout(context.Background(), tokenTimeout)
	defer cancel()
	if err := p.client.Close(cctx, 250*time.Millisecond); err != nil {
		errs = append(errs, err)
	}
	if err := p.spool.Close(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
