package telemetry

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/anytime-edge/edge/telemetry/mqtt"
)

// TestEmbeddedBrokerRoles: with the device's credentials and fleet users,
// the runtime works through its own embedded broker (results delivered,
// commands received), a fleet user's command is applied, and the device's
// credentials cannot command it.
func TestEmbeddedBrokerRoles(t *testing.T) {
	log, _ := testLogger()
	ctrl := &fakeController{exits: 4, lim: Limits{Threshold: 0.8}}
	b, p := embeddedPublisher(t, Config{Site: "lab", Device: "drone-7", SpoolDir: t.TempDir(), BrokerListen: "127.0.0.1:0",
		Username: "drone-7", Password: "d-secret", BrokerUsers: map[string]string{"ops": "o-secret"}}, ctrl, log)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var col collector
	col.attach(t, b, "anytime/#")
	if err := p.Publish(ctx, sampleResult(1)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the result through the embedded broker", func() bool { return len(col.results(t, "/result")) == 1 })

	// send publishes a set-deadline command with user's credentials and
	// waits until the broker took it (PUBACK) or refused it (over MQTT
	// 3.1.1 a refused QoS 1 publish ends the connection).
	send := func(user, pass, id string, ms int, refused bool) {
		t.Helper()
		c, err := mqtt.New(mqtt.Config{URL: b.URL(), ClientID: user + "-" + id, Username: user, Password: pass, Log: log})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(context.Background(), 0)
		c.Start()
		if err := c.WaitConnected(ctx); err != nil {
			t.Fatal(err)
		}
		e0, _ := c.Epoch()
		now := time.Now()
		tok := c.Publish(mqtt.Message{Topic: p.Topics().Topic("cmd/" + CmdSetDeadline), QoS: 1,
			Payload: cmdJSON(CmdSetDeadline, id, now, now.Add(time.Minute), fmt.Sprintf(`{"ms":%d}`, ms))})
		if refused {
			waitFor(t, 5*time.Second, user+"'s command refused", func() bool { e, _ := c.Epoch(); return e != e0 })
			return
		}
		select {
		case <-tok.Done():
			if err := tok.Error(); err != nil {
				t.Fatal(err)
			}
		case <-ctx.Done():
			t.Fatal("no PUBACK for the fleet's command")
		}
	}
	send("drone-7", "d-secret", "from-device", 7, true)
	send("ops", "o-secret", "from-fleet", 9, false)
	waitFor(t, 5*time.Second, "the fleet's command acknowledged", func() bool {
		for _, m := range col.snapshot() {
			if strings.HasSuffix(m.topic, "/cmd-ack") && strings.Contains(string(m.payload), "from-fleet") {
				return true
			}
		}
		return false
	})
	for _, m := range col.snapshot() {
		if strings.Contains(string(m.payload), "from-device") {
			t.Fatalf("a command published with the device's credentials reached the device: %s %s", m.topic, m.payload)
		}
	}
	ctrl.mu.Lock()
	defer ctrl.mu.Unlock()
	if ctrl.applied != 1 || ctrl.lim.DeadlineMS != 9 {
		t.Fatalf("applied %d changes, deadline %v ms; want only the fleet's (9 ms)", ctrl.applied, ctrl.lim.DeadlineMS)
	}
}
