package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/anytime-edge/edge/internal/testkit"
	"github.com/anytime-edge/edge/power"
	"github.com/anytime-edge/edge/power/backend"
)

// TestBadSettingsAreRefusedUpFront gives each command one bad value at a
// time: each is refused before anything is opened (no bundle, source or
// backend), with an error naming the flag and the value.
func TestBadSettingsAreRefusedUpFront(t *testing.T) {
	tests := []struct {
		args string // the command line, split on spaces
		want string
	}{
		{"infer --threshold NaN", "--threshold NaN"},
		{"infer --threshold Inf", "--threshold +Inf"},
		{"infer --threshold -0.1", "--threshold -0.1"},
		{"infer --threshold 1e39", "--threshold 1e+39"}, // +Inf as a float32
		{"infer --deadline -1ms", "--deadline -1ms"},
		{"infer --max-exit -1", "--max-exit -1"},
		{"infer --energy-budget -2", "--energy-budget -2"},
		{"infer --energy-budget NaN", "--energy-budget NaN"},
		{"infer --power-cap -1", "--power-cap -1"},
		{"infer --power-cap Inf", "--power-cap +Inf"},
		{"infer --power-window 0s", "--power-window 0s"},
		{"infer --thermal-soft NaN", "--thermal-soft NaN"},
		{"infer --thermal-soft -5", "--thermal-soft -5"},
		{"infer --thermal-hard 2e6", "--thermal-hard 2e+06"},
		{"infer --thermal-soft 90 --thermal-hard 80", "--thermal-soft 90 is above --thermal-hard 80"},
		{"infer --power-interval 0s", "--power-interval 0s"},
		{"infer --power-backend tegrastats", "--power-backend"},
		{"infer --threads -1", "--threads -1"},
		{"infer --dla-core -2", "--dla-core -2"},
		{"infer --device-id -1", "--device-id -1"},
		{"infer --dispatch fast", `--dispatch "fast"`},
		{"infer --mqtt-labels-qos 2 --site s --device d", "--mqtt-labels-qos 2"},
		{"infer --spool-max-age -1h --site s --device d", "--spool-max-age -1h0m0s"},
		{"run --threshold NaN", "--threshold NaN"},
		{"run --deadline -40ms", "--deadline -40ms"},
		{"run --fps -1", "--fps -1"},
		{"run --fps NaN", "--fps NaN"},
		{"run --input-width -640", "--input-width -640"},
		{"bench --threshold NaN", "--threshold NaN"},
		{"bench --frames 0", "--frames 0"},
		{"bench --active 0.4,0.6", `--active "0.4,0.6"`},
		{"bench --active 1.5", `--active "1.5"`},
		{"bench --simulate --sim-frames 10", "--sim-frames 10"},
		{"simulate --sim-period 0s", "--sim-period 0s"},
		{"power --interval -1s", "--interval -1s"},
		{"power --power-backend tegrastats", "--power-backend"},
	}
	for _, tt := range tests {
		t.Run(tt.args, func(t *testing.T) {
			cmd, rest, _ := strings.Cut(tt.args, " ")
			args := []string{cmd}
			switch cmd {
			case "infer", "run", "bench":
				args = append(args, "--bundle", "/nonexistent")
			case "power":
				args = append(args, "--sysfs", "/nonexistent")
			}
			args = append(args, strings.Fields(rest)...)
			switch cmd {
			case "infer":
				args = append(args, "/nonexistent/x.png")
			case "run":
				args = append(args, "/nonexistent/frames")
			}
			err := runEdge(t, args...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error containing %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "/nonexistent") {
				t.Errorf("something was opened before the settings were checked: %v", err)
			}
		})
	}
}

