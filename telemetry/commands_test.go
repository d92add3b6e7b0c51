package telemetry

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

var cmdNow = time.Date(2026, 11, 27, 3, 0, 0, 0, time.UTC)

// cmdJSON builds a command payload; args is raw JSON ("" leaves it out).
func cmdJSON(name, id string, issued, expires time.Time, args string) []byte {
	s := fmt.Sprintf(`{"v":1,"cmd_id":%q,"name":%q,"issued_at":%q,"expires_at":%q`, id, name,
		issued.Format(time.RFC3339Nano), expires.Format(time.RFC3339Nano))
	if args != "" {
		s += `,"args":` + args
	}
	return []byte(s + "}")
}

func ptr[T any](v T) *T { return &v }

func TestParseCommand(t *testing.T) {
	iss, exp := cmdNow.Add(-time.Second), cmdNow.Add(time.Minute)
	ok := func(name, args string) []byte { return cmdJSON(name, "c-1", iss, exp, args) }
	tests := []struct {
		name    string
		topic   string
		payload []byte
		want    Change
		err     string // substring; "" means valid
		expired bool
	}{
		{"budget energy", CmdSetBudget, ok(CmdSetBudget, `{"energy_mj":250}`), Change{EnergyBudgetMJ: ptr(250.0)}, "", false},
		{"budget power", CmdSetBudget, ok(CmdSetBudget, `{"power_w":15}`), Change{PowerCapW: ptr(15.0)}, "", false},
		{"budget both zero", CmdSetBudget, ok(CmdSetBudget, `{"energy_mj":0,"power_w":0}`), Change{EnergyBudgetMJ: ptr(0.0), PowerCapW: ptr(0.0)}, "", false},
		{"budget empty", CmdSetBudget, ok(CmdSetBudget, `{}`), Change{}, "want energy_mj and/or power_w", false},
		{"budget negative", CmdSetBudget, ok(CmdSetBudget, `{"energy_mj":-1}`), Change{}, "args.energy_mj = -1", false},
		{"budget huge", CmdSetBudget, ok(CmdSetBudget, `{"power_w":1e9}`), Change{}, "args.power_w", false},
		{"budget string", CmdSetBudget, ok(CmdSetBudget, `{"energy_mj":"250"}`), Change{}, "cannot unmarshal string", false},
		{"threshold", CmdSetThreshold, ok(CmdSetThreshold, `{"threshold":0.9}`), Change{Threshold: ptr(0.9)}, "", false},
		{"threshold one", CmdSetThreshold, ok(CmdSetThreshold, `{"threshold":1}`), Change{Threshold: ptr(1.0)}, "", false},
		{"threshold zero", CmdSetThreshold, ok(CmdSetThreshold, `{"threshold":0}`), Change{}, "want a number in (0, 1]", false},
		{"threshold above one", CmdSetThreshold, ok(CmdSetThreshold, `{"threshold":1.5}`), Change{}, "args.threshold = 1.5", false},
		{"threshold missing", CmdSetThreshold, ok(CmdSetThreshold, ``), Change{}, "want threshold", false},
		{"max exit", CmdSetMaxExit, ok(CmdSetMaxExit, `{"exit":2}`), Change{MaxExit: ptr(2)}, "", false},
		{"max exit fractional", CmdSetMaxExit, ok(CmdSetMaxExit, `{"exit":2.5}`), Change{}, "cannot unmarshal number 2.5", false},
		{"max exit too big", CmdSetMaxExit, ok(CmdSetMaxExit, `{"exit":65}`), Change{}, "args.exit = 65", false},
		{"max exit negative", CmdSetMaxExit, ok(CmdSetMaxExit, `{"exit":-1}`), Change{}, "args.exit = -1", false},
		{"deadline", CmdSetDeadline, ok(CmdSetDeadline, `{"ms":25}`), Change{DeadlineMS: ptr(25.0)}, "", false},
		{"deadline off", CmdSetDeadline, ok(CmdSetDeadline, `{"ms":0}`), Change{DeadlineMS: ptr(0.0)}, "", false},
		{"deadline tiny", CmdSetDeadline, ok(CmdSetDeadline, `{"ms":0.5}`), Change{}, "want 0 or at least 1", false},
		{"deadline too long", CmdSetDeadline, ok(CmdSetDeadline, `{"ms":60001}`), Change{}, "args.ms = 60001", false},
		{"snapshot", CmdSnapshot, ok(CmdSnapshot, ``), Change{Snapshot: true}, "", false},
		{"snapshot with args", CmdSnapshot, ok(CmdSnapshot, `{"path":"/etc/passwd"}`), Change{}, `unknown field "path"`, false},
		{"unknown arg", CmdSetDeadline, ok(CmdSetDeadline, `{"ms":25,"exec":"sh"}`), Change{}, `unknown field "exec"`, false},
		{"unknown command", "reboot", ok("reboot", `{}`), Change{}, `unknown command "reboot"`, false},
		{"name differs from topic", CmdSetDeadline, ok(CmdSetThreshold, `{"threshold":0.5}`), Change{}, `field name must be "set-deadline"`, false},
		{"unknown top-level field", CmdSnapshot, []byte(`{"v":1,"cmd_id":"a","name":"snapshot","issued_at":"2026-11-27T02:59:00Z","expires_at":"2026-11-27T03:01:00Z","program":"x"}`), Change{}, `unknown field "program"`, false},
		{"wrong version", CmdSnapshot, []byte(`{"v":2,"cmd_id":"a","name":"snapshot","issued_at":"2026-11-27T02:59:00Z","expires_at":"2026-11-27T03:01:00Z"}`), Change{}, "field v must be 1", false},
		{"bad cmd_id", CmdSnapshot, cmdJSON(CmdSnapshot, "a b", iss, exp, ""), Change{}, "field cmd_id", false},
		{"long cmd_id", CmdSnapshot, cmdJSON(CmdSnapshot, strings.Repeat("a", 65), iss, exp, ""), Change{}, "field cmd_id", false},
		{"no expiry", CmdSnapshot, []byte(`{"v":1,"cmd_id":"a","name":"snapshot","issued_at":"2026-11-27T02:59:00Z"}`), Change{}, "issued_at and expires_at are required", false},
		{"bad time", CmdSnapshot, []byte(`{"v":1,"cmd_id":"a","name":"snapshot","issued_at":"yesterday","expires_at":"2026-11-27T03:01:00Z"}`), Change{}, "issued_at: want RFC 3339", false},
		{"expired", CmdSetDeadline, cmdJSON(CmdSetDeadline, "a", cmdNow.Add(-time.Hour), cmdNow.Add(-time.Minute), `{"ms":25}`), Change{}, "command expired", true},
		{"expires now", CmdSetDeadline, cmdJSON(CmdSetDeadline, "a", cmdNow.Add(-time.Hour), cmdNow, `{"ms":25}`), Change{}, "command expired", true},
		{"expires before issued", CmdSnapshot, cmdJSON(CmdSnapshot, "a", exp, iss, ""), Change{}, "expires_at must be after issued_at", false},
		{"issued in the future", CmdSnapshot, cmdJSON(CmdSnapshot, "a", cmdNow.Add(time.Hour), cmdNow.Add(2*time.Hour), ""), Change{}, "in the future", false},
		{"lifetime too long", CmdSnapshot, cmdJSON(CmdSnapshot, "a", iss, iss.Add(25*time.Hour), ""), Change{}, "lifetime over", false},
		{"not json", CmdSnapshot, []byte(`set deadline 25`), Change{}, "invalid character", false},
		{"trailing data", CmdSnapshot, append(ok(CmdSnapshot, ""), []byte(` {}`)...), Change{}, "trailing data", false},
		{"too large", CmdSnapshot, []byte(`{"v":1,"pad":"` + strings.Repeat("x", 5000) + `"}`), Change{}, "over the 4096-byte limit", false},
		{"array", CmdSnapshot, []byte(`[1,2]`), Change{}, "cannot unmarshal array", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseCommand(tc.topic, tc.payload, cmdNow)
			if tc.err == "" {
				if err != nil {
					t.Fatalf("ParseCommand: %v", err)
				}
				g, _ := json.Marshal(changeView(c.Change))
				w, _ := json.Marshal(changeView(tc.want))
				if string(g) != string(w) {
					t.Fatalf("change = %s, want %s", g, w)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.err)
			}
			if got := errors.Is(err, ErrExpired); got != tc.expired {
				t.Fatalf("errors.Is(err, ErrExpired) = %v, want %v", got, tc.expired)
			}
		})
	}
}

