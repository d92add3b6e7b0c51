package broker

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/anytime-edge/edge/telemetry/mqtt"
)

func TestCheckListen(t *testing.T) {
	tests := []struct {
		addr string
		auth bool
		ok   bool
	}{
		{"127.0.0.1:1883", false, true},
		{"[::1]:1883", false, true},
		{"localhost:1883", false, true},
		{"0.0.0.0:1883", false, false},
		{":1883", false, false},
		{"192.168.1.5:1883", false, false},
		{"0.0.0.0:1883", true, true},
		{"127.0.0.1", false, false},
	}
	for _, tc := range tests {
		err := CheckListen(tc.addr, tc.auth)
		if (err == nil) != tc.ok {
			t.Errorf("CheckListen(%q, auth=%v) = %v, want ok=%v", tc.addr, tc.auth, err, tc.ok)
		}
		if !tc.ok && tc.auth == false && err != nil && tc.addr != "127.0.0.1" && !errors.Is(err, ErrExposed) {
			t.Errorf("CheckListen(%q) = %v, want ErrExposed", tc.addr, err)
		}
	}
	if _, err := Start(Config{Listen: "0.0.0.0:0", Log: quiet()}); !errors.Is(err, ErrExposed) {
		t.Fatalf("Start on 0.0.0.0 without users: %v, want ErrExposed", err)
	}
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestUsersAreRequired(t *testing.T) {
	b, err := Start(Config{Listen: "127.0.0.1:0", Users: map[string]string{"drone-7": "right"}, Log: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	tests := []struct {
		user, pass string
		ok         bool
	}{
		{"drone-7", "right", true},
		{"drone-7", "wrong", false},
		{"", "", false},
		{"other", "right", false},
	}
	for _, tc := range tests {
		c, err := mqtt.New(mqtt.Config{URL: b.URL(), ClientID: "c-" + tc.user + tc.pass, Username: tc.user, Password: tc.pass, Log: quiet()})
		if err != nil {
			t.Fatal(err)
		}
		c.Start()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = c.WaitConnected(ctx)
		cancel()
		if tc.ok && err != nil {
			t.Errorf("%s/%s: %v", tc.user, tc.pass, err)
		}
		if !tc.ok && !errors.Is(err, mqtt.ErrRefused) {
			t.Errorf("%s/%s: err = %v, want ErrRefused", tc.user, tc.pass, err)
		}
		c.Close(context.Background(), 0)
	}
}
