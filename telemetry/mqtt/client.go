package mqtt

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
)

// Message is an MQTT application message.
type Message struct {
	Topic    string
	Payload  []byte
	QoS      byte
	Retained bool
}

// Handler receives an inbound message. It must not block for long; see
// Config.Ordered.
type Handler func(topic string, payload []byte)

// Subscription is a filter subscribed on every connection.
type Subscription struct {
	Filter  string
	QoS     byte
	Handler Handler
}

// Config configures a Client.
type Config struct {
	// URL is the broker, e.g. tcp://127.0.0.1:1883 or mqtts://host:8883.
	URL string
	// ClientID is the MQTT client id (the device id).
	ClientID string
	// Username and Password are optional credentials.
	Username string
	Password string
	// TLS is used for ssl://, tls://, mqtts:// URLs.
	TLS *tls.Config
	// Will is the last-will message, if any.
	Will *Message
	// Subscriptions are made after every successful connection.
	Subscriptions []Subscription
	// Ordered runs handlers one at a time in arrival order (they must then
	// return at once); by default each runs in its own goroutine.
	Ordered bool
	// OnConnect runs in its own goroutine after every successful
	// connection, after the epoch has changed.
	OnConnect func(epoch uint64)
	// Timeouts; zero means the default in parentheses.
	KeepAlive            time.Duration // 30 s
	PingTimeout          time.Duration // 10 s
	WriteTimeout         time.Duration // 10 s
	ConnectTimeout       time.Duration // 10 s
	MaxReconnectInterval time.Duration // 30 s
	// TokenTimeout bounds waits for subscribe and disconnect tokens (10 s).
	TokenTimeout time.Duration
	// Log receives connection events. Credentials are never logged.
	Log *slog.Logger
}

// ErrRefused wraps connection refusals that will not go away by retrying
// with the same settings (bad credentials, not authorised, id rejected).
var ErrRefused = errors.New("broker refused the connection")

// ErrNotConnected is returned by Publish before the first connection and
// by WaitConnected when the context ends first.
var ErrNotConnected = errors.New("not connected to the broker")

// Token is the pending result of a publish.
type Token interface {
	// Done is closed when the publish completed (or failed).
	Done() <-chan struct{}
	// Error is the outcome once Done is closed.
	Error() error
}

// Client is a connection to one broker. Its methods are safe for
// concurrent use.
type Client struct {
	cfg  Config
	log  *slog.Logger
	pc   paho.Client
	stop chan struct{}
	wg   sync.WaitGroup

	mu         sync.Mutex
	epoch      uint64
	up         bool
	everUp     bool
	lastErr    error
	upCh       chan struct{} // closed while up, replaced when down
	reconnects uint64
	started    bool
	closed     bool
}

// ValidateURL checks a broker URL and returns it parsed.
func ValidateURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("broker url %q: %w", raw, err)
	}
	switch u.Scheme {
	case "tcp", "mqtt", "ssl", "tls", "mqtts", "tcps", "mqtt+ssl":
	default:
		return nil, fmt.Errorf("broker url %q: scheme must be tcp, mqtt, ssl, tls or mqtts", raw)
	}
	if u.Hostname() == "" || u.Port() == "" {
		return nil, fmt.Errorf("broker url %q: want scheme://host:port", raw)
	}
	if u.User != nil {
		return nil, fmt.Errorf("broker url: credentials in the url are not accepted; use the username and password settings")
	}
	if u.Path != "" && u.Path != "/" {
		return nil, fmt.Errorf("broker url %q: unexpected path %q", raw, u.Path)
	}
	return u, nil
}

// IsTLS reports whether a URL's scheme asks for TLS.
func IsTLS(u *url.URL) bool {
	switch u.Scheme {
	case "ssl", "tls", "mqtts", "tcps", "mqtt+ssl":
		return true
	}
	return false
}

