package backend

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/anytime-edge/edge/power"
	"github.com/anytime-edge/edge/power/jetson"
	"github.com/anytime-edge/edge/power/nvml"
)

// Kind names a backend.
type Kind string

// Backends.
const (
	Auto     Kind = "auto"
	NVML     Kind = "nvml"
	Jetson   Kind = "jetson"
	Estimate Kind = "estimate"
)

// Kinds lists the accepted names, for flag help.
var Kinds = []Kind{Auto, NVML, Jetson, Estimate}

// ParseKind checks a --backend value.
func ParseKind(s string) (Kind, error) {
	for _, k := range Kinds {
		if string(k) == s {
			return k, nil
		}
	}
	names := make([]string, len(Kinds))
	for i, k := range Kinds {
		names[i] = string(k)
	}
	return "", fmt.Errorf("power backend %q: want one of %s", s, strings.Join(names, ", "))
}

// Options configure Open. Zero fields take the defaults.
type Options struct {
	Kind Kind // default Auto
	// SysfsRoot is the Jetson backend's root (default "/").
	SysfsRoot string
	// NVMLLibrary and NVMLIndex select libnvidia-ml and the device.
	NVMLLibrary string
	NVMLIndex   int
	// Provider and Model configure the estimator (default "cpu" and
	// power.DefaultEstimateModel()).
	Provider string
	Model    *power.EstimateModel
	Logger   *slog.Logger

	// openNVML replaces nvml.Open in tests.
	openNVML func(nvml.Options) (power.Sampler, error)
}

// Choice is the backend Open chose and why, one line per backend tried.
type Choice struct {
	Kind Kind
	Why  []string
}

// String renders the choice for `edge probe`.
func (c Choice) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "power backend: %s\n", c.Kind)
	for _, w := range c.Why {
		fmt.Fprintf(&b, "  %s\n", w)
	}
	return b.String()
}

// Open opens the backend o.Kind names, or with Auto the first that reads.
// The caller closes the sampler.
func Open(ctx context.Context, o Options) (power.Sampler, Choice, error) {
	if o.Kind == "" {
		o.Kind = Auto
	}
	if o.SysfsRoot == "" {
		o.SysfsRoot = "/"
	}
	if o.Provider == "" {
		o.Provider = "cpu"
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.openNVML == nil {
		o.openNVML = func(no nvml.Options) (power.Sampler, error) { return nvml.Open(no) }
	}
	log := o.Logger.With("component", "power")
	var c Choice
	try := func(k Kind) (power.Sampler, error) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		switch k {
		case NVML:
			s, err := o.openNVML(nvml.Options{LibraryPath: o.NVMLLibrary, Index: o.NVMLIndex})
			if err != nil {
				return nil, err
			}
			name := ""
			if n, ok := s.(interface{ Name() string }); ok {
				name = n.Name()
			}
			c.Why = append(c.Why, fmt.Sprintf("nvml: device %d %q reads power", o.NVMLIndex, name))
			return s, nil
		case Jetson:
			s, err := jetson.New(os.DirFS(o.SysfsRoot))
			if err != nil {
				return nil, err
			}
			board := s.Board()
			if board == "" {
				board = "unnamed board"
			}
			c.Why = append(c.Why, fmt.Sprintf("jetson: %s under %s reads INA3221 rails (found %s)", board, o.SysfsRoot, strings.Join(s.Rails(), ", ")))
			return s, nil
		default:
			m := power.DefaultEstimateModel()
			if o.Model != nil {
				m = *o.Model
			}
			s, err := power.NewEstimator(m, o.Provider, nil)
			if err != nil {
				return nil, err
			}
			c.Why = append(c.Why, fmt.Sprintf("estimate: no sensor; %s model, idle %.1f W, %.4g J/GMAC; every value is an estimate",
				o.Provider, m.IdleW, m.JoulesPerGMAC[o.Provider]))
			return s, nil
		}
	}
	if o.Kind != Auto {
		s, err := try(o.Kind)
		if err != nil {
			return nil, Choice{Kind: o.Kind}, fmt.Errorf("power backend %s: %w", o.Kind, err)
		}
		c.Kind = o.Kind
		return s, c, nil
	}
	for _, k := range []Kind{NVML, Jetson, Estimate} {
		s, err := try(k)
		if err == nil {
			c.Kind = k
			log.Debug("power backend chosen", "backend", k, "why", strings.Join(c.Why, "; "))
			return s, c, nil
		}
		if ctx.Err() != nil {
			return nil, c, ctx.Err()
		}
		c.Why = append(c.Why, fmt.Sprintf("%s: passed over: %v", k, err))
		log.Debug("power backend passed over", "backend", k, "err", err)
	}
	return nil, c, fmt.Errorf("power backend: none usable (%s)", strings.Join(c.Why, "; "))
}
