package telemetry

import (
	"bytes"
	"context"
	"math"
	"os"
	"os/exec"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/anytime-edge/edge/power"
)

// TestMetricsFollowPrometheusConventions scrapes a live /metrics after a
// result and a telemetry message: values are in base units (the messages'
// milliseconds and millijoules become seconds and joules), and `promtool
// check metrics` accepts the page.
func TestMetricsFollowPrometheusConventions(t *testing.T) {
	log, _ := testLogger()
	_, p := embeddedPublisher(t, Config{Site: "lab", Device: "drone-7", SpoolDir: t.TempDir(), BrokerListen: "127.0.0.1:0"}, nil, log)
	ctx := context.Background()
	res := sampleResult(1) // exits of 9.8 and 12.1 ms, 93.3 mJ
	tel := &Telemetry{PowerW: 14, PowerSource: power.SourceJetson, TempsC: map[string]float64{"gpu": 61}, TempSource: power.SourceJetson, FPS: 30}
	for _, m := range []Message{res, tel} {
		if err := p.Publish(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 5*time.Second, "spool emptied", func() bool { return p.spool.Stats().Records == 0 })

	body := scrape(t, p)
	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	for _, tt := range []struct {
		name  string
		label string // "name=value" the series must carry, or ""
		got   func(*dto.Metric) float64
		want  float64
	}{
		{"edge_exit_latency_seconds", "exit=1", histSum, 0.0098},
		{"edge_exit_latency_seconds", "exit=2", histSum, 0.0219},
		{"edge_frame_latency_seconds", "", histSum, 0.0219},
		{"edge_frame_energy_joules", "", histSum, 0.0933},
		{"edge_energy_joules_total", "source=jetson-ina3221", func(m *dto.Metric) float64 { return m.GetCounter().GetValue() }, 0.0933},
		{"edge_power_watts", "source=jetson-ina3221", func(m *dto.Metric) float64 { return m.GetGauge().GetValue() }, 14},
		{"edge_frames_per_second", "", func(m *dto.Metric) float64 { return m.GetGauge().GetValue() }, 30},
	} {
		m := series(families[tt.name], tt.label)
		if m == nil {
			t.Errorf("%s{%s}: not on /metrics", tt.name, tt.label)
			continue
		}
		if got := tt.got(m); math.Abs(got-tt.want) > 1e-9 {
			t.Errorf("%s{%s} = %v, want %v", tt.name, tt.label, got, tt.want)
		}
	}
	promtoolCheck(t, body)
}

func histSum(m *dto.Metric) float64 { return m.GetHistogram().GetSampleSum() }

// series returns the metric of f whose labels include label ("name=value"),
// or the first when label is empty.
func series(f *dto.MetricFamily, label string) *dto.Metric {
	for _, m := range f.GetMetric() {
		if label == "" {
			return m
		}
		for _, l := range m.GetLabel() {
			if l.GetName()+"="+l.GetValue() == label {
				return m
			}
		}
	}
	return nil
}

// promtoolCheck runs `promtool check metrics` (Debian's prometheus package,
// installed by make setup) on a scraped page. Without promtool the check
// skips, unless EDGE_REQUIRE_PROMTOOL is set (make test sets it).
func promtoolCheck(t *testing.T, page []byte) {
	t.Helper()
	bin, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("EDGE_REQUIRE_PROMTOOL") != "" {
			t.Fatal("promtool not found and EDGE_REQUIRE_PROMTOOL is set: install Debian's prometheus package (make setup)")
		}
		t.Skip("promtool not installed (Debian package prometheus; make setup installs it): /metrics not linted")
	}
	cmd := exec.Command(bin, "check", "metrics")
	cmd.Stdin = bytes.NewReader(page)
	if out, err := cmd.CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}
