package power

import (
	"fmt"
	"strings"
)

// Text renders a reading as a few tegrastats-like lines: source, device and
// mode; total and per-rail power; temperatures; load, throttle and clocks;
// then what could not be read. Every power value names its source when it
// differs from the reading's.
func (r Reading) Text() string {
	var b strings.Builder
	src := func(s Source) string {
		if s == "" || s == r.Source {
			return ""
		}
		return " [" + string(s) + "]"
	}
	fmt.Fprintf(&b, "%s  %s", r.Time.UTC().Format("2006-01-02T15:04:05.000Z"), r.Source)
	if r.Device != "" {
		fmt.Fprintf(&b, "  %s", r.Device)
	}
	if r.Mode != "" {
		fmt.Fprintf(&b, "  mode %s", r.Mode)
	}
	b.WriteString("\n  power ")
	if r.TotalW.OK() {
		fmt.Fprintf(&b, " total %.2f W", r.TotalW.V)
		if r.TotalFrom != "" {
			fmt.Fprintf(&b, " (%s)", r.TotalFrom)
		}
		b.WriteString(src(r.TotalW.Source))
	} else {
		b.WriteString(" total n/a")
	}
	for _, rl := range r.Rails {
		fmt.Fprintf(&b, "  %s %.2f W%s", rl.Name, rl.Watts, src(rl.Source))
	}
	if r.EnergyJ.OK() {
		fmt.Fprintf(&b, "  energy %.1f J%s", r.EnergyJ.V, src(r.EnergyJ.Source))
	}
	if r.LimitW.OK() {
		fmt.Fprintf(&b, "  limit %.0f W", r.LimitW.V)
	}
	b.WriteString("\n  temp  ")
	if len(r.Temps) == 0 {
		b.WriteString(" n/a")
	}
	for _, t := range r.Temps {
		fmt.Fprintf(&b, " %s@%.1fC", strings.TrimSuffix(t.Zone, "-thermal"), t.C)
		if t.SlowdownC > 0 {
			fmt.Fprintf(&b, " (slowdown %.0fC, shutdown %.0fC)", t.SlowdownC, t.ShutdownC)
		}
		b.WriteString(src(t.Source))
	}
	b.WriteString("\n  gpu   ")
	if r.GPULoad.OK() {
		fmt.Fprintf(&b, " load %.1f%%", r.GPULoad.V)
	} else {
		b.WriteString(" load n/a")
	}
	switch {
	case r.Throttle == nil:
		b.WriteString("  throttle n/a")
	case len(r.Throttle.Reasons) == 0:
		b.WriteString("  throttle none")
	default:
		state := "not throttled"
		if r.Throttle.Active {
			state = "THROTTLED"
		}
		fmt.Fprintf(&b, "  throttle %s (%s)", state, strings.Join(r.Throttle.Reasons, ", "))
	}
	for _, c := range r.Clocks {
		fmt.Fprintf(&b, "  %s %d MHz", c.Name, c.MHz)
	}
	b.WriteString("\n")
	if len(r.Missing) > 0 {
		b.WriteString("  n/a   ")
		for i, m := range r.Missing {
			if i > 0 {
				b.WriteString("; ")
			}
			fmt.Fprintf(&b, "%s: %s", m.Field, m.Reason)
		}
		b.WriteString("\n")
	}
	return b.String()
}
