package telemetry

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/anytime-edge/edge/internal/testkit"
)

// TestLocalCommandTakesTheMQTTPath: a command handed to Publisher.Command
// (the live view's controls) is validated, applied, logged, acknowledged
// on cmd-ack and followed by config/reported, exactly as one received on
// cmd/{name}; its cmd_id is shared with MQTT's, so the same id sent over
// MQTT afterwards is answered as a duplicate and not applied again.
func TestLocalCommandTakesTheMQTTPath(t *testing.T) {
	log, logs := testkit.Logger(slog.LevelInfo)
	b, col, ctrl, p := commandRig(t, log)
	defer closePublisher(t, p)
	now := time.Now()

	ack := p.Command(context.Background(), CmdSetDeadline, cmdJSON(CmdSetDeadline, "web-1", now, now.Add(time.Minute), `{"ms":40}`))
	if ack.Status != AckAccepted || ack.Limits == nil || ack.Limits.DeadlineMS != 40 || ack.Seq == 0 {
		t.Fatalf("ack = %+v, want accepted with deadline 40 ms and an envelope", ack)
	}
	bad := p.Command(context.Background(), CmdSetThreshold, cmdJSON(CmdSetThreshold, "web-2", now, now.Add(time.Minute), `{"threshold":7}`))
	if bad.Status != AckRejected || !strings.Contains(bad.Error, "args.threshold") {
		t.Fatalf("ack = %+v, want rejected naming args.threshold", bad)
	}
	if err := b.Publish(p.Topics().Topic("cmd/"+CmdSetDeadline), cmdJSON(CmdSetDeadline, "web-1", now, now.Add(time.Minute), `{"ms":40}`), false); err != nil {
		t.Fatal(err)
	}
	type wire struct {
		CmdID     string `json:"cmd_id"`
		Status    string `json:"status"`
		Duplicate bool   `json:"duplicate"`
	}
	var acks []wire
	waitFor(t, 5*time.Second, "three acks on cmd-ack", func() bool {
		acks = decoded[wire](t, col, "/cmd-ack")
		return len(acks) == 3
	})
	want := []wire{{"web-1", AckAccepted, false}, {"web-2", AckRejected, false}, {"web-1", AckAccepted, true}}
	for i := range want {
		if acks[i] != want[i] {
			t.Errorf("ack %d = %+v, want %+v", i, acks[i], want[i])
		}
	}
	ctrl.mu.Lock()
	applied := ctrl.applied
	ctrl.mu.Unlock()
	if applied != 1 {
		t.Errorf("controller applied %d changes, want 1", applied)
	}
	waitFor(t, 5*time.Second, "config/reported with the new deadline", func() bool {
		for _, c := range decoded[ConfigReported](t, col, "/config/reported") {
			if c.Limits.DeadlineMS == 40 {
				return true
			}
		}
		return false
	})
	for _, want := range []string{"cmd_id=web-1 status=accepted", "cmd_id=web-2 status=rejected"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logs.String())
		}
	}
}
