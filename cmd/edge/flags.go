package main

import (
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/anytime-edge/edge/power"
	"github.com/anytime-edge/edge/telemetry"
)

// Flag names. Every flag also reads the environment variable env(name)
// (EDGE_ and the name in upper case, '-' as '_') and the key name of the
// --config file; the builders in config.go read them only through these
// names.
const (
	// The app's own flags, before the command.
	flagLogLevel  = "log-level"
	flagLogFormat = "log-format"
	flagConfig    = "config"

	// Engine: opening and running a bundle.
	flagBundle    = "bundle"
	flagProviders = "providers"
	flagThreads   = "threads"
	flagORTLib    = "ort-lib"
	flagTRTCache  = "trt-cache"
	flagTRTFP16   = "trt-fp16"
	flagDLACore   = "dla-core"
	flagDeviceID  = "device-id"
	flagDispatch  = "dispatch"
	flagThreshold = "threshold"

	// Limits the halting policy holds each frame to.
	flagDeadline     = "deadline"
	flagMaxExit      = "max-exit"
	flagEnergyBudget = "energy-budget"
	flagPowerCap     = "power-cap"
	flagPowerWindow  = "power-window"
	flagThermalSoft  = "thermal-soft"
	flagThermalHard  = "thermal-hard"

	// Power sensing.
	flagPowerBackend  = "power-backend"
	flagBackend       = "backend" // hidden alias of --power-backend in `edge power`
	flagSysfs         = "sysfs"
	flagNVMLLib       = "nvml-lib"
	flagPowerInterval = "power-interval"

	// MQTT telemetry.
	flagMQTT             = "mqtt"
	flagSite             = "site"
	flagDevice           = "device"
	flagMQTTRoot         = "mqtt-root"
	flagMQTTUser         = "mqtt-user"
	flagMQTTPassword     = "mqtt-password"
	flagMQTTPasswordFile = "mqtt-password-file"
	flagMQTTCA           = "mqtt-ca"
	flagMQTTCert         = "mqtt-cert"
	flagMQTTKey          = "mqtt-key"
	flagMQTTLabelsQoS    = "mqtt-labels-qos"
	flagSpool            = "spool"
	flagSpoolMaxBytes    = "spool-max-bytes"
	flagSpoolMaxAge      = "spool-max-age"
	flagBrokerListen     = "broker-listen"
	flagBrokerUsersFile  = "broker-users-file"
	flagMetrics          = "metrics"

	// edge run.
	flagLoop        = "loop"
	flagFPS         = "fps"
	flagOnce        = "once"
	flagOut         = "out"
	flagProgressive = "progressive"
	flagHTTP        = "http"
	flagInputWidth  = "input-width"
	flagInputHeight = "input-height"

	// edge infer.
	flagDump   = "dump"
	flagTensor = "tensor"

	// edge bench and simulate.
	flagSimulate  = "simulate"
	flagFrames    = "frames"
	flagImages    = "images"
	flagBaseline  = "baseline"
	flagJSON      = "json"
	flagActive    = "active"
	flagSimSeed   = "sim-seed"
	flagSimFrames = "sim-frames"
	flagSimPeriod = "sim-period"

	// edge power.
	flagWatch    = "watch"
	flagInterval = "interval"

	// edge engines.
	flagDryRun = "dry-run"
)

// envOverrides are the flags whose environment variable is not env's rule.
var envOverrides = map[string][]string{
	flagMQTT:   {"EDGE_MQTT_URL"},
	flagORTLib: nil, // ort.Init reads EDGE_ORT_LIB itself, after the flag
}

// env is the environment variable of a flag: EDGE_ and the name in upper
// case with '_' for '-' (EDGE_MAX_EXIT for --max-exit), unless
// envOverrides says otherwise.
func env(name string) []string {
	if v, ok := envOverrides[name]; ok {
		return v
	}
	return []string{"EDGE_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))}
}

// appFlags are the flags given before the command.
func appFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: flagLogLevel, Value: "info", Usage: "debug, info, warn or error", EnvVars: env(flagLogLevel)},
		&cli.StringFlag{Name: flagLogFormat, Usage: "text or json (default: json for run, text otherwise)", EnvVars: env(flagLogFormat)},
		&cli.StringFlag{Name: flagConfig, Usage: "JSON file of flag values (a flag or EDGE_* variable overrides it)", EnvVars: env(flagConfig)},
	}
}

// defaultBundle is the bundle used when --bundle is not given.
const defaultBundle = "models/zoo/fashion-seg-adpc"

// defaultInput is what `edge run` reads when given no URI.
const defaultInput = "models/zoo/samples/scene-*.png"

