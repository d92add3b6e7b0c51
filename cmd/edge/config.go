package main

import (
	"fmt"
	"log/slog"
	"math"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/anytime-edge/edge/anytime"
	"github.com/anytime-edge/edge/bundle"
	"github.com/anytime-edge/edge/internal/regfile"
	"github.com/anytime-edge/edge/pipeline"
	"github.com/anytime-edge/edge/power"
	"github.com/anytime-edge/edge/power/backend"
	"github.com/anytime-edge/edge/power/sim"
	"github.com/anytime-edge/edge/telemetry"
	"github.com/anytime-edge/edge/telemetry/broker"
	"github.com/anytime-edge/edge/trt"
)

// Config is everything one command needs, built once from its flags (flag
// > EDGE_* > --config file) and validated by the command's builder below.
// The program reads this plain struct, never the flags; a command fills
// the sections it uses and leaves the rest zero.
type Config struct {
	Log    LogConfig
	Engine EngineConfig
	Power  PowerConfig
	// Telemetry is the MQTT publisher's configuration; nil when the
	// command publishes nothing.
	Telemetry *telemetry.Config
	Run       RunConfig
	Infer     InferConfig
	Bench     BenchConfig
	Simulate  sim.Options
	Monitor   MonitorConfig
	Cache     CacheConfig
}

// LogConfig is how a command logs.
type LogConfig struct {
	Level slog.Level
	JSON  bool // JSON lines (the daemon's default) rather than text
}

// EngineConfig is how a bundle is opened and run.
type EngineConfig struct {
	Bundle string // the bundle directory
	// ORTLib is the path of libonnxruntime.so; empty lets ort.Init search.
	ORTLib    string
	Providers trt.Options
	Dispatch  anytime.Dispatch
	// Threshold replaces the bundle's confidence threshold when set.
	Threshold *float32
}

// PowerConfig is the power backend and the limits the halting policy
// holds each frame to.
type PowerConfig struct {
	Backend backend.Kind
	Sysfs   string // the Jetson backend's root
	NVMLLib string
	// Interval is the sampling period.
	Interval time.Duration
	Limits   power.Limits
}

// RunConfig is `edge run`'s source and outputs.
type RunConfig struct {
	Source        string // the source URI
	Loop          bool   // restart a finite source at its end
	Once          bool   // every frame of a finite source once, never dropping
	FPS           float64
	Width, Height int    // camera capture size (csi://); 0: the source's default
	Out           string // directory for overlays; empty: none
	Progressive   bool   // publish each exit's result too
	HTTP          string // live view address; empty: none
}

// InferConfig is `edge infer`'s inputs and outputs.
type InferConfig struct {
	Inputs []pipeline.Input
	Out    string // directory for label PNGs, overlays and summaries
	Dump   string // directory for every exit's logits and masks; empty: none
}

// BenchConfig is `edge bench`'s work.
type BenchConfig struct {
	Simulate bool   // run the simulation (Config.Simulate) instead
	Frames   int    // timed passes over the images
	Images   string // a file, directory or glob
	Baseline string // a second bundle timed alongside; empty: none
	JSON     bool
	// Active, when set, replaces the masks before stages 2, 3, … by
	// synthetic ones computing these fractions (anytime.OperatingPoint).
	Active []float64
}

// MonitorConfig is `edge power`'s output; Config.Power.Interval is the
// time between readings.
type MonitorConfig struct {
	Watch bool
	JSON  bool
}

// CacheConfig is the TensorRT engine cache that `edge engines ls` and
// `prune` look at, for the bundle in Config.Engine.Bundle.
type CacheConfig struct {
	Dir    string
	DryRun bool
}

// maxThermalC bounds the thermal limits: no silicon runs hotter.
const maxThermalC = 200.0

// logConfig reads --log-level and --log-format; daemon commands log JSON
// unless told otherwise.
func logConfig(s *settings, daemon bool) LogConfig {
	var l LogConfig
	if err := l.Level.UnmarshalText([]byte(s.string(flagLogLevel))); err != nil {
		s.refuse(flagLogLevel, strconv.Quote(s.string(flagLogLevel)), "debug, info, warn or error")
	}
	switch f := s.string(flagLogFormat); f {
	case "":
		l.JSON = daemon
	case "json":
		l.JSON = true
	case "text":
	default:
		s.refuse(flagLogFormat, strconv.Quote(f), "text or json")
	}
	return l
}

