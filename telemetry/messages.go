package telemetry

import (
	"time"

	"github.com/anytime-edge/edge/anytime"
	"github.com/anytime-edge/edge/power"
)

// SchemaVersion is the envelope's "v".
const SchemaVersion = 1

// Envelope starts every JSON message. Publish fills V, Device, Boot and Seq;
// the caller sets TS to the capture time (Publish uses the current time when
// it is zero).
type Envelope struct {
	V      int       `json:"v"`
	Device string    `json:"device"`
	Boot   string    `json:"boot"`
	Seq    uint64    `json:"seq"`
	TS     time.Time `json:"ts"`
}

// Message is one of the message types of this package.
type Message interface {
	envelope() *Envelope
	// route names the topic below the device root and how to send it.
	route() (suffix string, k kind)
}

// kind says how a message is delivered.
type kind int

const (
	spooled  kind = iota // QoS 1 through the disk spool
	retained             // QoS 1, retained, sent directly when connected
)

// Frame identifies the input frame of a result.
type Frame struct {
	ID     uint64 `json:"id"`
	Source string `json:"source"`
	Width  int    `json:"width"`
	Height int    `json:"height"`
}

// Bundle identifies the model bundle.
type Bundle struct {
	Name   string `json:"name"`
	SHA256 string `json:"sha256"`
}

// Exit is what one exit of a frame cost and achieved: the one record of
// an exit that every output carries (MQTT results, the live view, infer's
// JSON summaries). Build it with ExitOf. Exits are numbered from 1.
type Exit struct {
	Exit int `json:"exit"`
	// MS is the stage's own wall time in milliseconds (run, merge,
	// confidence and mask), not the time since the frame started.
	MS float64 `json:"ms"`
	// MJ is the stage's energy in millijoules and EnergySource where the
	// figure came from (empty when nothing measured or estimated it).
	MJ           float64      `json:"mj"`
	EnergySource power.Source `json:"energy_source,omitempty"`
	// Frozen is the fraction of output pixels this stage did not compute
	// because earlier exits had already frozen them: 0 for exit 1 and for
	// dense stages. It is the mask this stage was fed, not the one it
	// leaves for the next.
	Frozen float64 `json:"frozen"`
	// GMACs is the cumulative effective GMACs (2^30 multiply-accumulates)
	// of the frame up to and including this exit: exit k's figure is the
	// frame's compute had it halted there.
	GMACs float64 `json:"gmacs"`
	// Provider is the execution provider that ran the stage and Ran how
	// it ran ("dense", "masked", "sparse"; see anytime.Exit.Ran).
	Provider string `json:"provider"`
	Ran      string `json:"ran"`
}

// ExitOf is the record of an executor exit.
func ExitOf(e anytime.Exit) Exit {
	return Exit{
		Exit: e.Exit, MS: float64(e.Stage) / float64(time.Millisecond),
		MJ: e.EnergyJ * 1000, EnergySource: e.EnergySource,
		Frozen: e.Frozen, GMACs: e.GMACs, Provider: e.Provider, Ran: e.Ran,
	}
}

// Halt says where and why a frame stopped.
type Halt struct {
	Exit       int            `json:"exit"`
	Reason     anytime.Reason `json:"reason"`
	DeadlineMS float64        `json:"deadline_ms"`
}

// Energy is a frame's total energy and where the figure came from.
type Energy struct {
	MJ     float64      `json:"mj"`
	Source power.Source `json:"source"`
}

// Keypoint is one detected keypoint of a pose result.
type Keypoint struct {
	Instance int     `json:"instance"`
	Name     string  `json:"name"`
	X        float64 `json:"x"`
	Y        float64 `json:"y"`
	Score    float64 `json:"score"`
}

// HaltInProgress is the halt reason of a progressive result: the frame is
// still running.
const HaltInProgress anytime.Reason = "in-progress"

// Result is the per-frame summary, published on result.
type Result struct {
	Envelope
	// Progressive marks the result of an intermediate exit, published as
	// soon as it exists; its Halt is {exit k, HaltInProgress} and the
	// frame's final result follows with the same frame id.
	Progressive bool   `json:"progressive,omitempty"`
	Frame       Frame  `json:"frame"`
	Bundle      Bundle `json:"bundle"`
	Exits       []Exit `json:"exits"`
	Halt        Halt   `json:"halt"`
	Energy      Energy `json:"energy"`
	// Classes maps class names to the fraction of pixels (segmentation);
	// nil for pose bundles.
	Classes map[string]float64 `json:"classes"`
	// Keypoints is set for pose bundles; nil for segmentation.
	Keypoints []Keypoint `json:"keypoints"`
}

