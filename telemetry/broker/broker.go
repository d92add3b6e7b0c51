package broker

import (
	"bytes"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"regexp"
	"strings"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/anytime-edge/edge/internal/netaddr"
)

// DefaultListen is where the embedded broker listens by default.
const DefaultListen = "127.0.0.1:1883"

// DefaultMaxPacketBytes bounds an MQTT packet by default: above the largest
// message a device publishes (a spooled record is at most 16 MiB), far below
// what would exhaust a device's memory. A client sending a larger packet is
// disconnected as soon as the packet's header announces its length, before
// anything of it is read or allocated.
const DefaultMaxPacketBytes = 17 << 20

// Config configures the embedded broker.
type Config struct {
	// Listen is host:port; default DefaultListen. A non-loopback address
	// needs Users.
	Listen string
	// Users maps user names to passwords. When empty, any client may
	// connect without credentials (loopback only) and use any topic.
	Users map[string]string
	// Device, with Users, is the device this broker serves; it confines
	// each user to its role (see Device).
	Device *Device
	// MaxPacketBytes bounds an MQTT packet; default DefaultMaxPacketBytes.
	MaxPacketBytes int
	// TLS, when set, makes the listener accept TLS only.
	TLS *tls.Config
	// Log receives broker logs; default slog.Default().
	Log *slog.Logger
	// Tap, when set, sees every accepted publish from a network client
	// before the broker acknowledges it (tests use it to observe exactly
	// what a client got acknowledged). It must not block.
	Tap func(topic string, payload []byte, retained bool)
}

// Device names the device an embedded broker serves. With Users configured,
// the device's user is the only one that may publish under Base (other than
// its commands), subscribe only there, and connect with ClientID; every other
// user is a fleet user, the only kind that may publish Base's commands
// (Base+"cmd/…"), and may subscribe to anything. A last will is held to the
// same rules: a connection whose will topic its user may not publish to is
// refused.
type Device struct {
	// User is the device's user name, one of Config.Users.
	User string
	// ClientID is the device's MQTT client id.
	ClientID string
	// Base is the device's topic base, "{root}/{site}/{device}/".
	Base string
}

// userPattern is what a user name in a users file may hold.
var userPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// ParseUsers parses a users file: one "user:password" a line, user names
// of [A-Za-z0-9._-]{1,64}, the password the rest of the line (not empty);
// blank lines and lines starting with # are skipped. Errors name the line,
// never a password.
func ParseUsers(data []byte) (map[string]string, error) {
	users := map[string]string{}
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimRight(line, "\r")
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, pass, ok := strings.Cut(line, ":")
		switch {
		case !ok:
			return nil, fmt.Errorf("line %d: want user:password", i+1)
		case !userPattern.MatchString(name):
			return nil, fmt.Errorf("line %d: user name %q: want 1 to 64 of [A-Za-z0-9._-]", i+1, name)
		case pass == "":
			return nil, fmt.Errorf("line %d: user %q has an empty password", i+1, name)
		}
		if _, dup := users[name]; dup {
			return nil, fmt.Errorf("line %d: user %q appears twice", i+1, name)
		}
		users[name] = pass
	}
	return users, nil
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
	if cfg.MaxPacketBytes == 0 {
		cfg.MaxPacketBytes = DefaultMaxPacketBytes
	}
	if err := CheckListen(cfg.Listen, len(cfg.Users) > 0); err != nil {
		return nil, err
	}
	if cfg.MaxPacketBytes < 1<<10 || cfg.MaxPacketBytes > 256<<20 {
		return nil, fmt.Errorf("broker maximum packet size %d bytes: want 1 KiB to 256 MiB", cfg.MaxPacketBytes)
	}
	if d := cfg.Device; d != nil && len(cfg.Users) > 0 {
		if _, ok := cfg.Users[d.User]; !ok {
			return nil, fmt.Errorf("broker device user %q is not one of the broker's users", d.User)
		}
		if d.ClientID == "" || !strings.HasSuffix(d.Base, "/") || strings.ContainsAny(d.Base, "+#") {
			return nil, fmt.Errorf("broker device: want a client id and a topic base ending in / without wildcards, got %q and %q", d.ClientID, d.Base)
		}
	}
	caps := mochi.NewDefaultServerCapabilities()
	caps.MaximumPacketSize = uint32(cfg.MaxPacketBytes)
	srv := mochi.New(&mochi.Options{InlineClient: true, Capabilities: caps, Logger: cfg.Log.With("component", "broker")})
	hook := &authHook{users: cfg.Users, tap: cfg.Tap}
	if len(cfg.Users) > 0 {
		hook.device = cfg.Device
	}
	if err := srv.AddHook(hook, nil); err != nil {
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

// authHook checks credentials when users are configured, and then, with a
// device, each user's topics and client id (see Device); otherwise it allows
// everyone (the listener is loopback-only then).
type authHook struct {
	mochi.HookBase
	users  map[string]string
	device *Device
	tap    func(topic string, payload []byte, retained bool)
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
// configured and, with a device, that only its user takes its client id
// and that the last will is one the user may publish.
func (h *authHook) OnConnectAuthenticate(cl *mochi.Client, pk packets.Packet) bool {
	if len(h.users) == 0 {
		return true
	}
	user := string(pk.Connect.Username)
	want, ok := h.users[user]
	if !ok || subtle.ConstantTimeCompare([]byte(want), pk.Connect.Password) != 1 {
		return false
	}
	if h.device == nil {
		return true
	}
	if string(pk.Connect.ClientIdentifier) == h.device.ClientID && user != h.device.User {
		h.Log.Warn("refused a connection taking the device's client id", "user", user, "client", h.device.ClientID)
		return false
	}
	if pk.Connect.WillFlag && !h.allowed(user, pk.Connect.WillTopic, true) {
		h.Log.Warn("refused a connection whose last will its user may not publish", "user", user, "topic", pk.Connect.WillTopic)
		return false
	}
	return true
}

// OnACLCheck applies the device's rules (see Device) to a publish (write)
// or to a subscription filter and each delivery (read).
func (h *authHook) OnACLCheck(cl *mochi.Client, topic string, write bool) bool {
	if h.device == nil || cl.Net.Inline {
		return true
	}
	return h.allowed(string(cl.Properties.Username), topic, write)
}

// allowed says whether user may publish to (write) or subscribe to and
// receive (read) topic, a topic name or filter.
func (h *authHook) allowed(user, topic string, write bool) bool {
	d := h.device
	own := strings.HasPrefix(topic, d.Base)
	command := strings.HasPrefix(topic, d.Base+"cmd/")
	if user == d.User {
		return own && (!write || !command)
	}
	return !write || !own || command
}