// engineConfig reads the flags of engineFlags.
func engineConfig(s *settings) EngineConfig {
	e := EngineConfig{
		Bundle:    s.string(flagBundle),
		ORTLib:    s.string(flagORTLib),
		Providers: trt.DefaultOptions(),
	}
	order, err := trt.ParseProviders(s.string(flagProviders))
	if err != nil {
		s.fail(fmt.Errorf("--providers: %w", err))
	}
	e.Providers.Order, e.Providers.Explicit = order, s.isSet(flagProviders)
	e.Providers.CacheDir = s.string(flagTRTCache)
	e.Providers.FP16 = s.bool(flagTRTFP16)
	e.Providers.IntraOpThreads = s.nonNegativeInt(flagThreads, "0 (ONNX Runtime's choice) or more threads")
	e.Providers.DeviceID = s.nonNegativeInt(flagDeviceID, "a CUDA device ≥ 0")
	if e.Providers.DLACore = s.int(flagDLACore); e.Providers.DLACore < -1 {
		s.refuse(flagDLACore, e.Providers.DLACore, "-1 (none) or a DLA core ≥ 0")
	}
	if e.Dispatch, err = anytime.ParseDispatch(s.string(flagDispatch)); err != nil {
		s.refuse(flagDispatch, strconv.Quote(s.string(flagDispatch)), "auto, sparse or dense")
	}
	e.Threshold = threshold(s)
	return e
}

// threshold reads --threshold: nil when not given, so the bundle's holds.
// A pixel is frozen once its confidence reaches the threshold; confidences
// lie in [0, 1], so a threshold above 1 freezes nothing and runs every
// stage.
func threshold(s *settings) *float32 {
	if !s.isSet(flagThreshold) {
		return nil
	}
	t := s.float(flagThreshold)
	if !finite(t) || t < 0 || t > math.MaxFloat32 {
		s.refuse(flagThreshold, t, "a finite number ≥ 0 (0 to 1; above 1 freezes no pixel)")
		return nil
	}
	t32 := float32(t)
	return &t32
}

// limits reads the flags of limitFlags other than --threshold.
func limits(s *settings) power.Limits {
	l := power.Limits{
		Deadline:      s.nonNegativeDuration(flagDeadline, "a duration ≥ 0 (0: none)"),
		MaxExit:       s.nonNegativeInt(flagMaxExit, "0 (all exits) or the number of the last exit to run"),
		EnergyBudgetJ: s.nonNegative(flagEnergyBudget, "joules, a finite number ≥ 0 (0: none)"),
		PowerCapW:     s.nonNegative(flagPowerCap, "watts, a finite number ≥ 0 (0: none)"),
		PowerWindow:   s.positiveDuration(flagPowerWindow),
		ThermalSoftC:  thermal(s, flagThermalSoft),
		ThermalHardC:  thermal(s, flagThermalHard),
	}
	if l.ThermalSoftC > 0 && l.ThermalHardC > 0 && l.ThermalSoftC > l.ThermalHardC {
		s.fail(fmt.Errorf("--%s %v is above --%s %v: want the soft limit at or below the hard one", flagThermalSoft, l.ThermalSoftC, flagThermalHard, l.ThermalHardC))
	}
	return l
}

// thermal reads a temperature limit in °C.
func thermal(s *settings, name string) float64 {
	c := s.float(name)
	if !finite(c) || c < 0 || c > maxThermalC {
		s.refuse(name, c, fmt.Sprintf("°C, 0 (none) to %g", maxThermalC))
	}
	return c
}

// powerConfig reads the flags of powerFlags, with the sampling period from
// the interval flag (which differs between `edge power` and the pipeline).
func powerConfig(s *settings, interval string) PowerConfig {
	p := PowerConfig{
		Sysfs:    s.string(flagSysfs),
		NVMLLib:  s.string(flagNVMLLib),
		Interval: s.positiveDuration(interval),
	}
	name := flagPowerBackend
	if !s.isSet(flagPowerBackend) && s.isSet(flagBackend) {
		name = flagBackend
	}
	kind, err := backend.ParseKind(s.string(name))
	if err != nil {
		s.fail(fmt.Errorf("--%s: %w", name, err))
	}
	p.Backend = kind
	return p
}

// defaultSite is the site of `edge run` when none is given.
const defaultSite = "local"

