package broker

import (
	"bytes"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/anytime-edge/edge/internal/netaddr"
)

// DefaultListen is where the embedded broker listens by default.
const DefaultListen = "127.0.0.1:1883"

// Config configures the embedded broker.
type Config struct {
	// Listen is host:port; default DefaultListen. A non-loopback address
	// needs Users.
	Listen string
	// Users maps user names to passwords. When empty, any client may
	// connect without credentials (loopback only).
	Users map[string]string
	// TLS, when set, makes the listener accept TLS only.
	TLS *tls.Config
	// Log receives broker logs; default slog.Default().
	Log *slog.Logger
	// Tap, when set, sees every accepted publish from a network client
	// before the broker acknowledges it (tests use it to observe exactly
	// what a client got acknowledged). It must not block.
	Tap func(topic string, payload []byte, retained bool)
}

// Broker is a running embedded broker.
type Broker struct {
	srv  *mochi.Server
	addr string
}

// ErrExposed is returned for a non-loopback address without users.
var ErrExposed = errors.New("refusing to listen beyond loopback without authentication")

// CheckListen validates a listen address against the loopback rule.
func CheckListen(listen string, authenticated bool) error {
	_, port, err := net.SplitHostPort(listen)
	if err != nil {
		return fmt.Errorf("broker listen address %q: %w", listen, err)
	}
	if port == "" {
		return fmt.Errorf("broker listen address %q: missing port", listen)
	}
	if authenticated {
		return nil
	}
	if ok, _ := netaddr.Loopback(listen); !ok {
		return fmt.Errorf("broker listen address %q: %w (configure broker users)", listen, ErrExposed)
	}
	return nil
}

// Start checks cfg and starts serving. Close stops it.
func Start(cfg Config) (*Broker, error) {
	if cfg.Listen == "" {
		cfg.Listen = DefaultListen
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if err := CheckListen(cfg.Listen, len(cfg.Users) > 0); err != nil {
		return nil, err
	}
	srv := mochi.New(&mochi.Options{InlineClient: true, Logger: cfg.Log.With("component", "broker")})
	if err := srv.AddHook(&authHook{users: cfg.Users, tap: cfg.Tap}, nil); err != nil {
		return nil, fmt.Errorf("broker auth hook: %w", err)
	}
	l := listeners.NewTCP(listeners.Config{ID: "edge", Address: cfg.Listen, TLSConfig: cfg.TLS})
	if err := srv.AddListener(l); err != nil {
		srv.Close()
		return nil, fmt.Errorf("broker listen on %s: %w", cfg.Listen, err)
	}
	if err := srv.Serve(); err != nil {
		srv.Close()
		return nil, fmt.Errorf("broker serve: %w", err)
	}
	return &Broker{srv: srv, addr: l.Address()}, nil
}

// Addr is the address the broker listens on (the real port when the
// configured one was 0).
func (b *Broker) Addr() string { return b.addr }

// URL is a tcp:// URL for Addr.
func (b *Broker) URL() string { return "tcp://" + b.addr }

// Subscribe delivers messages matching filter to fn, in process (QoS 0,
// no network). fn must not block for long.
func (b *Broker) Subscribe(filter string, id int, fn func(topic string, payload []byte, retained bool)) error {
	err := b.srv.Subscribe(filter, id, func(_ *mochi.Client, _ packets.Subscription, pk packets.Packet) {
		fn(pk.TopicName, append([]byte(nil), pk.Payload...), pk.FixedHeader.Retain)
	})
	if err != nil {
		return fmt.Errorf("broker subscribe %q: %w", filter, err)
	}
	return nil
}

// Publish sends a message from inside the broker (QoS 0 to subscribers).
func (b *Broker) Publish(topic string, payload []byte, retain bool) error {
	if err := b.srv.Publish(topic, payload, retain, 1); err != nil {
		return fmt.Errorf("broker publish %q: %w", topic, err)
	}
	return nil
}

// Subscribers counts the network clients subscribed to filters matching
// topic.
func (b *Broker) Subscribers(topic string) int {
	return len(b.srv.Topics.Subscribers(topic).Subscriptions)
}

// Close disconnects every client and stops listening.
func (b *Broker) Close() error {
	if err := b.srv.Close(); err != nil {
		return fmt.Errorf("broker close: %w", err)
	}
	return nil
}

// authHook checks credentials when users are configured; otherwise it
// allows everyone (the listener is loopback-only then).
type authHook struct {
	mochi.HookBase
	users map[string]string
	tap   func(topic string, payload []byte, retained bool)
}

// ID names the hook.
func (h *authHook) ID() string { return "edge-auth" }

// Provides lists the events the hook handles.
func (h *authHook) Provides(b byte) bool {
	return bytes.Contains([]byte{mochi.OnConnectAuthenticate, mochi.OnACLCheck, mochi.OnPublish}, []byte{b})
}

// OnPublish passes accepted publishes to the tap, before the PUBACK.
func (h *authHook) OnPublish(cl *mochi.Client, pk packets.Packet) (packets.Packet, error) {
	if h.tap != nil && !cl.Net.Inline {
		h.tap(pk.TopicName, append([]byte(nil), pk.Payload...), pk.FixedHeader.Retain)
	}
	return pk, nil
}

// OnConnectAuthenticate checks the user name and password when users are
// configured.
func (h *authHook) OnConnectAuthenticate(cl *mochi.Client, pk packets.Packet) bool {
	if len(h.users) == 0 {
		return true
	}
	want, ok := h.users[string(pk.Connect.Username)]
	return ok && subtle.ConstantTimeCompare([]byte(want), pk.Connect.Password) == 1
}

// OnACLCheck allows every topic to an authenticated (or loopback) client.
func (h *authHook) OnACLCheck(cl *mochi.Client, topic string, write bool) bool { return true }
