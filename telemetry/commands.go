package telemetry

import (
	"bytes"
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

// Controller is implemented by the runtime. The Publisher calls it from one
// goroutine, never from the frame loop.
type Controller interface {
	// Apply applies every field of c, or none of them when it returns an
	// error (e.g. MaxExit beyond the bundle's exits), and returns the
	// limits in force afterwards.
	Apply(ctx context.Context, c Change) (Limits, error)
	// Limits returns the limits in force.
	Limits() Limits
	// Snapshot asks the runtime to publish the next frame in full (its
	// result and its labels on result/labels).
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

// seenCommands remembers the outcome of the last n cmd_ids.
type seenCommands struct {
	n     int
	order []string
	acks  map[string]CmdAck
}

func newSeenCommands(n int) *seenCommands {
	return &seenCommands{n: n, acks: make(map[string]CmdAck, n)}
}

func (s *seenCommands) get(id string) (CmdAck, bool) {
	a, ok := s.acks[id]
	return a, ok
}

func (s *seenCommands) put(id string, a CmdAck) {
	if _, ok := s.acks[id]; !ok {
		s.order = append(s.order, id)
		if len(s.order) > s.n {
			delete(s.acks, s.order[0])
			s.order = s.order[1:]
		}
	}
	s.acks[id] = a
}