// TestInferReadsTheLimitVariables sets each limit of `edge infer` to a bad
// value through its EDGE_* variable, as `edge run` reads it: each is
// refused naming its flag.
func TestInferReadsTheLimitVariables(t *testing.T) {
	tests := []struct{ env, value, want string }{
		{"EDGE_THRESHOLD", "NaN", "--threshold NaN"},
		{"EDGE_DEADLINE", "-1s", "--deadline -1s"},
		{"EDGE_MAX_EXIT", "-1", "--max-exit -1"},
		{"EDGE_ENERGY_BUDGET", "-1", "--energy-budget -1"},
		{"EDGE_POWER_CAP", "-1", "--power-cap -1"},
		{"EDGE_THERMAL_SOFT", "-1", "--thermal-soft -1"},
		{"EDGE_THERMAL_HARD", "-1", "--thermal-hard -1"},
	}
	for _, tt := range tests {
		for _, cmd := range []string{"infer", "run"} {
			t.Run(cmd+" "+tt.env, func(t *testing.T) {
				t.Setenv(tt.env, tt.value)
				err := runEdge(t, cmd, "--bundle", "/nonexistent", "/nonexistent/x.png")
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Errorf("got %v, want an error containing %q", err, tt.want)
				}
			})
		}
	}
}

// TestMaxExitBeyondTheBundleIsRefused asks for exit 5 of a bundle with 4.
func TestMaxExitBeyondTheBundleIsRefused(t *testing.T) {
	lib := ortOrSkip(t)
	err := runEdge(t, "infer", "--ort-lib", lib, "--providers", "cpu", "--bundle", filepath.Join(repo, "testdata/bundles/tiny"),
		"--max-exit", "5", "--out", t.TempDir(), filepath.Join(repo, "testdata/images/street.png"))
	if want := "--max-exit 5: the bundle tiny-adpc-random has 4 exits"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("got %v, want an error containing %q", err, want)
	}
}

// buildConfig runs the app with the named command's action replaced by one
// that captures the Config its builder made.
func buildConfig(t *testing.T, command string, args ...string) (Config, error) {
	t.Helper()
	app := newApp()
	app.Writer, app.ErrWriter = &bytes.Buffer{}, &bytes.Buffer{}
	var got Config
	found := false
	for _, c := range app.Commands {
		if c.Name == command {
			found = true
			build := map[string]func(*settings) (Config, error){
				"run": runConfig, "infer": inferConfig, "bench": benchConfig, "power": monitorConfig,
			}[command]
			c.Action = action(build, func(_ context.Context, cfg Config, _ *slog.Logger, _ io.Writer) error {
				got = cfg
				return nil
			})
		}
	}
	if !found {
		t.Fatalf("no command %q", command)
	}
	err := app.Run(append([]string{"edge"}, args...))
	return got, err
}

// TestSettingsPrecedence checks flag > EDGE_* > --config file > default
// for each kind of value.
func TestSettingsPrecedence(t *testing.T) {
	cfgFile := filepath.Join(t.TempDir(), "edge.json")
	testkit.WriteFile(t, cfgFile, []byte(`{"deadline": "30ms", "max-exit": 3, "threshold": 0.25, "energy-budget": 1.5,
		"providers": ["cuda", "cpu"], "trt-fp16": false, "out": "from-file", "mqtt-labels-qos": 1, "site": "s", "device": "from-file"}`))
	t.Setenv("EDGE_MAX_EXIT", "2")
	t.Setenv("EDGE_DEVICE", "from-env")
	cfg, err := buildConfig(t, "infer", "--config", cfgFile, "infer", "--deadline", "40ms", "x.png")
	if err != nil {
		t.Fatal(err)
	}
	l := cfg.Power.Limits
	if l.Deadline != 40*time.Millisecond {
		t.Errorf("deadline %v, want 40ms from the flag", l.Deadline)
	}
	if l.MaxExit != 2 {
		t.Errorf("max exit %d, want 2 from EDGE_MAX_EXIT", l.MaxExit)
	}
	if cfg.Engine.Threshold == nil || *cfg.Engine.Threshold != 0.25 || l.EnergyBudgetJ != 1.5 {
		t.Errorf("threshold %v, energy budget %v, want 0.25 and 1.5 from the file", cfg.Engine.Threshold, l.EnergyBudgetJ)
	}
	if got := cfg.Engine.Providers.Order; len(got) != 2 || got[0] != "cuda" || !cfg.Engine.Providers.Explicit {
		t.Errorf("providers %v (explicit %v), want [cuda cpu] from the file, explicit", got, cfg.Engine.Providers.Explicit)
	}
	if cfg.Engine.Providers.FP16 || cfg.Infer.Out != "from-file" {
		t.Errorf("trt-fp16 %v, out %q, want false and from-file from the file", cfg.Engine.Providers.FP16, cfg.Infer.Out)
	}
	if cfg.Telemetry == nil || cfg.Telemetry.Device != "from-env" || cfg.Telemetry.LabelsQoS != 1 {
		t.Errorf("telemetry %+v, want device from-env and labels QoS 1 from the file", cfg.Telemetry)
	}
	if l.PowerCapW != 0 || cfg.Power.Interval != power.DefaultInterval || cfg.Engine.Bundle != defaultBundle {
		t.Errorf("defaults lost: power cap %v, interval %v, bundle %q", l.PowerCapW, cfg.Power.Interval, cfg.Engine.Bundle)
	}
}