// New checks cfg and returns an unconnected client.
func New(cfg Config) (*Client, error) {
	u, err := ValidateURL(cfg.URL)
	if err != nil {
		return nil, err
	}
	if cfg.ClientID == "" {
		return nil, errors.New("mqtt client id is empty")
	}
	if IsTLS(u) && cfg.TLS == nil {
		cfg.TLS = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.KeepAlive, 30*time.Second)
	def(&cfg.PingTimeout, 10*time.Second)
	def(&cfg.WriteTimeout, 10*time.Second)
	def(&cfg.ConnectTimeout, 10*time.Second)
	def(&cfg.MaxReconnectInterval, 30*time.Second)
	def(&cfg.TokenTimeout, 10*time.Second)
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	c := &Client{cfg: cfg, log: cfg.Log.With("component", "mqtt", "broker", u.Redacted(), "client_id", cfg.ClientID), stop: make(chan struct{}), upCh: make(chan struct{})}

	// paho wants tcp:// or ssl:// style schemes.
	broker := *u
	if IsTLS(u) {
		broker.Scheme = "ssl"
	} else {
		broker.Scheme = "tcp"
	}
	o := paho.NewClientOptions().
		AddBroker(broker.String()).
		SetClientID(cfg.ClientID).
		SetCleanSession(false).
		SetOrderMatters(cfg.Ordered).
		SetAutoReconnect(true).
		SetConnectRetry(false).
		SetMaxReconnectInterval(cfg.MaxReconnectInterval).
		SetKeepAlive(cfg.KeepAlive).
		SetPingTimeout(cfg.PingTimeout).
		SetWriteTimeout(cfg.WriteTimeout).
		SetConnectTimeout(cfg.ConnectTimeout).
		SetStore(newCopyingStore()).
		SetDefaultPublishHandler(c.dispatch).
		SetOnConnectHandler(func(paho.Client) { c.onConnect() }).
		SetReconnectingHandler(func(paho.Client, *paho.ClientOptions) { c.onDown(nil, true) }).
		SetConnectionLostHandler(func(_ paho.Client, err error) { c.onDown(err, false) })
	if cfg.Username != "" {
		o.SetUsername(cfg.Username)
		o.SetPassword(cfg.Password)
	}
	if cfg.TLS != nil {
		o.SetTLSConfig(cfg.TLS)
	}
	if w := cfg.Will; w != nil {
		o.SetBinaryWill(w.Topic, w.Payload, w.QoS, w.Retained)
	}
	c.pc = paho.NewClient(o)
	return c, nil
}

func (c *Client) dispatch(_ paho.Client, m paho.Message) {
	for _, s := range c.cfg.Subscriptions {
		if match(s.Filter, m.Topic()) {
			s.Handler(m.Topic(), append([]byte(nil), m.Payload()...))
			return
		}
	}
	c.log.Debug("message on an unsubscribed topic", "topic", m.Topic())
}

func (c *Client) onConnect() {
	// Bump the epoch at once; report the client up only after its
	// subscriptions are in place, so that WaitConnected means "commands
	// can arrive".
	c.mu.Lock()
	c.epoch++
	e := c.epoch
	c.mu.Unlock()
	for _, s := range c.cfg.Subscriptions {
		h := s.Handler
		t := c.pc.Subscribe(s.Filter, s.QoS, func(_ paho.Client, m paho.Message) {
			h(m.Topic(), append([]byte(nil), m.Payload()...))
		})
		if !t.WaitTimeout(c.cfg.TokenTimeout) {
			c.log.Warn("subscribe timed out", "filter", s.Filter)
		} else if err := t.Error(); err != nil {
			c.log.Warn("subscribe failed", "filter", s.Filter, "err", err)
		}
	}
	c.mu.Lock()
	if c.epoch != e {
		// Lost again while subscribing.
		c.mu.Unlock()
		return
	}
	c.up = true
	if c.everUp {
		c.reconnects++
	}
	c.everUp = true
	c.lastErr = nil
	close(c.upCh)
	c.mu.Unlock()
	c.log.Info("connected to broker", "epoch", e)
	if c.cfg.OnConnect != nil {
		c.cfg.OnConnect(e)
	}
}

// onDown bumps the epoch. The reconnecting handler runs synchronously
// before paho resumes its session (and completes stored tokens early), so
// those completions always see a newer epoch. Only the reconnecting handler
// marks the client down: paho runs the connection-lost handler in a
// goroutine that may be scheduled after the next connection is up.
func (c *Client) onDown(err error, reconnecting bool) {
	c.mu.Lock()
	c.epoch++
	if reconnecting && c.up {
		c.upCh = make(chan struct{})
		c.up = false
	}
	c.mu.Unlock()
	if err != nil {
		c.log.Warn("connection to broker lost", "err", err)
	}
}

