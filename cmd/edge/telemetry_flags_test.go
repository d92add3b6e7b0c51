package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/anytime-edge/edge/internal/testkit"
)

// TestTelemetrySettingsAreCheckedUpFront runs infer with bad MQTT settings:
// each is refused before anything is loaded, naming the flag, and the
// password never appears in the error.
func TestTelemetrySettingsAreCheckedUpFront(t *testing.T) {
	dir := t.TempDir()
	empty := testkit.WriteFile(t, filepath.Join(dir, "empty"), nil)
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--mqtt", "tcp://127.0.0.1:1883"}, "--site and --device"},
		{[]string{"--mqtt", "http://broker", "--site", "s", "--device", "d"}, "mqtt settings"},
		{[]string{"--site", "Site One", "--device", "d"}, "mqtt settings"},
		{[]string{"--site", "s", "--device", "d", "--mqtt-ca", filepath.Join(dir, "missing.pem")}, "--mqtt-ca"},
		{[]string{"--site", "s", "--device", "d", "--spool-max-bytes", "lots"}, "--spool-max-bytes"},
		{[]string{"--site", "s", "--device", "d", "--mqtt-password-file", empty}, "is empty"},
		{[]string{"--mqtt", "tcp://127.0.0.1:1", "--site", "s", "--device", "d", "--mqtt-password", "hunter2-secret"}, "mqtt settings"},
	}
	for _, tt := range tests {
		args := append([]string{"infer", "--bundle", "/nonexistent"}, tt.args...)
		err := runEdge(t, append(args, "x.png")...)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: got %v, want an error containing %q", tt.args, err, tt.want)
			continue
		}
		if strings.Contains(err.Error(), "hunter2-secret") {
			t.Errorf("%v: the password leaked into the error: %v", tt.args, err)
		}
		if strings.Contains(err.Error(), "bundle.json") {
			t.Errorf("%v: the bundle was loaded before the settings were checked", tt.args)
		}
	}
}
