package telemetry

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"
)

// commandTimeout bounds one Controller call.
const commandTimeout = 5 * time.Second

// commandPath is the one way a command is handled, whether it came over
// MQTT (cmd/{name}) or from the live view: parse and validate
// (ParseCommand), answer a repeated cmd_id with its first outcome, apply
// (Controller), log, count, acknowledge on cmd-ack and, when limits
// changed, republish config/reported. Commands are handled one at a time.
type commandPath struct {
	mu     sync.Mutex
	ctrl   Controller // nil: every command is rejected
	seen   *seenCommands
	log    *slog.Logger
	m      *metrics
	now    func() time.Time
	ack    func(*CmdAck)       // publishes on cmd-ack
	report func(limits Limits) // publishes config/reported
}

// handle runs one command named name (the last level of its topic) and
// returns its acknowledgement, which it has also published.
func (c *commandPath) handle(ctx context.Context, name string, payload []byte) CmdAck {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	cmd, err := ParseCommand(name, payload, now)
	ack := CmdAck{CmdID: cmd.CmdID, Name: name}
	if prev, ok := c.seen.duplicate(cmd, err); ok {
		prev.Envelope, prev.Duplicate = Envelope{}, true
		c.m.commands.WithLabelValues(name, "duplicate").Inc()
		c.log.Info("command", "name", name, "cmd_id", cmd.CmdID, "status", prev.Status, "duplicate", true)
		c.ack(&prev)
		return prev
	}
	if err == nil {
		err = c.seen.admit(now)
	}
	// Only a valid command uses up its cmd_id.
	valid := err == nil
	var changed *Limits
	switch {
	case errors.Is(err, ErrExpired):
		ack.Status, ack.Error = AckExpired, err.Error()
	case err != nil:
		ack.Status, ack.Error = AckRejected, err.Error()
	case c.ctrl == nil:
		ack.Status, ack.Error = AckRejected, "this runtime accepts no commands"
	default:
		actx, cancel := context.WithTimeout(ctx, commandTimeout)
		var lim Limits
		if cmd.Change.Snapshot {
			err = c.ctrl.Snapshot(actx)
			lim = c.ctrl.Limits()
		} else if lim, err = c.ctrl.Apply(actx, cmd.Change); err == nil {
			changed = &lim
		}
		cancel()
		if err != nil {
			ack.Status, ack.Error = AckRejected, err.Error()
		} else {
			ack.Status, ack.Limits = AckAccepted, &lim
		}
	}
	c.log.Info("command", "name", name, "cmd_id", cmd.CmdID, "status", ack.Status, "error", ack.Error)
	c.m.commands.WithLabelValues(name, ack.Status).Inc()
	if valid {
		c.seen.put(cmd, ack)
	}
	c.ack(&ack)
	if changed != nil {
		c.report(*changed)
	}
	return ack
}
