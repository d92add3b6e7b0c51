package telemetry

import (
	"bytes"
	"container/heap"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"time"
)

// Command names, the last topic level of cmd/{name}.
const (
	CmdSetBudget    = "set-budget"
	CmdSetThreshold = "set-threshold"
	CmdSetMaxExit   = "set-max-exit"
	CmdSetDeadline  = "set-deadline"
	CmdSnapshot     = "snapshot"
)

// Command limits.
const (
	maxCommandBytes = 4096
	maxCommandLife  = 24 * time.Hour
	maxClockSkew    = 5 * time.Minute
	maxEnergyMJ     = 1e6
	maxPowerW       = 1000
	maxExitIndex    = 64
	maxDeadlineMS   = 60_000
)

// Command is a validated command.
type Command struct {
	V         int             `json:"v"`
	CmdID     string          `json:"cmd_id"`
	Name      string          `json:"name"`
	IssuedAt  time.Time       `json:"issued_at"`
	ExpiresAt time.Time       `json:"expires_at"`
	Args      json.RawMessage `json:"args"`
	// Change is what the command asks for, parsed from Args.
	Change Change `json:"-"`
}

// Change is a validated change of limits; nil fields stay as they are.
type Change struct {
	EnergyBudgetMJ *float64
	PowerCapW      *float64
	Threshold      *float64
	MaxExit        *int
	DeadlineMS     *float64
	// Snapshot asks for a snapshot instead of a change of limits.
	Snapshot bool
}

// Controller is implemented by the runtime. The Publisher calls it one
// command at a time (from its MQTT command loop or from Publisher.Command,
// which the live view uses), never from the frame loop.
type Controller interface {
	// Apply applies every field of c, or none of them when it returns an
	// error (e.g. MaxExit beyond the bundle's exits), and returns the
	// limits in force afterwards.
	Apply(ctx context.Context, c Change) (Limits, error)
	// Limits returns the limits in force.
	Limits() Limits
	// Snapshot asks the runtime to publish the next finished frame in
	// full: its result, its label map durably on result/labels, and
	// event/snapshot naming it (see sink.Results).
	Snapshot(ctx context.Context) error
}

// ErrExpired is wrapped by ParseCommand's error for a command past its
// expires_at; other errors mean the command is rejected.
var ErrExpired = errors.New("command expired")