// bundleFlag is --bundle.
func bundleFlag() cli.Flag {
	return &cli.StringFlag{Name: flagBundle, Value: defaultBundle, Usage: "model bundle directory", EnvVars: env(flagBundle)}
}

// engineFlags are the flags of every command that opens a bundle.
func engineFlags() []cli.Flag {
	return []cli.Flag{
		bundleFlag(),
		&cli.StringFlag{Name: flagProviders, Value: "tensorrt,cuda,cpu", Usage: "execution providers in order of preference", EnvVars: env(flagProviders)},
		&cli.IntFlag{Name: flagThreads, Usage: "CPU intra-op threads (0: ONNX Runtime's choice)", EnvVars: env(flagThreads)},
		&cli.StringFlag{Name: flagORTLib, Usage: "path of libonnxruntime.so (default: $EDGE_ORT_LIB, .deps/, then the system loader path)"},
		&cli.StringFlag{Name: flagTRTCache, Usage: "TensorRT engine and timing cache directory (empty: no cache)", EnvVars: env(flagTRTCache)},
		&cli.BoolFlag{Name: flagTRTFP16, Value: true, Usage: "let TensorRT use half precision", EnvVars: env(flagTRTFP16)},
		&cli.IntFlag{Name: flagDLACore, Value: -1, Usage: "DLA core for TensorRT (-1: none)", EnvVars: env(flagDLACore)},
		&cli.IntFlag{Name: flagDeviceID, Usage: "CUDA device", EnvVars: env(flagDeviceID)},
		&cli.StringFlag{Name: flagDispatch, Value: "auto", Usage: "sparse stages: auto (measure each path at start, run the fastest for each frame's mask), sparse (always the sparse graph) or dense (the reference masked graph; the plain dense one when nothing is frozen)", EnvVars: env(flagDispatch)},
	}
}

// thresholdFlag is --threshold, for the commands that run frames.
func thresholdFlag() cli.Flag {
	return &cli.Float64Flag{Name: flagThreshold, Usage: "confidence threshold, 0 to 1; above 1 freezes no pixel", DefaultText: "the bundle's", EnvVars: env(flagThreshold)}
}

// limitFlags are the limits of the halting policy, the same in `edge
// infer` and `edge run`.
func limitFlags() []cli.Flag {
	return []cli.Flag{
		thresholdFlag(),
		&cli.DurationFlag{Name: flagDeadline, Usage: "per-frame deadline, e.g. 40ms (0: none); a stage after the first still running then is stopped", EnvVars: env(flagDeadline)},
		&cli.IntFlag{Name: flagMaxExit, Usage: "last exit to run (0: all)", EnvVars: env(flagMaxExit)},
		&cli.Float64Flag{Name: flagEnergyBudget, Usage: "per-frame energy budget in joules, met on average (0: none)", EnvVars: env(flagEnergyBudget)},
		&cli.Float64Flag{Name: flagPowerCap, Usage: "average power cap in watts over --power-window (0: none)", EnvVars: env(flagPowerCap)},
		&cli.DurationFlag{Name: flagPowerWindow, Value: power.DefaultPowerWindow, Usage: "sliding window of --power-cap", EnvVars: env(flagPowerWindow)},
		&cli.Float64Flag{Name: flagThermalSoft, Usage: "°C: fewer exits as the hottest sensor nears it (0: none)", EnvVars: env(flagThermalSoft)},
		&cli.Float64Flag{Name: flagThermalHard, Usage: "°C: exit 1 only at or above it (0: none)", EnvVars: env(flagThermalHard)},
	}
}

// powerFlags choose and configure the power backend.
func powerFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: flagPowerBackend, Value: "auto", Usage: "auto, nvml, jetson or estimate", EnvVars: env(flagPowerBackend)},
		&cli.StringFlag{Name: flagSysfs, Value: "/", Usage: "root of the device's file system for the Jetson backend", EnvVars: env(flagSysfs)},
		&cli.StringFlag{Name: flagNVMLLib, Usage: "path of libnvidia-ml.so.1 (default: the loader's search)", EnvVars: env(flagNVMLLib)},
	}
}

// powerIntervalFlag is --power-interval, the sampling period under a
// running pipeline.
func powerIntervalFlag() cli.Flag {
	return &cli.DurationFlag{Name: flagPowerInterval, Value: power.DefaultInterval, Usage: "power sampling period", EnvVars: env(flagPowerInterval)}
}

// telemetryCategory groups the MQTT flags in --help.
const telemetryCategory = "MQTT telemetry"

