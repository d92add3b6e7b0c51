package bundle

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// Bounds on a manifest's numbers (docs/bundle.md), so that a bundle cannot
// make the runtime allocate without limit, overflow a count or wrap a label.
const (
	// MaxInputSide bounds the input tensor's height and width.
	MaxInputSide = 8192
	// MaxLabels bounds labels and keypoint names: label maps and label
	// PNGs hold one byte per pixel.
	MaxLabels = 256
	// MaxStages bounds the number of stages (exits).
	MaxStages = 64
	// MaxMACs bounds every MAC and channel count (2^50, about 10^15), so
	// their sums cannot overflow.
	MaxMACs = 1 << 50
	// MaxInputValue bounds |input.scale|, |input.mean| and input.std.
	MaxInputValue = 1e6
	// MaxHeatmapThreshold bounds |confidence.threshold| of heatmap_peak;
	// max_softmax thresholds are probabilities, 0 to 1.
	MaxHeatmapThreshold = 1e6
	// MaxOpset bounds provenance.opset.
	MaxOpset = 1000
)

// validator collects the first rule a manifest breaks.
type validator struct {
	file string
	err  error
}

func (v *validator) fail(field, format string, args ...any) {
	if v.err == nil {
		v.err = &FieldError{File: v.file, Field: field, Msg: fmt.Sprintf(format, args...)}
	}
}

func (m *Manifest) validate(file string) error {
	v := &validator{file: file}
	if m.Format != Format {
		v.fail("format", "got %q, want %q", m.Format, Format)
		return v.err
	}
	if m.Name == "" {
		v.fail("name", "missing")
	}
	m.validateInput(v)
	if m.OutputStride <= 0 {
		v.fail("output_stride", "got %d, want a positive integer", m.OutputStride)
	} else if len(m.Input.Shape) == 4 && (m.Input.Shape[2]%int64(m.OutputStride) != 0 || m.Input.Shape[3]%int64(m.OutputStride) != 0) {
		v.fail("output_stride", "input %dx%d is not divisible by %d", m.Input.Shape[2], m.Input.Shape[3], m.OutputStride)
	}
	m.validateTask(v)
	m.validateConfidence(v)
	m.validateStages(v)
	if p := m.Provenance; p != nil && (p.Opset < 0 || p.Opset > MaxOpset) {
		v.fail("provenance.opset", "got %d, want 0..%d", p.Opset, MaxOpset)
	}
	return v.err
}

func (m *Manifest) validateInput(v *validator) {
	in := m.Input
	if in.Tensor == "" {
		v.fail("input.tensor", "missing")
	}
	if len(in.Shape) != 4 || in.Shape[0] != 1 || in.Shape[1] != 3 || in.Shape[2] <= 0 || in.Shape[3] <= 0 ||
		in.Shape[2] > MaxInputSide || in.Shape[3] > MaxInputSide {
		v.fail("input.shape", "got %v, want [1, 3, H, W] with H, W in 1..%d", in.Shape, MaxInputSide)
	}
	if in.Color != "rgb" && in.Color != "bgr" {
		v.fail("input.color", "got %q, want \"rgb\" or \"bgr\"", in.Color)
	}
	if !(in.Scale > 0 && in.Scale <= MaxInputValue) {
		v.fail("input.scale", "got %v, want a positive number up to %g", in.Scale, MaxInputValue)
	}
	if len(in.Mean) != 3 {
		v.fail("input.mean", "got %d values, want 3", len(in.Mean))
	}
	if len(in.Std) != 3 {
		v.fail("input.std", "got %d values, want 3", len(in.Std))
	}
	for i, s := range in.Std {
		if !(s > 0 && s <= MaxInputValue) {
			v.fail(fmt.Sprintf("input.std[%d]", i), "got %v, want a positive number up to %g", s, MaxInputValue)
		}
	}
	for i, x := range in.Mean {
		if !(x >= -MaxInputValue && x <= MaxInputValue) {
			v.fail(fmt.Sprintf("input.mean[%d]", i), "got %v, want a number in [-%g, %g]", x, MaxInputValue, MaxInputValue)
		}
	}
}