// Telemetry is the periodic health message, published on telemetry. The
// Publisher fills Spool and Link.
type Telemetry struct {
	Envelope
	PowerW      float64            `json:"power_w"`
	PowerSource power.Source       `json:"power_source"`
	EnergyMJ    float64            `json:"energy_mj"`
	TempsC      map[string]float64 `json:"temps_c"`
	TempSource  power.Source       `json:"temp_source"`
	Throttled   bool               `json:"throttled"`
	FPS         float64            `json:"fps"`
	QueueDepth  int                `json:"queue_depth"`
	FrameDrops  uint64             `json:"frame_drops"`
	Spool       SpoolState         `json:"spool"`
	Link        LinkState          `json:"link"`
}

// SpoolState describes the publisher's spool.
type SpoolState struct {
	Depth      int     `json:"depth"`
	Bytes      int64   `json:"bytes"`
	Dropped    uint64  `json:"dropped"`
	Corrupt    uint64  `json:"corrupt"`
	OldestAgeS float64 `json:"oldest_age_s"`
}

// LinkState describes the broker connection.
type LinkState struct {
	Connected  bool   `json:"connected"`
	Reconnects uint64 `json:"reconnects"`
}

// Event is something that happened, published on event/{Kind}. Kind
// matches [a-z0-9-]{1,64}, e.g. "thermal-throttle", "bundle-loaded".
type Event struct {
	Envelope
	Kind    string            `json:"kind"`
	Message string            `json:"message"`
	Data    map[string]string `json:"data,omitempty"`
}

// Status is the retained presence message on status; also the last will.
type Status struct {
	Envelope
	Online bool `json:"online"`
	// Reason is "lwt" or "shutdown" when offline, empty when online.
	Reason    string    `json:"reason,omitempty"`
	Since     time.Time `json:"since"`
	Software  string    `json:"software"`
	Bundle    *Bundle   `json:"bundle,omitempty"`
	Providers []string  `json:"providers,omitempty"`
}

// Ack statuses.
const (
	AckAccepted = "accepted"
	AckRejected = "rejected"
	AckExpired  = "expired"
)

// CmdAck reports the outcome of a command, published on cmd-ack.
type CmdAck struct {
	Envelope
	CmdID  string `json:"cmd_id"`
	Name   string `json:"name"`
	Status string `json:"status"`
	// Error says why a command was rejected or expired.
	Error string `json:"error,omitempty"`
	// Duplicate is true when the cmd_id was seen before; the command was
	// not applied again and Status repeats the first outcome.
	Duplicate bool `json:"duplicate,omitempty"`
	// Limits are the limits in force after the command.
	Limits *Limits `json:"limits,omitempty"`
}

// ConfigReported is the retained message on config/reported with the limits
// in force.
type ConfigReported struct {
	Envelope
	Limits Limits `json:"limits"`
}

// Limits are the run-time limits a fleet can change. Zero means "no limit"
// for the budgets, the cap and the deadline, and "the bundle's last exit"
// for MaxExit.
type Limits struct {
	EnergyBudgetMJ float64 `json:"energy_budget_mj"`
	PowerCapW      float64 `json:"power_cap_w"`
	Threshold      float64 `json:"threshold"`
	MaxExit        int     `json:"max_exit"`
	DeadlineMS     float64 `json:"deadline_ms"`
}

func (m *Result) envelope() *Envelope         { return &m.Envelope }
func (m *Telemetry) envelope() *Envelope      { return &m.Envelope }
func (m *Event) envelope() *Envelope          { return &m.Envelope }
func (m *Status) envelope() *Envelope         { return &m.Envelope }
func (m *CmdAck) envelope() *Envelope         { return &m.Envelope }
func (m *ConfigReported) envelope() *Envelope { return &m.Envelope }

func (m *Result) route() (string, kind)         { return "result", spooled }
func (m *Telemetry) route() (string, kind)      { return "telemetry", spooled }
func (m *Event) route() (string, kind)          { return "event/" + m.Kind, spooled }
func (m *Status) route() (string, kind)         { return "status", retained }
func (m *CmdAck) route() (string, kind)         { return "cmd-ack", spooled }
func (m *ConfigReported) route() (string, kind) { return "config/reported", retained }
