package jetson

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
)

// ParseInt parses a sysfs integer file: optional surrounding whitespace, an
// optional sign, decimal digits.
func ParseInt(b []byte) (int64, error) {
	s := string(bytes.TrimSpace(b))
	if s == "" {
		return 0, errors.New("empty")
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("not an integer: %q", clip(s))
	}
	return v, nil
}

// ParseLabel parses a rail label or zone type: one line of printable text.
func ParseLabel(b []byte) (string, error) {
	s := string(bytes.TrimSpace(b))
	if s == "" {
		return "", errors.New("empty")
	}
	if len(s) > 64 {
		return "", fmt.Errorf("label too long (%d bytes)", len(s))
	}
	for _, r := range s {
		if !unicode.IsPrint(r) || r == unicode.ReplacementChar {
			return "", fmt.Errorf("label %q has unprintable characters", clip(s))
		}
	}
	return s, nil
}

// ParseNVPModelStatus parses var/lib/nvpmodel/status ("pmode:0002") into the
// mode id.
func ParseNVPModelStatus(b []byte) (int, error) {
	s := string(bytes.TrimSpace(b))
	rest, ok := strings.CutPrefix(s, "pmode:")
	if !ok {
		return 0, fmt.Errorf("want pmode:NNNN, got %q", clip(s))
	}
	id, err := strconv.Atoi(rest)
	if err != nil || id < 0 {
		return 0, fmt.Errorf("want pmode:NNNN, got %q", clip(s))
	}
	return id, nil
}

// ParseNVPModelConf reads the mode names from nvpmodel.conf lines of the
// form "< POWER_MODEL ID=2 NAME=MAXN_SUPER >". Other lines are ignored.
func ParseNVPModelConf(b []byte) map[int]string {
	names := map[int]string{}
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(strings.Trim(strings.TrimSpace(line), "<>"))
		if len(f) < 3 || f[0] != "POWER_MODEL" {
			continue
		}
		id, name := -1, ""
		for _, kv := range f[1:] {
			k, v, _ := strings.Cut(kv, "=")
			switch k {
			case "ID":
				if n, err := strconv.Atoi(v); err == nil && n >= 0 {
					id = n
				}
			case "NAME":
				name = v
			}
		}
		if id >= 0 && name != "" {
			names[id] = name
		}
	}
	return names
}

// clip shortens garbage quoted in an error.
func clip(s string) string {
	if len(s) > 32 {
		return s[:32] + "…"
	}
	return s
}