func (m *Manifest) validateTask(v *validator) {
	switch m.Task {
	case TaskSegmentation:
		if len(m.Labels) == 0 {
			v.fail("labels", "a segmentation bundle needs at least one label")
		}
		if m.Keypoints != nil {
			v.fail("keypoints", "only a keypoints bundle has a keypoints object")
		}
	case TaskKeypoints:
		k := m.Keypoints
		if k == nil {
			v.fail("keypoints", "a keypoints bundle needs names, skeleton and head")
			return
		}
		if len(k.Names) == 0 {
			v.fail("keypoints.names", "missing")
		} else if len(k.Names) > MaxLabels {
			v.fail("keypoints.names", "got %d joints, want at most %d", len(k.Names), MaxLabels)
		}
		if len(m.Labels) != 0 && len(m.Labels) != len(k.Names) {
			v.fail("labels", "got %d labels for %d keypoints (leave labels empty or give one per keypoint)", len(m.Labels), len(k.Names))
		}
		for i, p := range k.Skeleton {
			if p[0] < 0 || p[0] >= len(k.Names) || p[1] < 0 || p[1] >= len(k.Names) {
				v.fail(fmt.Sprintf("keypoints.skeleton[%d]", i), "pair %v names a joint outside 0..%d", p, len(k.Names)-1)
			}
		}
		if k.Head[0] < 0 || k.Head[0] >= len(k.Names) || k.Head[1] < 0 || k.Head[1] >= len(k.Names) || k.Head[0] == k.Head[1] {
			v.fail("keypoints.head", "got %v, want two different joints in 0..%d", k.Head, len(k.Names)-1)
		}
	default:
		v.fail("task", "got %q, want %q or %q", m.Task, TaskSegmentation, TaskKeypoints)
	}
	if len(m.Labels) > MaxLabels {
		v.fail("labels", "got %d labels, want at most %d (label maps and label PNGs hold one byte per pixel)", len(m.Labels), MaxLabels)
	}
	seen := map[string]bool{}
	for i, l := range m.Labels {
		field := fmt.Sprintf("labels[%d].name", i)
		if l.Name == "" {
			v.fail(field, "missing")
		} else if seen[l.Name] {
			v.fail(field, "duplicate label %q", l.Name)
		}
		seen[l.Name] = true
	}
}

func (m *Manifest) validateConfidence(v *validator) {
	c := m.Confidence
	switch c.Criterion {
	case CriterionMaxSoftmax:
		if m.Task != TaskSegmentation {
			v.fail("confidence.criterion", "%q needs a segmentation bundle (keypoints use %q)", c.Criterion, CriterionHeatmapPeak)
		}
	case CriterionHeatmapPeak:
		if m.Task != TaskKeypoints {
			v.fail("confidence.criterion", "%q needs a keypoints bundle (segmentation uses %q)", c.Criterion, CriterionMaxSoftmax)
		}
	default:
		v.fail("confidence.criterion", "got %q, want %q or %q", c.Criterion, CriterionMaxSoftmax, CriterionHeatmapPeak)
	}
	lo, hi := float32(-MaxHeatmapThreshold), float32(MaxHeatmapThreshold)
	if c.Criterion == CriterionMaxSoftmax {
		lo, hi = 0, 1
	}
	if !(c.Threshold >= lo && c.Threshold <= hi) {
		v.fail("confidence.threshold", "got %v, want a number in [%g, %g]", c.Threshold, lo, hi)
	}
}

