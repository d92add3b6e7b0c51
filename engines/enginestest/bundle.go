package enginestest

import (
	"maps"
	"strconv"

	"github.com/anytime-edge/edge/bundle"
)

// BundleSpec describes a segmentation bundle for tests (see Bundle).
type BundleSpec struct {
	// Name is the manifest's name.
	Name string
	// H and W are the input's height and width; the output is H/4 × W/4.
	H, W int
	// Labels is the number of labels, named "a", "b", ….
	Labels int
	// Stages is the number of stages, named "s1", "s2", ….
	Stages int
	// Threshold is the max-softmax confidence threshold.
	Threshold float32
	// FixedMACs are every stage's fixed MACs.
	FixedMACs int64
	// MaskedMACs are the masked MACs of every stage after the first.
	MaskedMACs map[string]bundle.MaskedMACs
}

// Bundle is the manifest of s in memory (Dir "testdata", no graphs): an RGB
// input with identity normalisation, output stride 4, max-softmax
// confidence, a dense first stage and masked stages after it, each stage's
// logits in "logits".
func Bundle(s BundleSpec) *bundle.Bundle {
	m := bundle.Manifest{
		Format: bundle.Format, Name: s.Name, Task: bundle.TaskSegmentation,
		Input:        bundle.Input{Tensor: "image", Shape: []int64{1, 3, int64(s.H), int64(s.W)}, Color: "rgb", Scale: 1, Mean: []float32{0, 0, 0}, Std: []float32{1, 1, 1}},
		OutputStride: 4,
		Confidence:   bundle.Confidence{Criterion: bundle.CriterionMaxSoftmax, Threshold: s.Threshold},
	}
	for c := range s.Labels {
		m.Labels = append(m.Labels, bundle.Label{Name: string(rune('a' + c))})
	}
	for i := range s.Stages {
		st := bundle.Stage{Name: "s" + strconv.Itoa(i+1), Mode: bundle.ModeMasked, Logits: "logits", MACs: bundle.MACs{Fixed: s.FixedMACs}}
		if i == 0 {
			st.Mode = bundle.ModeDense
		} else {
			st.MACs.Masked = maps.Clone(s.MaskedMACs)
		}
		m.Stages = append(m.Stages, st)
	}
	return &bundle.Bundle{Dir: "testdata", Manifest: m}
}