func changeView(c Change) map[string]any {
	return map[string]any{"e": c.EnergyBudgetMJ, "p": c.PowerCapW, "t": c.Threshold, "x": c.MaxExit, "d": c.DeadlineMS, "s": c.Snapshot}
}

func FuzzParseCommand(f *testing.F) {
	iss, exp := cmdNow.Add(-time.Second), cmdNow.Add(time.Minute)
	for _, name := range []string{CmdSetBudget, CmdSetThreshold, CmdSetMaxExit, CmdSetDeadline, CmdSnapshot} {
		f.Add(name, cmdJSON(name, "seed", iss, exp, `{"energy_mj":1,"threshold":0.5,"exit":2,"ms":25}`))
	}
	f.Add(CmdSetMaxExit, []byte(`{"v":1,"cmd_id":"x","name":"set-max-exit","issued_at":"2026-11-27T02:59:00Z","expires_at":"2026-11-27T03:01:00Z","args":{"exit":3}}`))
	f.Add("x", []byte(`{"args":null}`))
	f.Fuzz(func(t *testing.T, name string, payload []byte) {
		c, err := ParseCommand(name, payload, cmdNow)
		if err != nil {
			return
		}
		// Anything accepted is within range and names a known command.
		ch := c.Change
		n := 0
		for _, set := range []bool{ch.EnergyBudgetMJ != nil || ch.PowerCapW != nil, ch.Threshold != nil, ch.MaxExit != nil, ch.DeadlineMS != nil, ch.Snapshot} {
			if set {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("accepted command %q changes %d kinds of limit", name, n)
		}
		if (ch.Threshold != nil && (*ch.Threshold <= 0 || *ch.Threshold > 1)) ||
			(ch.MaxExit != nil && (*ch.MaxExit < 0 || *ch.MaxExit > maxExitIndex)) ||
			(ch.DeadlineMS != nil && (*ch.DeadlineMS < 0 || *ch.DeadlineMS > maxDeadlineMS)) ||
			(ch.EnergyBudgetMJ != nil && (*ch.EnergyBudgetMJ < 0 || *ch.EnergyBudgetMJ > maxEnergyMJ)) ||
			(ch.PowerCapW != nil && (*ch.PowerCapW < 0 || *ch.PowerCapW > maxPowerW)) {
			t.Fatalf("accepted out-of-range change %+v", changeView(ch))
		}
		if !cmdNow.Before(c.ExpiresAt) || c.CmdID == "" || c.Name != name {
			t.Fatalf("accepted command with bad envelope: %+v", c)
		}
	})
}

// TestCommandsEndToEnd sends commands through the broker and checks the
// controller, cmd-ack and retained config/reported.
func TestCommandsEndToEnd(t *testing.T) {
	log, _ := testLogger()
	b, col, ctrl, p := commandRig(t, log)
	defer closePublisher(t, p)
	// Let the subscription settle.
	waitFor(t, 5*time.Second, "config/reported on connect", func() bool { return len(col.results(t, "/config/reported")) > 0 })
	now := time.Now()
	send := func(name, id, args string, issued, expires time.Time) {
		t.Helper()
		if err := b.Publish(p.Topics().Topic("cmd/"+name), cmdJSON(name, id, issued, expires, args), false); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name, cmd, id, args string
		issued, expires     time.Time
		status, errPart     string
		dup                 bool
	}{
		{"deadline accepted", CmdSetDeadline, "c1", `{"ms":25}`, now, now.Add(time.Minute), AckAccepted, "", false},
		{"repeat not applied", CmdSetDeadline, "c1", `{"ms":25}`, now, now.Add(time.Minute), AckAccepted, "", true},
		{"beyond bundle exits", CmdSetMaxExit, "c2", `{"exit":9}`, now, now.Add(time.Minute), AckRejected, "the bundle has 4 exits", false},
		{"out of range", CmdSetThreshold, "c3", `{"threshold":2}`, now, now.Add(time.Minute), AckRejected, "args.threshold", false},
		{"expired", CmdSetThreshold, "c4", `{"threshold":0.5}`, now.Add(-time.Hour), now.Add(-time.Minute), AckExpired, "expired", false},
		{"max exit accepted", CmdSetMaxExit, "c5", `{"exit":3}`, now, now.Add(time.Minute), AckAccepted, "", false},
		{"snapshot", CmdSnapshot, "c6", ``, now, now.Add(time.Minute), AckAccepted, "", false},
		{"malformed", CmdSetDeadline, "c7", `{"ms":"soon"}`, now, now.Add(time.Minute), AckRejected, "args", false},
		{"valid after malformed with its id", CmdSetDeadline, "c7", `{"ms":30}`, now, now.Add(time.Minute), AckAccepted, "", false},
		{"late repeat of an applied command", CmdSetDeadline, "c1", `{"ms":25}`, now.Add(-time.Hour), now.Add(-time.Minute), AckAccepted, "", true},
	}
	type ack struct {
		CmdID     string  `json:"cmd_id"`
		Status    string  `json:"status"`
		Error     string  `json:"error"`
		Duplicate bool    `json:"duplicate"`
		Limits    *Limits `json:"limits"`
	}
	for i, tc := range tests {
		send(tc.cmd, tc.id, tc.args, tc.issued, tc.expires)
		var got ack
		waitFor(t, 5*time.Second, "cmd-ack for "+tc.name, func() bool {
			acks := decoded[ack](t, col, "/cmd-ack")
			if len(acks) > i {
				got = acks[i]
				return true
			}
			return false
		})
		if got.CmdID != tc.id || got.Status != tc.status || !strings.Contains(got.Error, tc.errPart) || got.Duplicate != tc.dup {
			t.Errorf("%s: ack = %+v, want cmd_id %s status %s error ~%q duplicate %v", tc.name, got, tc.id, tc.status, tc.errPart, tc.dup)
		}
	}
	ctrl.mu.Lock()
	applied, snaps, lim := ctrl.applied, ctrl.snapshots, ctrl.lim
	ctrl.mu.Unlock()
	if applied != 3 || snaps != 1 {
		t.Errorf("controller applied %d changes and %d snapshots, want 3 and 1", applied, snaps)
	}
	want := Limits{Threshold: 0.8, DeadlineMS: 30, MaxExit: 3}
	if lim != want {
		t.Errorf("limits = %+v, want %+v", lim, want)
	}
	// config/reported is retained and carries the latest limits.
	var last ConfigReported
	waitFor(t, 5*time.Second, "config/reported after the last change", func() bool {
		if all := decoded[ConfigReported](t, col, "/config/reported"); len(all) > 0 {
			last = all[len(all)-1]
		}
		return last.Limits == want
	})
	sub := &collector{}
	sub.attach(t, b, p.Topics().Topic("config/reported"))
	retained := sub.snapshot()
	if len(retained) != 1 || !retained[0].retained {
		t.Fatalf("a new subscriber got %d config/reported messages (retained: %v), want the retained one", len(retained), retained)
	}
}

// validCmd is a parsed command with the given id and expiry.
func validCmd(id string, expires time.Time) Command {
	return Command{CmdID: id, Name: CmdSetDeadline, IssuedAt: expires.Add(-time.Hour), ExpiresAt: expires}
}

func TestSeenCommandsHoldForTheLifetime(t *testing.T) {
	s := newSeenCommands(maxRememberedCommands)
	now := cmdNow
	// Many more commands than the old window of 1,024 ids, all within the
	// first one's lifetime.
	for i := 0; i < 5000; i++ {
		c := validCmd(fmt.Sprintf("c%d", i), now.Add(time.Hour))
		if _, dup := s.duplicate(c, nil); dup {
			t.Fatalf("command %d reported as a duplicate", i)
		}
		if err := s.admit(now); err != nil {
			t.Fatalf("admit command %d: %v", i, err)
		}
		s.put(c, CmdAck{CmdID: c.CmdID, Status: AckAccepted})
		now = now.Add(100 * time.Millisecond)
	}
	first := validCmd("c0", cmdNow.Add(time.Hour))
	if a, dup := s.duplicate(first, nil); !dup || a.CmdID != "c0" || a.Status != AckAccepted {
		t.Fatalf("c0 after 5000 commands: duplicate = %v, ack %+v; want its first outcome", dup, a)
	}
	// A late redelivery (now expired) is still a duplicate.
	if _, dup := s.duplicate(first, fmt.Errorf("%w at …", ErrExpired)); !dup {
		t.Fatal("expired redelivery of c0 not reported as a duplicate")
	}
	// A malformed payload neither matches nor would be remembered.
	if _, dup := s.duplicate(first, errors.New("command: field v must be 1")); dup {
		t.Fatal("a malformed payload was answered as a duplicate")
	}
}

func TestSeenCommandsBoundAndExpiry(t *testing.T) {
	s := newSeenCommands(3)
	now := cmdNow
	for i, life := range []time.Duration{time.Minute, time.Hour, 2 * time.Hour} {
		if err := s.admit(now); err != nil {
			t.Fatalf("admit %d: %v", i, err)
		}
		s.put(validCmd(fmt.Sprintf("c%d", i), now.Add(life)), CmdAck{Status: AckAccepted})
	}
	// Full of unexpired commands: a new one is refused, nothing forgotten.
	err := s.admit(now.Add(time.Minute))
	if err == nil || !strings.Contains(err.Error(), "3 unexpired commands") {
		t.Fatalf("admit when full = %v, want a refusal naming the limit", err)
	}
	for i := 0; i < 3; i++ {
		if _, dup := s.duplicate(validCmd(fmt.Sprintf("c%d", i), now), nil); !dup {
			t.Fatalf("c%d forgotten while full", i)
		}
	}
	// Once c0 is past expires_at plus the clock-skew margin, it makes room.
	later := now.Add(time.Minute + maxClockSkew + time.Second)
	if err := s.admit(later); err != nil {
		t.Fatalf("admit after c0 expired: %v", err)
	}
	if _, dup := s.duplicate(validCmd("c0", now), nil); dup {
		t.Fatal("c0 still remembered after it expired and room was needed")
	}
	if _, dup := s.duplicate(validCmd("c1", now), nil); !dup {
		t.Fatal("c1 forgotten before its expiry")
	}
}