func (m *Manifest) validateStages(v *validator) {
	if len(m.Stages) == 0 {
		v.fail("stages", "a bundle needs at least one stage")
		return
	}
	if len(m.Stages) > MaxStages {
		v.fail("stages", "got %d stages, want at most %d", len(m.Stages), MaxStages)
		return
	}
	names := map[string]bool{}
	files := map[string]bool{}
	produced := map[string]int{} // state name → producing stage
	for i, s := range m.Stages {
		at := fmt.Sprintf("stages[%d]", i)
		if s.Name == "" {
			v.fail(at+".name", "missing")
		} else if names[s.Name] {
			v.fail(at+".name", "duplicate stage name %q", s.Name)
		}
		names[s.Name] = true
		v.graphFile(at+".file", s.File, files)
		switch s.Mode {
		case ModeDense, ModeMasked, ModeSparse:
		default:
			v.fail(at+".mode", "got %q, want %q, %q or %q", s.Mode, ModeDense, ModeMasked, ModeSparse)
		}
		if i == 0 && s.Mode != ModeDense {
			v.fail(at+".mode", "the first stage must be %q (nothing is confident before exit 1), got %q", ModeDense, s.Mode)
		}
		m.validateInputs(v, i, s, produced)
		m.validateSparse(v, i, s, files)
		if s.Logits == "" {
			v.fail(at+".logits", "missing")
		}
		for j, st := range s.State {
			f := fmt.Sprintf("%s.state[%d]", at, j)
			switch {
			case st == "":
				v.fail(f, "missing")
			case st == s.Logits:
				v.fail(f, "%q is also the stage's logits output", st)
			default:
				if p, dup := produced[st]; dup {
					v.fail(f, "state %q is already produced by stage %q", st, m.Stages[p].Name)
				}
				produced[st] = i
			}
		}
		validateMACs(v, at, s)
	}
}

func (m *Manifest) validateInputs(v *validator, i int, s Stage, produced map[string]int) {
	at := fmt.Sprintf("stages[%d].inputs", i)
	if len(s.Inputs) == 0 {
		v.fail(at, "missing: a stage needs at least one input")
	}
	hasMask := false
	for _, graphInput := range slices.Sorted(maps.Keys(s.Inputs)) {
		src := s.Inputs[graphInput]
		f := at + "." + graphInput
		switch {
		case src == SourceInput:
		case src == SourceMask:
			hasMask = true
			if s.Mode != ModeMasked {
				v.fail(f, "mask input on %s stage %q (only masked stages take a mask)", s.Mode, s.Name)
			}
		case strings.HasPrefix(src, statePrefix):
			name := strings.TrimPrefix(src, statePrefix)
			if _, ok := produced[name]; !ok {
				v.fail(f, "state %q is not produced by an earlier stage", name)
			}
		case isTableSource(src):
			if s.Mode != ModeSparse {
				v.fail(f, "%q input on %s stage %q (only sparse stages take index tables)", src, s.Mode, s.Name)
			} // the form of the source is checked by validateSparse
		default:
			v.fail(f, "got source %q, want \"input\", \"mask\", \"state:NAME\", \"index:S\" or \"band:S\"", src)
		}
	}
	if s.Mode == ModeMasked && !hasMask {
		v.fail(at, "masked stage %q has no input fed from \"mask\"", s.Name)
	}
}

func validateMACs(v *validator, at string, s Stage) {
	if s.MACs.Fixed < 0 || s.MACs.Fixed > MaxMACs {
		v.fail(at+".macs.fixed", "got %d, want 0..%d", s.MACs.Fixed, int64(MaxMACs))
	}
	if s.Mode == ModeDense && len(s.MACs.Masked) != 0 {
		v.fail(at+".macs.masked", "a dense stage has no masked convolutions")
	}
	for _, k := range slices.Sorted(maps.Keys(s.MACs.Masked)) {
		f := at + ".macs.masked." + k
		if stride, err := strconv.Atoi(k); err != nil || stride <= 0 || stride > MaxInputSide {
			v.fail(f, "key %q is not an output stride in 1..%d", k, MaxInputSide)
		}
		mm := s.MACs.Masked[k]
		if mm.MACs < 0 || mm.OutChannels < 0 || mm.MACs > MaxMACs || mm.OutChannels > MaxMACs {
			v.fail(f, "got macs %d, out_channels %d, want both 0..%d", mm.MACs, mm.OutChannels, int64(MaxMACs))
		}
	}
}

// Channels is the number of channels of every exit's output: one per label
// (segmentation) or per keypoint (keypoints).
func (m *Manifest) Channels() int {
	if m.Task == TaskKeypoints && m.Keypoints != nil {
		return len(m.Keypoints.Names)
	}
	return len(m.Labels)
}

// OutputSize is the exits' output height and width.
func (m *Manifest) OutputSize() (h, w int) {
	return m.Input.Height() / m.OutputStride, m.Input.Width() / m.OutputStride
}