// telemetryConfig reads the flags of telemetryFlags into a validated
// telemetry.Config. With defaultIDs (edge run) a missing --site is
// "local" and a missing --device the host name, so the embedded broker
// works out of the box. Errors name the flag; the password never appears
// in them.
func telemetryConfig(s *settings, defaultIDs bool) *telemetry.Config {
	cfg := &telemetry.Config{
		BrokerURL:    s.string(flagMQTT),
		BrokerListen: s.string(flagBrokerListen),
		Root:         s.string(flagMQTTRoot),
		Site:         s.string(flagSite),
		Device:       s.string(flagDevice),
		Username:     s.string(flagMQTTUser),
		Password:     s.string(flagMQTTPassword),
		CAFile:       s.string(flagMQTTCA),
		CertFile:     s.string(flagMQTTCert),
		KeyFile:      s.string(flagMQTTKey),
		SpoolDir:     s.string(flagSpool),
		SpoolMaxAge:  s.positiveDuration(flagSpoolMaxAge),
		LabelsQoS:    s.int(flagMQTTLabelsQoS),
		MetricsAddr:  s.string(flagMetrics),
		Software:     "edge " + version,
	}
	if cfg.LabelsQoS != 0 && cfg.LabelsQoS != 1 {
		s.refuse(flagMQTTLabelsQoS, cfg.LabelsQoS, "0 (live only) or 1 (spooled)")
	}
	if defaultIDs {
		if cfg.Site == "" {
			cfg.Site = defaultSite
		}
		if cfg.Device == "" {
			cfg.Device = hostDeviceID()
		}
	}
	if cfg.Site == "" || cfg.Device == "" {
		s.fail(fmt.Errorf("--site and --device are required to publish (EDGE_SITE, EDGE_DEVICE)"))
		return cfg
	}
	if pf := s.string(flagMQTTPasswordFile); pf != "" {
		if cfg.Password != "" {
			s.fail(fmt.Errorf("--mqtt-password-file and --mqtt-password are both set; use one"))
			return cfg
		}
		b, err := regfile.Read(pf, 64<<10)
		if err != nil {
			s.fail(fmt.Errorf("--mqtt-password-file: %w", err))
			return cfg
		}
		cfg.Password = strings.TrimRight(string(b), "\r\n")
		if cfg.Password == "" {
			s.fail(fmt.Errorf("--mqtt-password-file %s is empty", pf))
			return cfg
		}
	}
	if uf := s.string(flagBrokerUsersFile); uf != "" {
		b, err := regfile.Read(uf, 64<<10)
		if err == nil {
			cfg.BrokerUsers, err = broker.ParseUsers(b)
		}
		if err != nil {
			s.fail(fmt.Errorf("--%s %s: %w", flagBrokerUsersFile, uf, err))
			return cfg
		}
	}
	n, err := parseBytes(s.string(flagSpoolMaxBytes))
	if err != nil {
		s.fail(fmt.Errorf("--spool-max-bytes: %w", err))
		return cfg
	}
	cfg.SpoolMaxBytes = n
	for _, flag := range []string{flagMQTTCA, flagMQTTCert, flagMQTTKey} {
		if p := s.string(flag); p != "" {
			f, err := os.Open(p)
			if err != nil {
				s.fail(fmt.Errorf("--%s: %w", flag, err))
				return cfg
			}
			f.Close()
		}
	}
	if err := cfg.Validate(); err != nil {
		s.fail(fmt.Errorf("mqtt settings: %w", err))
	}
	return cfg
}

// publishing reports whether the flags ask `edge infer` to publish: a
// broker URL or a device id was given.
func publishing(s *settings) bool {
	return s.string(flagMQTT) != "" || s.string(flagDevice) != ""
}

