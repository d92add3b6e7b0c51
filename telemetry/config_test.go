package telemetry

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/anytime-edge/edge/internal/testkit"
)

func TestConfigValidation(t *testing.T) {
	dir := t.TempDir()
	garbage := testkit.WriteFile(t, filepath.Join(dir, "garbage.pem"), []byte("not a certificate"))
	base := func() Config {
		return Config{BrokerURL: "tcp://127.0.0.1:1", Site: "lab", Device: "drone-7", SpoolDir: t.TempDir()}
	}
	tests := []struct {
		name string
		mod  func(*Config)
		want string // "" = valid
	}{
		{"valid", func(c *Config) {}, ""},
		{"embedded broker default", func(c *Config) { c.BrokerURL = "" }, ""},
		{"bad scheme", func(c *Config) { c.BrokerURL = "http://127.0.0.1:1883" }, "scheme must be"},
		{"no port", func(c *Config) { c.BrokerURL = "tcp://broker" }, "want scheme://host:port"},
		{"unparsable url", func(c *Config) { c.BrokerURL = "tcp://[::1" }, "broker url"},
		{"credentials in url", func(c *Config) { c.BrokerURL = "tcp://u:secret@127.0.0.1:1883" }, "credentials in the url"},
		{"upper-case device", func(c *Config) { c.Device = "Drone7" }, `device "Drone7"`},
		{"empty site", func(c *Config) { c.Site = "" }, `site ""`},
		{"slash in device", func(c *Config) { c.Device = "a/b" }, "device"},
		{"wildcard in site", func(c *Config) { c.Site = "+" }, "site"},
		{"long device", func(c *Config) { c.Device = strings.Repeat("a", 65) }, "device"},
		{"bad root", func(c *Config) { c.Root = "anytime/#" }, "topic root"},
		{"user without password", func(c *Config) { c.Username = "u" }, "set both user and password"},
		{"cert without key", func(c *Config) { c.BrokerURL = "mqtts://127.0.0.1:8883"; c.CertFile = "c.pem" }, "set both cert and key"},
		{"CA on plain tcp", func(c *Config) { c.CAFile = garbage }, "scheme is not TLS"},
		{"labels qos 2", func(c *Config) { c.LabelsQoS = 2 }, "labels QoS 2"},
		{"tiny spool", func(c *Config) { c.SpoolMaxBytes = 1000 }, "spool max bytes"},
		{"embedded broker exposed", func(c *Config) { c.BrokerURL = ""; c.BrokerListen = "0.0.0.0:1883" }, "refusing to listen beyond loopback"},
		{"embedded broker exposed with auth", func(c *Config) {
			c.BrokerURL = ""
			c.BrokerListen = "0.0.0.0:1883"
			c.Username, c.Password = "u", "p"
		}, ""},
		{"listen with url", func(c *Config) { c.BrokerListen = "127.0.0.1:1883" }, "cannot be combined"},
		{"broker users with url", func(c *Config) { c.BrokerUsers = map[string]string{"ops": "p"} }, "broker users are only for the embedded broker"},
		{"broker users without the device's", func(c *Config) { c.BrokerURL = ""; c.BrokerUsers = map[string]string{"ops": "p"} }, "need the device's own user"},
		{"broker users naming the device's", func(c *Config) {
			c.BrokerURL = ""
			c.Username, c.Password = "u", "p"
			c.BrokerUsers = map[string]string{"u": "q"}
		}, `"u" is the device's own user`},
		{"broker users", func(c *Config) {
			c.BrokerURL = ""
			c.Username, c.Password = "u", "p"
			c.BrokerUsers = map[string]string{"ops": "q"}
		}, ""},
		{"metrics exposed", func(c *Config) { c.MetricsAddr = "0.0.0.0:9464" }, "want a loopback address"},
		{"metrics loopback", func(c *Config) { c.MetricsAddr = "127.0.0.1:9464" }, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := base()
			tc.mod(&c)
			err := c.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestNewRejectsUnreadableCertificates(t *testing.T) {
	dir := t.TempDir()
	garbage := testkit.WriteFile(t, filepath.Join(dir, "garbage.pem"), []byte("not a certificate"))
	tests := []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"missing CA", func(c *Config) { c.CAFile = filepath.Join(dir, "nope.pem") }, "mqtt CA file"},
		{"garbage CA", func(c *Config) { c.CAFile = garbage }, "no PEM certificate found"},
		{"garbage client cert", func(c *Config) { c.CertFile, c.KeyFile = garbage, garbage }, "mqtt client certificate"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := Config{BrokerURL: "mqtts://127.0.0.1:8883", Site: "lab", Device: "drone-7", SpoolDir: t.TempDir()}
			tc.mod(&c)
			p, err := New(context.Background(), c, nil, nil)
			if err == nil {
				p.Close(context.Background())
				t.Fatal("New accepted an unreadable certificate")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

// TestEmbeddedBrokerAndMetrics starts the embedded broker the way its owner
// does (StartBroker), publishes through it, and scrapes the Publisher's
// metrics handler over HTTP.
func TestEmbeddedBrokerAndMetrics(t *testing.T) {
	log, _ := testLogger()
	b, p := embeddedPublisher(t, Config{Site: "lab", Device: "drone-7", SpoolDir: t.TempDir(), BrokerListen: "127.0.0.1:0"}, nil, log)
	if !strings.HasPrefix(b.Addr(), "127.0.0.1:") {
		t.Fatalf("embedded broker on %q, want loopback", b.Addr())
	}
	ctx := context.Background()
	var col collector
	col.attach(t, b, "anytime/#")
	for i := 1; i <= 3; i++ {
		if err := p.Publish(ctx, sampleResult(uint64(i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Publish(ctx, &Event{Kind: "source-stalled", Message: "source stalled"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "results through the embedded broker", func() bool { return len(col.results(t, "/result")) == 3 })
	waitFor(t, 5*time.Second, "spool emptied", func() bool { return p.spool.Stats().Records == 0 })
	body := scrape(t, p)
	for _, want := range []string{
		"edge_frames_total 3",
		`edge_events_total{kind="source-stalled"} 1`,
		`edge_frame_halts_total{exit="2",reason="deadline"} 3`,
		`edge_exit_latency_seconds_count{exit="2"} 3`,
		`edge_energy_joules_total{source="jetson-ina3221"} 0.2799`,
		"edge_spool_records 0",
		"edge_spool_dropped_total 0",
		"edge_mqtt_connected 1",
		"edge_mqtt_reconnects_total 0",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}
