package main

import (
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/anytime-edge/edge/telemetry"
)

// telemetryCategory groups the MQTT flags in --help.
const telemetryCategory = "MQTT telemetry"

// telemetryFlags are the flags of `edge infer` and `edge run` that configure
// publishing results and health over MQTT (telemetry.Config). With no
// --mqtt, the embedded broker serves 127.0.0.1:1883.
func telemetryFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "mqtt", Usage: "broker URL, e.g. mqtts://broker:8883 (default: an embedded broker on --broker-listen)", EnvVars: []string{"EDGE_MQTT_URL"}, Category: telemetryCategory},
		&cli.StringFlag{Name: "site", Usage: "site id in topics, [a-z0-9-]{1,64}", EnvVars: []string{"EDGE_SITE"}, Category: telemetryCategory},
		&cli.StringFlag{Name: "device", Usage: "device id in topics and MQTT client id, [a-z0-9-]{1,64}", EnvVars: []string{"EDGE_DEVICE"}, Category: telemetryCategory},
		&cli.StringFlag{Name: "mqtt-root", Value: telemetry.DefaultRoot, Usage: "topic prefix above {site}/{device}", EnvVars: []string{"EDGE_MQTT_ROOT"}, Category: telemetryCategory},
		&cli.StringFlag{Name: "mqtt-user", Usage: "broker user name (with no --mqtt: the user the embedded broker requires)", EnvVars: []string{"EDGE_MQTT_USER"}, Category: telemetryCategory},
		&cli.StringFlag{Name: "mqtt-password", Usage: "broker password; prefer EDGE_MQTT_PASSWORD or --mqtt-password-file", EnvVars: []string{"EDGE_MQTT_PASSWORD"}, Category: telemetryCategory, DefaultText: "none"},
		&cli.StringFlag{Name: "mqtt-password-file", Usage: "file holding the broker password", EnvVars: []string{"EDGE_MQTT_PASSWORD_FILE"}, TakesFile: true, Category: telemetryCategory},
		&cli.StringFlag{Name: "mqtt-ca", Usage: "PEM CA certificate(s) that verify the broker (mqtts:// URLs; default: system roots)", EnvVars: []string{"EDGE_MQTT_CA"}, TakesFile: true, Category: telemetryCategory},
		&cli.StringFlag{Name: "mqtt-cert", Usage: "PEM client certificate (with --mqtt-key)", EnvVars: []string{"EDGE_MQTT_CERT"}, TakesFile: true, Category: telemetryCategory},
		&cli.StringFlag{Name: "mqtt-key", Usage: "PEM client key (with --mqtt-cert)", EnvVars: []string{"EDGE_MQTT_KEY"}, TakesFile: true, Category: telemetryCategory},
		&cli.IntFlag{Name: "mqtt-labels-qos", Usage: "QoS of result/labels: 0 (live only) or 1 (spooled like results)", EnvVars: []string{"EDGE_MQTT_LABELS_QOS"}, Category: telemetryCategory},
		&cli.StringFlag{Name: "spool", Usage: "spool directory for messages awaiting their PUBACK (default: user cache dir/anytime-edge/spool/{site}-{device})", EnvVars: []string{"EDGE_SPOOL"}, TakesFile: true, Category: telemetryCategory},
		&cli.StringFlag{Name: "spool-max-bytes", Value: "64MiB", Usage: "spool size bound; the oldest messages are dropped (and counted) beyond it", EnvVars: []string{"EDGE_SPOOL_MAX_BYTES"}, Category: telemetryCategory},
		&cli.DurationFlag{Name: "spool-max-age", Value: 7 * 24 * time.Hour, Usage: "messages older than this are dropped from the spool (and counted)", EnvVars: []string{"EDGE_SPOOL_MAX_AGE"}, Category: telemetryCategory},
		&cli.StringFlag{Name: "broker-listen", Usage: "embedded broker address with no --mqtt (default 127.0.0.1:1883; beyond loopback only with --mqtt-user/--mqtt-password)", EnvVars: []string{"EDGE_BROKER_LISTEN"}, Category: telemetryCategory},
		&cli.StringFlag{Name: "metrics", Usage: "serve Prometheus metrics on this loopback address, e.g. 127.0.0.1:9464 (default: off)", EnvVars: []string{"EDGE_METRICS"}, Category: telemetryCategory},
	}
}

// telemetryConfig turns the flags of telemetryFlags into a validated
// telemetry.Config. The caller sets Software. Errors name the flag; the
// password never appears in them.
func telemetryConfig(c *cli.Context) (telemetry.Config, error) {
	cfg := telemetry.Config{
		BrokerURL:    c.String("mqtt"),
		BrokerListen: c.String("broker-listen"),
		Root:         c.String("mqtt-root"),
		Site:         c.String("site"),
		Device:       c.String("device"),
		Username:     c.String("mqtt-user"),
		Password:     c.String("mqtt-password"),
		CAFile:       c.String("mqtt-ca"),
		CertFile:     c.String("mqtt-cert"),
		KeyFile:      c.String("mqtt-key"),
		SpoolDir:     c.String("spool"),
		SpoolMaxAge:  c.Duration("spool-max-age"),
		LabelsQoS:    c.Int("mqtt-labels-qos"),
		MetricsAddr:  c.String("metrics"),
	}
	if cfg.Site == "" || cfg.Device == "" {
		return cfg, fmt.Errorf("--site and --device are required to publish (EDGE_SITE, EDGE_DEVICE)")
	}
	if pf := c.String("mqtt-password-file"); pf != "" {
		if cfg.Password != "" {
			return cfg, fmt.Errorf("--mqtt-password-file and --mqtt-password are both set; use one")
		}
		b, err := os.ReadFile(pf)
		if err != nil {
			return cfg, fmt.Errorf("--mqtt-password-file: %w", err)
		}
		cfg.Password = strings.TrimRight(string(b), "\r\n")
		if cfg.Password == "" {
			return cfg, fmt.Errorf("--mqtt-password-file %s is empty", pf)
		}
	}
	n, err := parseBytes(c.String("spool-max-bytes"))
	if err != nil {
		return cfg, fmt.Errorf("--spool-max-bytes: %w", err)
	}
	cfg.SpoolMaxBytes = n
	for _, flag := range []string{"mqtt-ca", "mqtt-cert", "mqtt-key"} {
		if p := c.String(flag); p != "" {
			f, err := os.Open(p)
			if err != nil {
				return cfg, fmt.Errorf("--%s: %w", flag, err)
			}
			f.Close()
		}
	}
	if err := cfg.Validate(); err != nil {
		return cfg, fmt.Errorf("mqtt settings: %w", err)
	}
	return cfg, nil
}

// parseBytes reads a size such as 67108864, 64MiB, 500MB or 1.5GiB.
func parseBytes(s string) (int64, error) {
	s = strings.TrimSpace(s)
	units := []struct {
		suffix string
		mult   float64
	}{
		{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30},
		{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1},
	}
	mult := 1.0
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v < 0 || math.IsInf(v, 0) || v*mult > math.MaxInt64 {
		return 0, fmt.Errorf("%q: want a size such as 67108864, 64MiB or 500MB", s)
	}
	return int64(v * mult), nil
}

// telemetryEnabled reports whether the flags ask for publishing: a broker
// URL or a device id was given (the embedded broker needs --site and
// --device too).
func telemetryEnabled(c *cli.Context) bool {
	return c.String("mqtt") != "" || c.String("device") != ""
}
