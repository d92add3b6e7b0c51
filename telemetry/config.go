package telemetry

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/anytime-edge/edge/internal/netaddr"
	"github.com/anytime-edge/edge/telemetry/broker"
	"github.com/anytime-edge/edge/telemetry/mqtt"
)

// DefaultRoot is the topic prefix above {site}/{device}.
const DefaultRoot = "anytime/v1"

var (
	idPattern   = regexp.MustCompile(`^[a-z0-9-]{1,64}$`)
	rootPattern = regexp.MustCompile(`^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$`)
)

// Config is everything the fleet link needs. Build it once from flags,
// environment and config file; New validates it. The Publisher neither
// starts the embedded broker nor serves metrics: BrokerListen is read by
// StartBroker and MetricsAddr by whoever serves Publisher.Metrics.
type Config struct {
	// BrokerURL is the broker (tcp://, mqtt://, ssl://, tls://, mqtts://).
	// Empty means the embedded broker on BrokerListen (see StartBroker).
	BrokerURL string
	// BrokerListen is the embedded broker's address (default
	// 127.0.0.1:1883). Beyond loopback it needs Username and Password,
	// which the embedded broker then requires from every client.
	BrokerListen string
	// Root is the topic prefix (default DefaultRoot).
	Root string
	// Site and Device match [a-z0-9-]{1,64}; Device is also the MQTT
	// client id.
	Site   string
	Device string
	// Username and Password authenticate to the broker (both or neither).
	Username string
	Password string
	// BrokerUsers are the fleet's users of the embedded broker (user name
	// → password), besides the device's Username, which it needs. They
	// alone may publish the device's commands; only the device publishes
	// its other topics (broker.Device).
	BrokerUsers map[string]string
	// CAFile verifies the broker's certificate (TLS URLs); empty uses the
	// system roots. CertFile and KeyFile are an optional client
	// certificate (both or neither).
	CAFile   string
	CertFile string
	KeyFile  string
	// SpoolDir holds the durable spool (default: the user cache directory,
	// anytime-edge/spool/{site}-{device}).
	SpoolDir string
	// SpoolMaxBytes and SpoolMaxAge bound the spool (defaults 64 MiB and
	// 7 days).
	SpoolMaxBytes int64
	SpoolMaxAge   time.Duration
	// LabelsQoS is the QoS of result/labels: 0 (default, live only) or 1
	// (spooled like results).
	LabelsQoS int
	// MetricsAddr, when set, is where the owner serves Prometheus metrics
	// (Publisher.Metrics) on /metrics. It must be a loopback address.
	MetricsAddr string
	// Software is the version reported in status.
	Software string
	// QueueLen is the number of messages Publish can hand to the spool
	// writer before it drops (default 8192).
	QueueLen int
	// InFlight is how many messages may await their PUBACK (default 64).
	InFlight int
	// KeepAlive is the MQTT keep-alive (default 30 s).
	KeepAlive time.Duration

	// onSynced is a test hook; see Publisher.onSynced.
	onSynced func(seq uint64)
	// onSenderPass is a test hook; see sender.onPass.
	onSenderPass func()
	// newTransport, when set (tests), replaces mqtt.New.
	newTransport func(mqtt.Config) (transport, error)
}

