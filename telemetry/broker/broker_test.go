package broker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
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
		c, err := dial(t, b, tc.user, tc.pass, "c-"+tc.user+tc.pass, nil)
		if tc.ok && err != nil {
			t.Errorf("%s/%s: %v", tc.user, tc.pass, err)
		}
		if !tc.ok && !errors.Is(err, mqtt.ErrRefused) {
			t.Errorf("%s/%s: err = %v, want ErrRefused", tc.user, tc.pass, err)
		}
		c.Close(context.Background(), 0)
	}
}

// mqttConnect is a minimal MQTT 3.1.1 CONNECT for client id.
func mqttConnect(id string) []byte {
	body := []byte{0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 60, 0, byte(len(id))}
	body = append(body, id...)
	return append(append([]byte{0x10}, varint(len(body))...), body...)
}

// varint encodes an MQTT remaining length.
func varint(n int) []byte {
	var out []byte
	for {
		b := byte(n % 128)
		n /= 128
		if n > 0 {
			b |= 0x80
		}
		out = append(out, b)
		if n == 0 {
			return out
		}
	}
}

// TestOversizedPublishRefused: a client announcing a 100 MiB publish is
// disconnected as soon as the header arrives, without the broker allocating
// the packet; a publish within the limit still passes.
func TestOversizedPublishRefused(t *testing.T) {
	var mu sync.Mutex
	var got []int
	b, err := Start(Config{Listen: "127.0.0.1:0", Log: quiet(), MaxPacketBytes: 64 << 10, Tap: func(topic string, payload []byte, _ bool) {
		mu.Lock()
		got = append(got, len(payload))
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	conn, err := net.Dial("tcp", b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write(mqttConnect("big")); err != nil {
		t.Fatal(err)
	}
	connack := make([]byte, 4)
	if _, err := io.ReadFull(conn, connack); err != nil || connack[0] != 0x20 || connack[3] != 0 {
		t.Fatalf("CONNACK = %x, %v; want an accepted connection", connack, err)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	const announced = 100 << 20
	topic := []byte{0, 1, 't'}
	if _, err := conn.Write(append(append([]byte{0x30}, varint(len(topic)+announced)...), topic...)); err != nil {
		t.Fatal(err)
	}
	// Keep sending the body: the broker must hang up instead of reading it.
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	chunk := make([]byte, 64<<10)
	sent := 0
	for ; sent < announced; sent += len(chunk) {
		if _, err := conn.Write(chunk); err != nil {
			break
		}
	}
	if sent >= announced {
		t.Fatalf("the broker read all %d MiB of an oversized publish", announced>>20)
	}
	if _, err := conn.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read after an oversized publish: %v, want the connection closed", err)
	}
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 16<<20 {
		t.Fatalf("the broker allocated %d MiB for a refused %d MiB publish", grew>>20, announced>>20)
	}

	// Within the limit: delivered.
	c := connect(t, b, "", "", "small", nil)
	defer c.Close(context.Background(), 0)
	if err := wait(c.Publish(mqtt.Message{Topic: "t", QoS: 1, Payload: make([]byte, 60<<10)})); err != nil {
		t.Fatalf("publish of 60 KiB: %v", err)
	}
	// paho may complete a token early, when it resumes the session just
	// after connecting (see telemetry/mqtt), so the tap says what the
	// broker accepted.
	eventually(t, "the 60 KiB publish at the broker", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) > 0
	})
	mu.Lock()
	defer mu.Unlock()
	// The same resume may send the 60 KiB publish again, marked DUP.
	for _, n := range got {
		if n != 60<<10 {
			t.Fatalf("accepted publishes of %v bytes, want only the 60 KiB one", got)
		}
	}
}

// connect starts a client and waits for its connection.
func connect(t *testing.T, b *Broker, user, pass, id string, will *mqtt.Message, subs ...mqtt.Subscription) *mqtt.Client {
	t.Helper()
	c, err := dial(t, b, user, pass, id, will, subs...)
	if err != nil {
		c.Close(context.Background(), 0)
		t.Fatalf("connect %s as %q: %v", id, user, err)
	}
	return c
}

// dial starts a client and waits up to 5 s for its connection; it returns
// the client, which the caller closes, and the wait's error.
func dial(t *testing.T, b *Broker, user, pass, id string, will *mqtt.Message, subs ...mqtt.Subscription) (*mqtt.Client, error) {
	t.Helper()
	c, err := mqtt.New(mqtt.Config{URL: b.URL(), ClientID: id, Username: user, Password: pass, Will: will, Subscriptions: subs, Log: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	c.Start()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return c, c.WaitConnected(ctx)
}

func wait(tok mqtt.Token) error {
	select {
	case <-tok.Done():
		return tok.Error()
	case <-time.After(5 * time.Second):
		return errors.New("no PUBACK within 5 s")
	}
}

// eventually polls cond until it holds or 5 s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(end) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestDeviceACL: with users, only the fleet commands the device, only the
// device publishes its topics or takes its client id, and the device reads
// only its own topics (the rules the Mosquitto ACL of the fleet tests sets).
func TestDeviceACL(t *testing.T) {
	const base = "anytime/v1/lab/drone-7/"
	var mu sync.Mutex
	var accepted []string
	b, err := Start(Config{
		Listen: "127.0.0.1:0", Log: quiet(),
		Users:  map[string]string{"drone-7": "d-secret", "ops": "o-secret"},
		Device: &Device{User: "drone-7", ClientID: "drone-7", Base: base},
		Tap: func(topic string, _ []byte, _ bool) {
			mu.Lock()
			accepted = append(accepted, topic)
			mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	// wasAccepted reports whether topic was accepted since the from'th
	// accepted publish.
	wasAccepted := func(from int, topic string) bool {
		mu.Lock()
		defer mu.Unlock()
		for _, a := range accepted[from:] {
			if a == topic {
				return true
			}
		}
		return false
	}
	nAccepted := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(accepted)
	}
	pass := map[string]string{"drone-7": "d-secret", "ops": "o-secret"}
	var received []string
	var rmu sync.Mutex
	device := connect(t, b, "drone-7", "d-secret", "drone-7", &mqtt.Message{Topic: base + "status", QoS: 1, Retained: true, Payload: []byte(`{}`)},
		mqtt.Subscription{Filter: "anytime/#", QoS: 1, Handler: func(topic string, _ []byte) {
			rmu.Lock()
			received = append(received, "all:"+topic)
			rmu.Unlock()
		}},
		mqtt.Subscription{Filter: base + "cmd/+", QoS: 1, Handler: func(topic string, _ []byte) {
			rmu.Lock()
			received = append(received, topic)
			rmu.Unlock()
		}})
	defer device.Close(context.Background(), 0)
	deviceEpoch, _ := device.Epoch()

	tests := []struct {
		user, topic string
		ok          bool
	}{
		{"ops", base + "cmd/set-deadline", true},
		{"drone-7", base + "cmd/set-deadline", false},
		{"ops", base + "result", false},
		{"ops", base + "status", false},
		{"drone-7", base + "result", true},
		{"drone-7", base + "event/thermal-throttle", true},
		{"drone-7", "anytime/v1/lab/drone-8/result", false},
		{"ops", "anytime/v1/lab/drone-8/cmd/snapshot", true},
	}
	for i, tc := range tests {
		c := connect(t, b, tc.user, pass[tc.user], fmt.Sprintf("%s-%d", tc.user, i), nil)
		e0, _ := c.Epoch()
		from := nAccepted()
		tok := c.Publish(mqtt.Message{Topic: tc.topic, QoS: 1, Payload: []byte(`{}`)})
		if tc.ok {
			// The tap, not the token (which paho may complete early on
			// resuming the session), says what the broker accepted.
			if err := wait(tok); err != nil {
				t.Errorf("%s publishing %s: %v; want accepted", tc.user, tc.topic, err)
			}
			eventually(t, tc.user+" publishing "+tc.topic+" accepted", func() bool { return wasAccepted(from, tc.topic) })
		} else {
			// A refused QoS 1 publish over MQTT 3.1.1 ends the connection.
			eventually(t, tc.user+" disconnected after publishing "+tc.topic, func() bool { e, _ := c.Epoch(); return e != e0 })
			if wasAccepted(from, tc.topic) {
				t.Errorf("%s publishing %s: accepted, want refused", tc.user, tc.topic)
			}
		}
		c.Close(context.Background(), 0)
	}

	// The device got its commands and nothing else: its "anytime/#"
	// subscription was refused. A last command, delivered after anything
	// published before it, ends the check.
	ops := connect(t, b, "ops", "o-secret", "ops", nil)
	if err := wait(ops.Publish(mqtt.Message{Topic: base + "cmd/last", QoS: 1, Payload: []byte(`{}`)})); err != nil {
		t.Fatal(err)
	}
	ops.Close(context.Background(), 0)
	eventually(t, "the device to receive cmd/last", func() bool {
		rmu.Lock()
		defer rmu.Unlock()
		return len(received) > 0 && strings.HasSuffix(received[len(received)-1], base+"cmd/last")
	})
	rmu.Lock()
	for _, r := range received {
		if !strings.HasPrefix(strings.TrimPrefix(r, "all:"), base+"cmd/") {
			t.Errorf("device received %s, outside its commands", r)
		}
	}
	rmu.Unlock()

	// Nobody else takes the device's client id (which would end the
	// device's session), nor sets a will on its topics.
	for _, tc := range []struct {
		user, id string
		will     *mqtt.Message
	}{
		{"ops", "drone-7", nil},
		{"ops", "ops-will", &mqtt.Message{Topic: base + "status", QoS: 1, Payload: []byte(`{"online":false}`)}},
	} {
		c, err := dial(t, b, tc.user, pass[tc.user], tc.id, tc.will)
		c.Close(context.Background(), 0)
		if !errors.Is(err, mqtt.ErrRefused) {
			t.Errorf("%s connecting as %s with will %v: %v, want refused", tc.user, tc.id, tc.will != nil, err)
		}
	}
	if e, up := device.Epoch(); e != deviceEpoch || !up {
		t.Errorf("device connection changed (epoch %d → %d, up %v)", deviceEpoch, e, up)
	}
}

func TestDeviceMustBeAUser(t *testing.T) {
	_, err := Start(Config{Listen: "127.0.0.1:0", Log: quiet(), Users: map[string]string{"ops": "x"},
		Device: &Device{User: "drone-7", ClientID: "drone-7", Base: "anytime/v1/lab/drone-7/"}})
	if err == nil || !strings.Contains(err.Error(), `"drone-7" is not one of`) {
		t.Fatalf("Start = %v, want an error naming the missing device user", err)
	}
}

func TestParseUsers(t *testing.T) {
	tests := []struct {
		in, want, err string
	}{
		{"ops:s3cret\n# comment\n\nviewer:a:b\r\n", "map[ops:s3cret viewer:a:b]", ""},
		{"", "map[]", ""},
		{"ops\n", "", "line 1: want user:password"},
		{"ops:x\nops:y\n", "", `line 2: user "ops" appears twice`},
		{"ops:\n", "", `line 1: user "ops" has an empty password`},
		{"bad user:pw\n", "", `line 1: user name "bad user"`},
	}
	for _, tc := range tests {
		got, err := ParseUsers([]byte(tc.in))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseUsers(%q) err = %v, want %q", tc.in, err, tc.err)
			}
			if err != nil && strings.Contains(err.Error(), "pw") {
				t.Errorf("ParseUsers(%q) err = %v names the password", tc.in, err)
			}
			continue
		}
		if err != nil || fmt.Sprint(got) != tc.want {
			t.Errorf("ParseUsers(%q) = %v, %v; want %s", tc.in, got, err, tc.want)
		}
	}
}
