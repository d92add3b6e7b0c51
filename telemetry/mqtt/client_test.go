package mqtt

import (
	"strings"
	"testing"
)

func TestMatch(t *testing.T) {
	tests := []struct {
		filter, topic string
		want          bool
	}{
		{"a/b/cmd/+", "a/b/cmd/set-deadline", true},
		{"a/b/cmd/+", "a/b/cmd/set-deadline/x", false},
		{"a/b/cmd/+", "a/b/cmd", false},
		{"a/#", "a/b/c", true},
		{"a/+/c", "a/b/c", true},
		{"a/+/c", "a/b/d", false},
		{"a/b", "a/b", true},
		{"a/b", "a/bc", false},
		{"#", "anything/at/all", true},
	}
	for _, tc := range tests {
		if got := match(tc.filter, tc.topic); got != tc.want {
			t.Errorf("match(%q, %q) = %v, want %v", tc.filter, tc.topic, got, tc.want)
		}
	}
}

func TestValidateURL(t *testing.T) {
	tests := []struct {
		url  string
		want string // "" = valid
		tls  bool
	}{
		{"tcp://127.0.0.1:1883", "", false},
		{"mqtt://broker.example:1883", "", false},
		{"mqtts://broker.example:8883", "", true},
		{"ssl://broker.example:8883", "", true},
		{"tls://[::1]:8883", "", true},
		{"ws://broker:80", "scheme must be", false},
		{"broker:1883", "scheme must be", false},
		{"tcp://broker", "want scheme://host:port", false},
		{"tcp://:1883", "want scheme://host:port", false},
		{"tcp://user:pw@broker:1883", "credentials in the url", false},
		{"tcp://broker:1883/path", "unexpected path", false},
	}
	for _, tc := range tests {
		u, err := ValidateURL(tc.url)
		if tc.want == "" {
			if err != nil {
				t.Errorf("ValidateURL(%q): %v", tc.url, err)
				continue
			}
			if IsTLS(u) != tc.tls {
				t.Errorf("IsTLS(%q) = %v, want %v", tc.url, IsTLS(u), tc.tls)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ValidateURL(%q) err = %v, want %q", tc.url, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "pw") {
			t.Errorf("ValidateURL(%q) error leaks the password: %v", tc.url, err)
		}
	}
}