// telemetryFlags configure publishing results and health over MQTT
// (telemetry.Config). With no --mqtt, the embedded broker serves
// 127.0.0.1:1883.
func telemetryFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: flagMQTT, Usage: "broker URL, e.g. mqtts://broker:8883 (default: an embedded broker on --broker-listen)", EnvVars: env(flagMQTT), Category: telemetryCategory},
		&cli.StringFlag{Name: flagSite, Usage: "site id in topics, [a-z0-9-]{1,64}", EnvVars: env(flagSite), Category: telemetryCategory},
		&cli.StringFlag{Name: flagDevice, Usage: "device id in topics and MQTT client id, [a-z0-9-]{1,64}", EnvVars: env(flagDevice), Category: telemetryCategory},
		&cli.StringFlag{Name: flagMQTTRoot, Value: telemetry.DefaultRoot, Usage: "topic prefix above {site}/{device}", EnvVars: env(flagMQTTRoot), Category: telemetryCategory},
		&cli.StringFlag{Name: flagMQTTUser, Usage: "broker user name (with no --mqtt: the user the embedded broker requires)", EnvVars: env(flagMQTTUser), Category: telemetryCategory},
		&cli.StringFlag{Name: flagMQTTPassword, Usage: "broker password; prefer EDGE_MQTT_PASSWORD or --mqtt-password-file", EnvVars: env(flagMQTTPassword), Category: telemetryCategory, DefaultText: "none"},
		&cli.StringFlag{Name: flagMQTTPasswordFile, Usage: "file holding the broker password", EnvVars: env(flagMQTTPasswordFile), TakesFile: true, Category: telemetryCategory},
		&cli.StringFlag{Name: flagMQTTCA, Usage: "PEM CA certificate(s) that verify the broker (mqtts:// URLs; default: system roots)", EnvVars: env(flagMQTTCA), TakesFile: true, Category: telemetryCategory},
		&cli.StringFlag{Name: flagMQTTCert, Usage: "PEM client certificate (with --mqtt-key)", EnvVars: env(flagMQTTCert), TakesFile: true, Category: telemetryCategory},
		&cli.StringFlag{Name: flagMQTTKey, Usage: "PEM client key (with --mqtt-cert)", EnvVars: env(flagMQTTKey), TakesFile: true, Category: telemetryCategory},
		&cli.IntFlag{Name: flagMQTTLabelsQoS, Usage: "QoS of result/labels: 0 (live only) or 1 (spooled like results)", EnvVars: env(flagMQTTLabelsQoS), Category: telemetryCategory},
		&cli.StringFlag{Name: flagSpool, Usage: "spool directory for messages awaiting their PUBACK (default: user cache dir/anytime-edge/spool/{site}-{device})", EnvVars: env(flagSpool), TakesFile: true, Category: telemetryCategory},
		&cli.StringFlag{Name: flagSpoolMaxBytes, Value: "64MiB", Usage: "spool size bound; the oldest messages are dropped (and counted) beyond it", EnvVars: env(flagSpoolMaxBytes), Category: telemetryCategory},
		&cli.DurationFlag{Name: flagSpoolMaxAge, Value: 7 * 24 * time.Hour, Usage: "messages older than this are dropped from the spool (and counted)", EnvVars: env(flagSpoolMaxAge), Category: telemetryCategory},
		&cli.StringFlag{Name: flagBrokerUsersFile, Usage: "fleet users of the embedded broker, one user:password a line (with --mqtt-user/--mqtt-password, the device's own); only they may send commands", EnvVars: env(flagBrokerUsersFile), TakesFile: true, Category: telemetryCategory},
		&cli.StringFlag{Name: flagBrokerListen, Usage: "embedded broker address with no --mqtt (default 127.0.0.1:1883; beyond loopback only with --mqtt-user/--mqtt-password)", EnvVars: env(flagBrokerListen), Category: telemetryCategory},
		&cli.StringFlag{Name: flagMetrics, Usage: "serve Prometheus metrics on this loopback address, e.g. 127.0.0.1:9464 (default: off)", EnvVars: env(flagMetrics), Category: telemetryCategory},
	}
}

