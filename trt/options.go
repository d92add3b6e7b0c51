package trt

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// Options are the provider settings of one runtime.
type Options struct {
	// Order is the provider list, tried in order for every stage.
	Order []Provider
	// Explicit is true when the user chose Order (flag, environment or
	// configuration file) rather than taking DefaultOrder. A listed provider
	// that is not installed is then worth a warning; in the default order
	// it is the normal state of a CPU-only host.
	Explicit bool
	// DeviceID is the CUDA device.
	DeviceID int
	// FP16 enables TensorRT half precision.
	FP16 bool
	// MaxWorkspaceBytes bounds TensorRT's builder workspace; 0 keeps the
	// library default.
	MaxWorkspaceBytes int64
	// CacheDir holds TensorRT engines and the timing cache; empty disables
	// both caches.
	CacheDir string
	// DLACore selects a DLA core (Orin NX/AGX); negative disables DLA.
	// TensorRT uses DLA only with FP16 or INT8.
	DLACore int
	// IntraOpThreads is the CPU provider's intra-op thread count; 0 lets
	// ONNX Runtime choose.
	IntraOpThreads int
}

// DefaultOptions are the settings used when the user changes none.
func DefaultOptions() Options {
	return Options{Order: DefaultOrder, FP16: true, DLACore: -1}
}

// Shape is one tensor's dimensions in a TensorRT profile.
type Shape struct {
	Name string
	Dims []int64
}

// Profile is the min/opt/max shapes of the dynamic inputs of a stage. A stage
// whose inputs are all static needs none.
type Profile struct {
	Min, Opt, Max []Shape
}

// StageKey identifies a stage's engine in the cache: the bundle it belongs to
// (its SHA-256, since TensorRT does not hash weights) and the stage name.
type StageKey struct {
	BundleSHA256 string
	Stage        string
}

var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9]+`)

// cachePrefixVersion starts every engine-cache prefix of ours; it changes
// when the prefix's layout does.
const cachePrefixVersion = "edge1_"

// CachePrefix is the engine-cache file prefix of a stage: versioned by the
// bundle's digest, so a retrained model never loads a stale engine.
func (k StageKey) CachePrefix() string {
	sha := k.BundleSHA256
	if len(sha) > 12 {
		sha = sha[:12]
	}
	return cachePrefixVersion + unsafeChars.ReplaceAllString(k.Stage, "-") + "_" + sha
}

// TensorRTOptions is the TensorRT provider option map for a stage.
func (o Options) TensorRTOptions(k StageKey, p *Profile) map[string]string {
	m := map[string]string{
		"device_id":       strconv.Itoa(o.DeviceID),
		"trt_fp16_enable": boolFlag(o.FP16),
	}
	if o.MaxWorkspaceBytes > 0 {
		m["trt_max_workspace_size"] = strconv.FormatInt(o.MaxWorkspaceBytes, 10)
	}
	if o.CacheDir != "" {
		m["trt_engine_cache_enable"] = "1"
		m["trt_engine_cache_path"] = filepath.Join(o.CacheDir, "engines")
		m["trt_engine_cache_prefix"] = k.CachePrefix()
		m["trt_timing_cache_enable"] = "1"
		m["trt_timing_cache_path"] = filepath.Join(o.CacheDir, "timing")
	}
	if o.DLACore >= 0 {
		m["trt_dla_enable"] = "1"
		m["trt_dla_core"] = strconv.Itoa(o.DLACore)
	}
	if p != nil {
		m["trt_profile_min_shapes"] = formatShapes(p.Min)
		m["trt_profile_opt_shapes"] = formatShapes(p.Opt)
		m["trt_profile_max_shapes"] = formatShapes(p.Max)
	}
	return m
}

// CUDAOptions is the CUDA provider option map.
func (o Options) CUDAOptions() map[string]string {
	return map[string]string{
		"device_id":              strconv.Itoa(o.DeviceID),
		"cudnn_conv_algo_search": "HEURISTIC",
	}
}

// Validate checks the options for values no provider accepts.
func (o Options) Validate() error {
	if len(o.Order) == 0 {
		return fmt.Errorf("providers: the list is empty")
	}
	if o.DeviceID < 0 {
		return fmt.Errorf("device id %d: want ≥ 0", o.DeviceID)
	}
	if o.MaxWorkspaceBytes < 0 {
		return fmt.Errorf("trt workspace %d: want ≥ 0", o.MaxWorkspaceBytes)
	}
	if o.IntraOpThreads < 0 {
		return fmt.Errorf("threads %d: want ≥ 0", o.IntraOpThreads)
	}
	return nil
}

// formatShapes writes shapes as TensorRT wants them: "a:1x3x8x8,b:4x2".
func formatShapes(shapes []Shape) string {
	parts := make([]string, len(shapes))
	for i, s := range shapes {
		dims := make([]string, len(s.Dims))
		for j, d := range s.Dims {
			dims[j] = strconv.FormatInt(d, 10)
		}
		parts[i] = s.Name + ":" + strings.Join(dims, "x")
	}
	return strings.Join(parts, ",")
}

func boolFlag(b bool) string {
	if b {
		return "1"
	}
	return "0"
}