// TestConfigFileValueOfTheWrongType: a --config value that does not parse
// as its flag's type is refused, naming the file and the key.
func TestConfigFileValueOfTheWrongType(t *testing.T) {
	cfgFile := filepath.Join(t.TempDir(), "edge.json")
	testkit.WriteFile(t, cfgFile, []byte(`{"max-exit": "two"}`))
	if _, err := buildConfig(t, "infer", "--config", cfgFile, "infer", "x.png"); err == nil || !strings.Contains(err.Error(), `max-exit "two": want an integer`) {
		t.Errorf("a file value of the wrong type passed: %v", err)
	}
}

// TestRunDefaultsItsDeviceIDs: with no --site and --device, `edge run`
// publishes as site "local", device the host name.
func TestRunDefaultsItsDeviceIDs(t *testing.T) {
	cfg, err := buildConfig(t, "run", "run")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Telemetry == nil || cfg.Telemetry.Site != "local" || cfg.Telemetry.Device != hostDeviceID() {
		t.Errorf("telemetry %+v, want site local and device %q", cfg.Telemetry, hostDeviceID())
	}
	if cfg.Run.Source != defaultInput || !cfg.Log.JSON {
		t.Errorf("source %q, JSON log %v; want %q and JSON", cfg.Run.Source, cfg.Log.JSON, defaultInput)
	}
}

// TestPowerBackendHasOneName: `--power-backend` in every command, and
// `edge power --backend` still read as its hidden alias.
func TestPowerBackendHasOneName(t *testing.T) {
	for _, tt := range []struct {
		cmd  string
		args []string
		want backend.Kind
	}{
		{"power", []string{"--power-backend", "estimate"}, backend.Estimate},
		{"power", []string{"--backend", "jetson"}, backend.Jetson},
		{"power", nil, backend.Auto},
		{"infer", []string{"--power-backend", "estimate", "x.png"}, backend.Estimate},
		{"run", []string{"--power-backend", "nvml"}, backend.NVML},
	} {
		cfg, err := buildConfig(t, tt.cmd, append([]string{tt.cmd}, tt.args...)...)
		if err != nil || cfg.Power.Backend != tt.want {
			t.Errorf("%s %v: backend %q (%v), want %q", tt.cmd, tt.args, cfg.Power.Backend, err, tt.want)
		}
	}
}

// TestSettingFilesAreBounded: the --config file and the password file must
// be regular files of bounded size, refused before they are read.
func TestSettingFilesAreBounded(t *testing.T) {
	dir := t.TempDir()
	big := testkit.WriteFile(t, filepath.Join(dir, "big.json"), nil)
	if err := os.Truncate(big, 2<<20); err != nil {
		t.Fatal(err)
	}
	users := testkit.WriteFile(t, filepath.Join(dir, "users"), []byte("ops-without-password\n"))
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--config", dir, "infer", "x.png"}, "not a regular file"},
		{[]string{"--config", big, "infer", "x.png"}, "file too large"},
		{[]string{"infer", "--site", "s", "--device", "d", "--mqtt-password-file", dir, "x.png"}, "not a regular file"},
		{[]string{"infer", "--site", "s", "--device", "d", "--mqtt-password-file", big, "x.png"}, "file too large"},
		{[]string{"infer", "--site", "s", "--device", "d", "--broker-users-file", dir, "x.png"}, "not a regular file"},
		{[]string{"infer", "--site", "s", "--device", "d", "--broker-users-file", users, "x.png"}, "line 1: want user:password"},
	}
	for _, tt := range tests {
		err := runEdge(t, tt.args...)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: got %v, want an error containing %q", tt.args, err, tt.want)
		}
	}
}