// Start connects in the background and keeps the connection up until Close.
// It returns at once; use WaitConnected to wait for the first connection.
func (c *Client) Start() {
	c.mu.Lock()
	if c.started || c.closed {
		c.mu.Unlock()
		return
	}
	c.started = true
	c.mu.Unlock()
	c.wg.Add(1)
	go c.connectLoop()
}

// connectLoop makes the first connection, retrying with backoff; after it
// paho reconnects on its own.
func (c *Client) connectLoop() {
	defer c.wg.Done()
	wait := time.Second
	for {
		t := c.pc.Connect()
		var err error
		select {
		case <-t.Done():
			err = t.Error()
		case <-time.After(c.cfg.ConnectTimeout + c.cfg.TokenTimeout):
			err = errors.New("connect timed out")
		case <-c.stop:
			return
		}
		if err == nil {
			return
		}
		if errors.Is(err, packets.ErrorRefusedBadUsernameOrPassword) || errors.Is(err, packets.ErrorRefusedNotAuthorised) || errors.Is(err, packets.ErrorRefusedIDRejected) {
			err = fmt.Errorf("%w: %w", ErrRefused, err)
		}
		c.mu.Lock()
		c.lastErr = err
		c.mu.Unlock()
		c.log.Error("cannot connect to broker; retrying", "err", err, "retry_in", wait)
		select {
		case <-time.After(wait):
		case <-c.stop:
			return
		}
		wait = min(wait*2, c.cfg.MaxReconnectInterval)
	}
}

// WaitConnected waits until the client is connected, the broker refused it
// (an error wrapping ErrRefused), or ctx ends (ErrNotConnected, wrapping
// the last connection error if any).
func (c *Client) WaitConnected(ctx context.Context) error {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		c.mu.Lock()
		up, ch, err := c.up, c.upCh, c.lastErr
		c.mu.Unlock()
		if up {
			return nil
		}
		if errors.Is(err, ErrRefused) {
			return err
		}
		select {
		case <-ch:
			return nil
		case <-tick.C:
		case <-ctx.Done():
			if err != nil {
				return fmt.Errorf("%w: %w", ErrNotConnected, err)
			}
			return fmt.Errorf("%w: %w", ErrNotConnected, ctx.Err())
		}
	}
}

// Epoch returns the connection epoch and whether the connection is up. The
// epoch changes whenever a connection is made or lost.
func (c *Client) Epoch() (uint64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.epoch, c.up
}

// EverUp reports whether the client has been connected (subscriptions in
// place) at least once.
func (c *Client) EverUp() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.everUp
}

// Up returns a channel that is closed while the client is connected.
func (c *Client) Up() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.upCh
}

// Reconnects counts connections made after the first.
func (c *Client) Reconnects() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reconnects
}

// Publish sends a message. It does not wait; the token completes when the
// broker acknowledged (QoS 1) or the message was written (QoS 0). A
// completed token is proof of delivery only if the epoch did not change
// between Publish and completion.
func (c *Client) Publish(m Message) Token {
	return c.pc.Publish(m.Topic, m.QoS, m.Retained, m.Payload)
}

// Close disconnects cleanly (the will is not published) after giving
// in-flight messages up to quiesce to finish, and stops reconnecting.
func (c *Client) Close(ctx context.Context, quiesce time.Duration) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	close(c.stop)
	done := make(chan struct{})
	go func() {
		c.pc.Disconnect(uint(quiesce / time.Millisecond))
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("mqtt disconnect: %w", ctx.Err())
	}
	c.wg.Wait()
	return err
}

// match reports whether topic matches an MQTT filter with + and #.
func match(filter, topic string) bool {
	for {
		fi, ti := indexSlash(filter), indexSlash(topic)
		fseg, tseg := filter[:fi], topic[:ti]
		if fseg == "#" {
			return true
		}
		if fseg != "+" && fseg != tseg {
			return false
		}
		if fi == len(filter) || ti == len(topic) {
			return fi == len(filter) && ti == len(topic)
		}
		filter, topic = filter[fi+1:], topic[ti+1:]
	}
}

func indexSlash(s string) int {
	for i := 0; i < len(s); i++ {
		if s[i] == '/' {
			return i
		}
	}
	return len(s)
}