// withDefaults fills defaults and checks every field, returning a
// user-facing error naming the setting.
func (c Config) withDefaults() (Config, error) {
	if c.Root == "" {
		c.Root = DefaultRoot
	}
	if !rootPattern.MatchString(c.Root) {
		return c, fmt.Errorf("topic root %q: want levels of [A-Za-z0-9_-] separated by /", c.Root)
	}
	if !idPattern.MatchString(c.Site) {
		return c, fmt.Errorf("site %q: want 1 to 64 of [a-z0-9-]", c.Site)
	}
	if !idPattern.MatchString(c.Device) {
		return c, fmt.Errorf("device %q: want 1 to 64 of [a-z0-9-]", c.Device)
	}
	if (c.Username == "") != (c.Password == "") {
		return c, errors.New("mqtt credentials: set both user and password, or neither")
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		return c, errors.New("mqtt client certificate: set both cert and key, or neither")
	}
	if c.BrokerURL != "" {
		u, err := mqtt.ValidateURL(c.BrokerURL)
		if err != nil {
			return c, err
		}
		if !mqtt.IsTLS(u) && (c.CAFile != "" || c.CertFile != "") {
			return c, fmt.Errorf("broker url %q: CA or client certificate given but the scheme is not TLS (use mqtts://)", u.Redacted())
		}
		if c.BrokerListen != "" {
			return c, errors.New("broker listen address is only for the embedded broker; it cannot be combined with a broker url")
		}
		if len(c.BrokerUsers) > 0 {
			return c, errors.New("broker users are only for the embedded broker; they cannot be combined with a broker url")
		}
	} else {
		if c.BrokerListen == "" {
			c.BrokerListen = broker.DefaultListen
		}
		if err := broker.CheckListen(c.BrokerListen, c.Username != ""); err != nil {
			return c, err
		}
		if len(c.BrokerUsers) > 0 && c.Username == "" {
			return c, errors.New("broker users need the device's own user and password (the embedded broker then requires credentials from everyone)")
		}
		if _, ok := c.BrokerUsers[c.Username]; ok && c.Username != "" {
			return c, fmt.Errorf("broker users: %q is the device's own user; give the fleet other names", c.Username)
		}
		if c.CAFile != "" || c.CertFile != "" {
			return c, errors.New("TLS files are given but no broker url; the embedded broker takes plain connections on its listen address")
		}
	}
	if c.LabelsQoS != 0 && c.LabelsQoS != 1 {
		return c, fmt.Errorf("labels QoS %d: want 0 or 1", c.LabelsQoS)
	}
	if c.SpoolMaxBytes < 0 || (c.SpoolMaxBytes > 0 && c.SpoolMaxBytes < 64<<10) {
		return c, fmt.Errorf("spool max bytes %d: want at least 65536", c.SpoolMaxBytes)
	}
	if c.SpoolMaxAge < 0 {
		return c, fmt.Errorf("spool max age %v: must not be negative", c.SpoolMaxAge)
	}
	if c.SpoolDir == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			return c, fmt.Errorf("spool directory not set and no user cache directory: %w", err)
		}
		c.SpoolDir = filepath.Join(base, "anytime-edge", "spool", c.Site+"-"+c.Device)
	}
	if c.MetricsAddr != "" {
		if err := checkLoopback(c.MetricsAddr); err != nil {
			return c, fmt.Errorf("metrics address: %w", err)
		}
	}
	if c.QueueLen <= 0 {
		c.QueueLen = 8192
	}
	if c.InFlight <= 0 {
		c.InFlight = 64
	}
	if c.KeepAlive < 0 {
		return c, fmt.Errorf("mqtt keep-alive %v: must not be negative", c.KeepAlive)
	}
	return c, nil
}

// Validate checks c as New would, without touching files or the network
// (certificates are read by New).
func (c Config) Validate() error {
	_, err := c.withDefaults()
	return err
}

func checkLoopback(addr string) error {
	ok, err := netaddr.Loopback(addr)
	if err != nil {
		return fmt.Errorf("%q: %w", addr, err)
	}
	if !ok {
		return fmt.Errorf("%q: want a loopback address such as 127.0.0.1:9464", addr)
	}
	return nil
}

// tlsConfig builds the client TLS configuration from the files in c.
func (c Config) tlsConfig() (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("mqtt CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("mqtt CA file %s: no PEM certificate found", c.CAFile)
		}
		tc.RootCAs = pool
	}
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("mqtt client certificate %s / key %s: %w", c.CertFile, c.KeyFile, err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// Topics builds the topic names of one device.
type Topics struct {
	base string
}

// NewTopics returns the topics under root/site/device/.
func NewTopics(root, site, device string) Topics {
	return Topics{base: strings.Join([]string{root, site, device}, "/") + "/"}
}

// Topic returns the full topic for a suffix such as "result".
func (t Topics) Topic(suffix string) string { return t.base + suffix }

// Commands is the filter that receives this device's commands.
func (t Topics) Commands() string { return t.base + "cmd/+" }

// Base is the device's topic prefix, ending in "/".
func (t Topics) Base() string { return t.base }