// hostDeviceID is the host name reduced to a device id, [a-z0-9-]{1,64}.
func hostDeviceID() string {
	host, _ := os.Hostname()
	id := regexp.MustCompile(`[^a-z0-9-]+`).ReplaceAllString(strings.ToLower(host), "-")
	id = strings.Trim(id, "-")
	if len(id) > 64 {
		id = id[:64]
	}
	if id == "" {
		id = "edge"
	}
	return id
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

// pipelineConfig builds what the commands that run frames through the
// pipeline (pipelineFlags) share: the log (daemon: JSON by default), the
// engine, and the power sensing with the halting limits.
func pipelineConfig(s *settings, daemon bool) Config {
	cfg := Config{Log: logConfig(s, daemon), Engine: engineConfig(s), Power: powerConfig(s, flagPowerInterval)}
	cfg.Power.Limits = limits(s)
	return cfg
}

// runConfig builds `edge run`'s Config.
func runConfig(s *settings) (Config, error) {
	cfg := pipelineConfig(s, true)
	cfg.Run = RunConfig{
		Source:      defaultInput,
		Loop:        s.bool(flagLoop),
		Once:        s.bool(flagOnce),
		FPS:         s.nonNegative(flagFPS, "frames per second, a finite number ≥ 0 (0: as fast as frames come)"),
		Width:       s.nonNegativeInt(flagInputWidth, "pixels > 0 (0: the camera's default)"),
		Height:      s.nonNegativeInt(flagInputHeight, "pixels > 0 (0: the camera's default)"),
		Out:         s.string(flagOut),
		Progressive: s.bool(flagProgressive),
		HTTP:        s.string(flagHTTP),
	}
	switch len(s.args) {
	case 0:
	case 1:
		cfg.Run.Source = s.args[0]
	default:
		s.fail(fmt.Errorf("run: one SOURCE-URI at most (a directory or glob covers many files), got %d", len(s.args)))
	}
	cfg.Run.Loop = cfg.Run.Loop && !cfg.Run.Once
	cfg.Telemetry = telemetryConfig(s, true)
	return cfg, s.err()
}

// inferConfig builds `edge infer`'s Config.
func inferConfig(s *settings) (Config, error) {
	cfg := pipelineConfig(s, false)
	cfg.Infer = InferConfig{Out: s.string(flagOut), Dump: s.string(flagDump)}
	if t := s.string(flagTensor); t != "" {
		cfg.Infer.Inputs = append(cfg.Infer.Inputs, pipeline.Input{Path: t, Tensor: true})
	}
	for _, p := range s.args {
		cfg.Infer.Inputs = append(cfg.Infer.Inputs, pipeline.Input{Path: p})
	}
	if len(cfg.Infer.Inputs) == 0 {
		s.fail(fmt.Errorf("infer: give at least one IMAGE or --tensor FILE.npy"))
	}
	if publishing(s) {
		cfg.Telemetry = telemetryConfig(s, false)
	}
	return cfg, s.err()
}

// benchConfig builds `edge bench`'s Config.
func benchConfig(s *settings) (Config, error) {
	cfg := Config{
		Log:    logConfig(s, false),
		Engine: engineConfig(s),
		Bench: BenchConfig{
			Simulate: s.bool(flagSimulate),
			Frames:   s.int(flagFrames),
			Images:   s.string(flagImages),
			Baseline: s.string(flagBaseline),
			JSON:     s.bool(flagJSON),
		},
		Simulate: simOptions(s),
	}
	if cfg.Bench.Frames < 1 {
		s.refuse(flagFrames, cfg.Bench.Frames, "at least 1")
	}
	if active := s.string(flagActive); active != "" {
		for _, f := range strings.Split(active, ",") {
			a, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
			if err != nil || !(a >= 0 && a <= 1) || (len(cfg.Bench.Active) > 0 && a > cfg.Bench.Active[len(cfg.Bench.Active)-1]) {
				s.refuse(flagActive, strconv.Quote(active), "computed fractions in [0, 1], not increasing, one per stage after the first (e.g. 0.82,0.63,0.38)")
				break
			}
			cfg.Bench.Active = append(cfg.Bench.Active, a)
		}
	}
	return cfg, s.err()
}

// simOptions reads the flags of simulateFlags.
func simOptions(s *settings) sim.Options {
	o := sim.Options{Seed: s.uint64(flagSimSeed), Frames: s.int(flagSimFrames), Period: s.positiveDuration(flagSimPeriod)}
	if o.Frames < 100 {
		s.refuse(flagSimFrames, o.Frames, "at least 100")
	}
	return o
}

// simulateConfig builds `edge simulate`'s Config.
func simulateConfig(s *settings) (Config, error) {
	return Config{Log: logConfig(s, false), Simulate: simOptions(s)}, s.err()
}

// monitorConfig builds `edge power`'s Config.
func monitorConfig(s *settings) (Config, error) {
	cfg := Config{
		Log:     logConfig(s, false),
		Power:   powerConfig(s, flagInterval),
		Monitor: MonitorConfig{Watch: s.bool(flagWatch), JSON: s.bool(flagJSON)},
	}
	return cfg, s.err()
}

// engineOnlyConfig builds the Config of the commands that only open a
// bundle: `edge probe` and `edge engines build`.
func engineOnlyConfig(s *settings) (Config, error) {
	return Config{Log: logConfig(s, false), Engine: engineConfig(s)}, s.err()
}

// cacheConfig builds the Config of `edge engines ls` and `prune`.
func cacheConfig(s *settings) (Config, error) {
	cfg := Config{
		Log:    logConfig(s, false),
		Engine: EngineConfig{Bundle: s.string(flagBundle)},
		Cache:  CacheConfig{Dir: s.string(flagTRTCache), DryRun: s.bool(flagDryRun)},
	}
	return cfg, s.err()
}

// checkBundle checks the settings that depend on the bundle once it is
// loaded: --max-exit within its exits.
func (c Config) checkBundle(b *bundle.Bundle) error {
	if n := c.Power.Limits.MaxExit; n > len(b.Stages) {
		return fmt.Errorf("--%s %d: the bundle %s has %d exits", flagMaxExit, n, b.Name, len(b.Stages))
	}
	return nil
}