// runFlags are `edge run`'s own flags.
func runFlags() []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{Name: flagLoop, Usage: "restart a finite source at its end", EnvVars: env(flagLoop)},
		&cli.Float64Flag{Name: flagFPS, Usage: "read the source at most this fast (0: as fast as it comes)", EnvVars: env(flagFPS)},
		&cli.BoolFlag{Name: flagOnce, Usage: "process every frame of a finite source once, then exit (never drops)", EnvVars: env(flagOnce)},
		&cli.StringFlag{Name: flagOut, Usage: "also write each frame's overlay and label map here", EnvVars: env(flagOut)},
		&cli.BoolFlag{Name: flagProgressive, Usage: "also publish each exit's result the moment it exists", EnvVars: env(flagProgressive)},
		&cli.StringFlag{Name: flagHTTP, Usage: "serve the live view on this loopback address, e.g. 127.0.0.1:8080", EnvVars: env(flagHTTP)},
		&cli.IntFlag{Name: flagInputWidth, Usage: "camera capture width (csi://)", EnvVars: env(flagInputWidth)},
		&cli.IntFlag{Name: flagInputHeight, Usage: "camera capture height (csi://)", EnvVars: env(flagInputHeight)},
	}
}

// inferFlags are `edge infer`'s own flags.
func inferFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: flagOut, Value: "out", Usage: "directory for label PNGs, overlays and JSON summaries", EnvVars: env(flagOut)},
		&cli.StringFlag{Name: flagDump, Usage: "directory for exit{k}_logits.npy and exit{k}_mask.npy", EnvVars: env(flagDump)},
		&cli.StringFlag{Name: flagTensor, Usage: "a float32 [1,3,H,W] .npy fed as the already preprocessed input", EnvVars: env(flagTensor)},
	}
}

// benchFlags are `edge bench`'s own flags.
func benchFlags() []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{Name: flagSimulate, Usage: "run the halting policy on a simulated device instead (no bundle, no hardware)", EnvVars: env(flagSimulate)},
		&cli.IntFlag{Name: flagFrames, Value: 20, Usage: "timed passes over the frames, after one warm-up pass", EnvVars: env(flagFrames)},
		thresholdFlag(),
		&cli.StringFlag{Name: flagImages, Value: "testdata/images/street.png", Usage: "frames to run: a file, directory or glob", EnvVars: env(flagImages)},
		&cli.StringFlag{Name: flagBaseline, Usage: "a second bundle (e.g. the rh model) timed on the same frames in the same run; reports frame_ratio", EnvVars: env(flagBaseline)},
		&cli.BoolFlag{Name: flagJSON, Usage: "print one JSON object", EnvVars: env(flagJSON)},
		&cli.StringFlag{Name: flagActive, Usage: "time at an operating point: synthetic clustered masks (seeded) computing these fractions before stages 2, 3, … (e.g. 0.82,0.63,0.38), for every bundle timed", EnvVars: env(flagActive)},
	}
}

// simulateFlags are the flags of `edge simulate` and `edge bench
// --simulate`.
func simulateFlags() []cli.Flag {
	return []cli.Flag{
		&cli.Uint64Flag{Name: flagSimSeed, Value: 1, Usage: "random seed of the simulated device", EnvVars: env(flagSimSeed)},
		&cli.IntFlag{Name: flagSimFrames, Value: 2000, Usage: "frames per scenario (the thermal scenario runs three times as many)", EnvVars: env(flagSimFrames)},
		&cli.DurationFlag{Name: flagSimPeriod, Value: 100 * time.Millisecond, Usage: "time between frame arrivals", EnvVars: env(flagSimPeriod)},
	}
}

// monitorFlags are `edge power`'s own flags.
func monitorFlags() []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{Name: flagWatch, Usage: "keep printing a reading every --interval until interrupted", EnvVars: env(flagWatch)},
		&cli.BoolFlag{Name: flagJSON, Usage: "print one JSON reading per line", EnvVars: env(flagJSON)},
		&cli.DurationFlag{Name: flagInterval, Value: time.Second, Usage: "time between readings with --watch", EnvVars: env(flagInterval)},
		&cli.StringFlag{Name: flagBackend, Hidden: true, Usage: "the former name of --power-backend"},
	}
}

// cacheFlags are the flags of `edge engines ls` and `prune`.
func cacheFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: flagTRTCache, Value: "/var/cache/anytime-edge/trt", Usage: "engine and timing cache directory", EnvVars: env(flagTRTCache)},
		bundleFlag(),
	}
}

// pipelineFlags are the flags of the commands that run frames through the
// pipeline (`edge run`, `edge infer`): the engine, the halting limits, the
// power sensing and MQTT telemetry, with the command's own in between.
func pipelineFlags(own []cli.Flag) []cli.Flag {
	return flags(engineFlags(), limitFlags(), powerFlags(), []cli.Flag{powerIntervalFlag()}, own, telemetryFlags())
}

// flags joins flag groups into one command's list.
func flags(groups ...[]cli.Flag) []cli.Flag {
	var out []cli.Flag
	for _, g := range groups {
		out = append(out, g...)
	}
	return out
}
