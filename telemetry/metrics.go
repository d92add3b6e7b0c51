package telemetry

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the Publisher's Prometheus collectors, in a registry of its
// own (no global state). Names and values follow Prometheus's conventions:
// base units (seconds, joules, watts, bytes) named in full, whatever unit
// the MQTT messages they are taken from carry.
type metrics struct {
	reg          *prometheus.Registry
	frames       prometheus.Counter
	halts        *prometheus.CounterVec
	exitSeconds  *prometheus.HistogramVec
	frameSeconds prometheus.Histogram
	frameJoules  prometheus.Histogram
	energyJoules *prometheus.CounterVec
	powerW       *prometheus.GaugeVec
	tempC        *prometheus.GaugeVec
	throttled    prometheus.Gauge
	fps          prometheus.Gauge
	queueDrops   prometheus.Counter
	labelDrops   prometheus.Counter
	spoolErrors  prometheus.Counter
	published    *prometheus.CounterVec
	commands     *prometheus.CounterVec
	publishDelay prometheus.Histogram
	events       *prometheus.CounterVec
}

func newMetrics(p *Publisher) *metrics {
	reg := prometheus.NewRegistry()
	f := func(c prometheus.Collector) { reg.MustRegister(c) }
	latencyBuckets := []float64{.001, .002, .005, .010, .015, .020, .025, .033, .050, .075, .100, .200, .500}
	m := &metrics{
		reg:    reg,
		frames: prometheus.NewCounter(prometheus.CounterOpts{Name: "edge_frames_total", Help: "Frames whose result was published."}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "edge_events_total", Help: "Events published, by kind (source-stalled, frame-failed, ...)."}, []string{"kind"}),
		halts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "edge_frame_halts_total", Help: "Frames by halt exit and reason."},
			[]string{"exit", "reason"}),
		exitSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "edge_exit_latency_seconds", Help: "Stage time of a frame up to each exit.", Buckets: latencyBuckets},
			[]string{"exit"}),
		frameSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "edge_frame_latency_seconds", Help: "Frame time over all exits run.", Buckets: latencyBuckets}),
		frameJoules:  prometheus.NewHistogram(prometheus.HistogramOpts{Name: "edge_frame_energy_joules", Help: "Energy of a frame.", Buckets: prometheus.ExponentialBuckets(0.005, 2, 12)}),
		energyJoules: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "edge_energy_joules_total", Help: "Energy of all frames, by source."}, []string{"source"}),
		powerW:       prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "edge_power_watts", Help: "Last reported power, by source."}, []string{"source"}),
		tempC:        prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "edge_temperature_celsius", Help: "Last reported temperatures, by zone and source."}, []string{"zone", "source"}),
		throttled:    prometheus.NewGauge(prometheus.GaugeOpts{Name: "edge_throttled", Help: "1 while the device reports thermal throttling."}),
		fps:          prometheus.NewGauge(prometheus.GaugeOpts{Name: "edge_frames_per_second", Help: "Last reported frame rate."}),
		queueDrops: prometheus.NewCounter(prometheus.CounterOpts{Name: "edge_publish_queue_dropped_total",
			Help: "Messages dropped because the spool writer fell behind."}),
		labelDrops: prometheus.NewCounter(prometheus.CounterOpts{Name: "edge_labels_dropped_total",
			Help: "QoS 0 label maps not sent because the broker was not connected."}),
		spoolErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "edge_spool_errors_total", Help: "Spool write or sync errors."}),
		published: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "edge_mqtt_acked_total", Help: "Messages acknowledged by the broker, by whether they were replayed from the spool."},
			[]string{"replay"}),
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "edge_commands_total", Help: "Commands received, by name and outcome."},
			[]string{"name", "status"}),
		publishDelay: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "edge_publish_delay_seconds",
			Help:    "Time from Publish to PUBACK for live (not replayed) messages.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14)}),
	}
	for _, c := range []prometheus.Collector{m.frames, m.halts, m.exitSeconds, m.frameSeconds, m.frameJoules, m.energyJoules, m.powerW, m.tempC,
		m.throttled, m.fps, m.queueDrops, m.labelDrops, m.spoolErrors, m.published, m.commands, m.publishDelay, m.events} {
		f(c)
	}
	gauge := func(name, help string, v func() float64) {
		f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, v))
	}
	counter := func(name, help string, v func() float64) {
		f(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, v))
	}
	gauge("edge_spool_records", "Messages in the spool awaiting their PUBACK.", func() float64 { return float64(p.spool.Stats().Records) })
	gauge("edge_spool_bytes", "Size of the spool's segment files.", func() float64 { return float64(p.spool.Stats().Bytes) })
	counter("edge_spool_dropped_total", "Messages dropped from the spool by its size or age bound.", func() float64 { return float64(p.spool.Stats().Dropped) })
	counter("edge_spool_corrupt_total", "Damaged spool regions skipped.", func() float64 { return float64(p.spool.Stats().Corrupt) })
	counter("edge_mqtt_reconnects_total", "Broker reconnections.", func() float64 { return float64(p.client.Reconnects()) })
	gauge("edge_mqtt_connected", "1 while connected to the broker.", func() float64 {
		if _, up := p.client.Epoch(); up {
			return 1
		}
		return 0
	})
	return m
}

// observe updates the metrics from a message about to be published.
func (m *metrics) observe(msg Message) {
	switch v := msg.(type) {
	case *Result:
		m.frames.Inc()
		m.halts.WithLabelValues(strconv.Itoa(v.Halt.Exit), string(v.Halt.Reason)).Inc()
		var ms float64
		for _, e := range v.Exits {
			ms += e.MS
			m.exitSeconds.WithLabelValues(strconv.Itoa(e.Exit)).Observe(ms / 1e3)
		}
		m.frameSeconds.Observe(ms / 1e3)
		m.frameJoules.Observe(v.Energy.MJ / 1e3)
		m.energyJoules.WithLabelValues(string(v.Energy.Source)).Add(v.Energy.MJ / 1e3)
	case *Telemetry:
		m.powerW.WithLabelValues(string(v.PowerSource)).Set(v.PowerW)
		for zone, c := range v.TempsC {
			m.tempC.WithLabelValues(zone, string(v.TempSource)).Set(c)
		}
		if v.Throttled {
			m.throttled.Set(1)
		} else {
			m.throttled.Set(0)
		}
		m.fps.Set(v.FPS)
	case *Event:
		m.events.WithLabelValues(v.Kind).Inc()
	}
}