var cmdIDPattern = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,64}$`)

// ParseCommand parses and validates a command received on cmd/{name} at
// time now. The payload is
//
//	{"v":1,"cmd_id":"…","name":"set-deadline","issued_at":"RFC 3339",
//	 "expires_at":"RFC 3339","args":{"ms":25}}
//
// Unknown fields, wrong types, out-of-range values, a name that differs
// from the topic's, and a command not yet issued or already expired are
// errors; the returned Command carries whatever was parsed (CmdID when
// readable) so that the rejection can be acknowledged.
func ParseCommand(name string, payload []byte, now time.Time) (Command, error) {
	var c Command
	if len(payload) > maxCommandBytes {
		return c, fmt.Errorf("command of %d bytes is over the %d-byte limit", len(payload), maxCommandBytes)
	}
	// Best effort: learn cmd_id even from a payload that fails below.
	var probe struct {
		CmdID string `json:"cmd_id"`
	}
	if json.Unmarshal(payload, &probe) == nil && cmdIDPattern.MatchString(probe.CmdID) {
		c.CmdID = probe.CmdID
	}
	c.Name = name
	var raw struct {
		V         *int            `json:"v"`
		CmdID     *string         `json:"cmd_id"`
		Name      *string         `json:"name"`
		IssuedAt  *string         `json:"issued_at"`
		ExpiresAt *string         `json:"expires_at"`
		Args      json.RawMessage `json:"args"`
	}
	if err := strictDecode(payload, &raw); err != nil {
		return c, fmt.Errorf("command: %w", err)
	}
	switch {
	case raw.V == nil || *raw.V != SchemaVersion:
		return c, fmt.Errorf("command: field v must be %d", SchemaVersion)
	case raw.CmdID == nil || !cmdIDPattern.MatchString(*raw.CmdID):
		return c, errors.New("command: field cmd_id must match [A-Za-z0-9._:-]{1,64}")
	case raw.Name == nil || *raw.Name != name:
		return c, fmt.Errorf("command: field name must be %q (the topic's)", name)
	case raw.IssuedAt == nil || raw.ExpiresAt == nil:
		return c, errors.New("command: fields issued_at and expires_at are required")
	}
	c.V, c.CmdID, c.Args = *raw.V, *raw.CmdID, raw.Args
	var err error
	if c.IssuedAt, err = time.Parse(time.RFC3339Nano, *raw.IssuedAt); err != nil {
		return c, fmt.Errorf("command: field issued_at: want RFC 3339: %w", err)
	}
	if c.ExpiresAt, err = time.Parse(time.RFC3339Nano, *raw.ExpiresAt); err != nil {
		return c, fmt.Errorf("command: field expires_at: want RFC 3339: %w", err)
	}
	switch {
	case !c.ExpiresAt.After(c.IssuedAt):
		return c, errors.New("command: expires_at must be after issued_at")
	case c.ExpiresAt.Sub(c.IssuedAt) > maxCommandLife:
		return c, fmt.Errorf("command: lifetime over %v", maxCommandLife)
	case c.IssuedAt.After(now.Add(maxClockSkew)):
		return c, fmt.Errorf("command: issued_at %s is in the future", c.IssuedAt.Format(time.RFC3339))
	}
	if c.Change, err = parseArgs(name, c.Args); err != nil {
		return c, fmt.Errorf("command %s: %w", name, err)
	}
	if !now.Before(c.ExpiresAt) {
		return c, fmt.Errorf("%w at %s", ErrExpired, c.ExpiresAt.Format(time.RFC3339))
	}
	return c, nil
}

// strictDecode decodes exactly one JSON value with no unknown fields.
func strictDecode(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("trailing data after the JSON object")
	}
	return nil
}

func parseArgs(name string, args json.RawMessage) (Change, error) {
	var ch Change
	if len(args) == 0 || string(args) == "null" {
		args = json.RawMessage("{}")
	}
	inRange := func(field string, v *float64, lo, hi float64, loOpen bool) error {
		if v == nil {
			return nil
		}
		if math.IsNaN(*v) || *v < lo || *v > hi || (loOpen && *v == lo) {
			op := "["
			if loOpen {
				op = "("
			}
			return fmt.Errorf("args.%s = %v, want a number in %s%v, %v]", field, *v, op, lo, hi)
		}
		return nil
	}
	switch name {
	case CmdSetBudget:
		var a struct {
			EnergyMJ *float64 `json:"energy_mj"`
			PowerW   *float64 `json:"power_w"`
		}
		if err := strictDecode(args, &a); err != nil {
			return ch, fmt.Errorf("args: %w", err)
		}
		if a.EnergyMJ == nil && a.PowerW == nil {
			return ch, errors.New("args: want energy_mj and/or power_w (0 removes the limit)")
		}
		if err := inRange("energy_mj", a.EnergyMJ, 0, maxEnergyMJ, false); err != nil {
			return ch, err
		}
		if err := inRange("power_w", a.PowerW, 0, maxPowerW, false); err != nil {
			return ch, err
		}
		ch.EnergyBudgetMJ, ch.PowerCapW = a.EnergyMJ, a.PowerW
	case CmdSetThreshold:
		var a struct {
			Threshold *float64 `json:"threshold"`
		}
		if err := strictDecode(args, &a); err != nil {
			return ch, fmt.Errorf("args: %w", err)
		}
		if a.Threshold == nil {
			return ch, errors.New("args: want threshold")
		}
		if err := inRange("threshold", a.Threshold, 0, 1, true); err != nil {
			return ch, err
		}
		ch.Threshold = a.Threshold
	case CmdSetMaxExit:
		var a struct {
			Exit *int `json:"exit"`
		}
		if err := strictDecode(args, &a); err != nil {
			return ch, fmt.Errorf("args: %w", err)
		}
		if a.Exit == nil {
			return ch, errors.New("args: want exit")
		}
		if *a.Exit < 0 || *a.Exit > maxExitIndex {
			return ch, fmt.Errorf("args.exit = %d, want 0 (last exit) to %d", *a.Exit, maxExitIndex)
		}
		ch.MaxExit = a.Exit
	case CmdSetDeadline:
		var a struct {
			MS *float64 `json:"ms"`
		}
		if err := strictDecode(args, &a); err != nil {
			return ch, fmt.Errorf("args: %w", err)
		}
		if a.MS == nil {
			return ch, errors.New("args: want ms (0 removes the deadline)")
		}
		if err := inRange("ms", a.MS, 0, maxDeadlineMS, false); err != nil {
			return ch, err
		}
		if *a.MS != 0 && *a.MS < 1 {
			return ch, fmt.Errorf("args.ms = %v, want 0 or at least 1", *a.MS)
		}
		ch.DeadlineMS = a.MS
	case CmdSnapshot:
		var a struct{}
		if err := strictDecode(args, &a); err != nil {
			return ch, fmt.Errorf("args: %w", err)
		}
		ch.Snapshot = true
	default:
		return ch, fmt.Errorf("unknown command %q", name)
	}
	return ch, nil
}

// maxRememberedCommands bounds the commands remembered for
// de-duplication. Each costs a few hundred bytes (its cmd_id, ack and
// expiry), so the table stays under a few MB; a fleet would need to send
// more than this many commands to one device within one command lifetime
// (at most maxCommandLife) to fill it.
const maxRememberedCommands = 8192

// seenCommands remembers the outcome of every valid command until its
// expires_at (plus maxClockSkew, for a clock stepped back) has passed, so
// that a redelivered command is never applied twice during its lifetime. A
// payload that failed validation is not remembered: its cmd_id stays
// usable by the valid command that follows. The table holds at most limit
// commands; when it is full of unexpired ones, a new valid command is
// rejected (admit) rather than forgetting one that could still be
// redelivered. Not safe for concurrent use (the command loop owns it).
type seenCommands struct {
	limit int
	acks  map[string]*seenCommand
	exp   expiryHeap
}

type seenCommand struct {
	id       string
	ack      CmdAck
	forgetAt time.Time
}

func newSeenCommands(limit int) *seenCommands {
	return &seenCommands{limit: limit, acks: map[string]*seenCommand{}}
}

// duplicate returns the first outcome of an earlier command with c's
// cmd_id when c, as parsed with parseErr, may be a redelivery of it: c is
// valid or only expired (a late redelivery of an applied command is
// answered as a duplicate, not as expired).
func (s *seenCommands) duplicate(c Command, parseErr error) (CmdAck, bool) {
	if c.CmdID == "" || (parseErr != nil && !errors.Is(parseErr, ErrExpired)) {
		return CmdAck{}, false
	}
	e, ok := s.acks[c.CmdID]
	if !ok {
		return CmdAck{}, false
	}
	return e.ack, true
}

// admit makes room for a valid command received at now, forgetting those
// that can no longer be valid; an error (the command must be rejected, not
// applied) when there is none.
func (s *seenCommands) admit(now time.Time) error {
	for len(s.exp) > 0 && now.After(s.exp[0].forgetAt) {
		delete(s.acks, heap.Pop(&s.exp).(*seenCommand).id)
	}
	if len(s.acks) >= s.limit {
		return fmt.Errorf("command: the device already remembers %d unexpired commands, its limit; retry when some have expired", s.limit)
	}
	return nil
}

// put remembers the outcome of the valid command c (admitted first).
func (s *seenCommands) put(c Command, a CmdAck) {
	if e, ok := s.acks[c.CmdID]; ok {
		e.ack = a
		return
	}
	e := &seenCommand{id: c.CmdID, ack: a, forgetAt: c.ExpiresAt.Add(maxClockSkew)}
	s.acks[c.CmdID] = e
	heap.Push(&s.exp, e)
}

// expiryHeap orders remembered commands by forgetAt, soonest first.
type expiryHeap []*seenCommand

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].forgetAt.Before(h[j].forgetAt) }
func (h expiryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *expiryHeap) Push(x any)        { *h = append(*h, x.(*seenCommand)) }
func (h *expiryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return e
}
