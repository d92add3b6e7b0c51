package bundle

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// TensorInfo describes a graph input or output as its ONNX file declares it.
type TensorInfo struct {
	Name string
	// Type is the element type: "float32", "int64", ...
	Type string
	// Shape has -1 for a dynamic dimension.
	Shape []int64
}

// GraphInfo lists a stage graph's inputs and outputs.
type GraphInfo struct {
	Inputs, Outputs []TensorInfo
}

// CheckGraphs checks what each stage's ONNX file declares (graphs[i] for
// stage i) against the manifest: the input names are exactly the manifest's,
// every state and the logits are outputs, and types and shapes agree with
// the image tensor, the mask, the exits' output size and the state each
// input is fed from.
func (b *Bundle) CheckGraphs(graphs []GraphInfo) error {
	if len(graphs) != len(b.Stages) {
		return fmt.Errorf("check graphs: got %d graphs for %d stages", len(graphs), len(b.Stages))
	}
	h, w := b.OutputSize()
	image := TensorInfo{Type: "float32", Shape: b.Input.Shape}
	mask := TensorInfo{Type: "float32", Shape: []int64{1, 1, int64(h), int64(w)}}
	logits := TensorInfo{Type: "float32", Shape: []int64{1, int64(b.Channels()), int64(h), int64(w)}}
	state := map[string]TensorInfo{}
	for i, s := range b.Stages {
		g := graphs[i]
		fail := func(format string, args ...any) error {
			return &FieldError{File: b.StagePath(i), Msg: fmt.Sprintf("stage %q: ", s.Name) + fmt.Sprintf(format, args...)}
		}
		var names []string
		for _, in := range g.Inputs {
			names = append(names, in.Name)
		}
		want := slices.Sorted(maps.Keys(s.Inputs))
		slices.Sort(names)
		if !slices.Equal(names, want) {
			return fail("graph inputs are %v, the manifest's stages[%d].inputs name %v", names, i, want)
		}
		for _, in := range g.Inputs {
			src := s.Inputs[in.Name]
			var exp TensorInfo
			switch {
			case src == SourceInput:
				exp = image
			case src == SourceMask:
				exp = mask
			case isTableSource(src):
				continue // checked by CheckSparseGraphs
			case strings.HasPrefix(src, statePrefix):
				exp = state[strings.TrimPrefix(src, statePrefix)]
			}
			if err := sameTensor(in, exp); err != nil {
				return fail("input %q (from %s): %v", in.Name, src, err)
			}
		}
		outs := map[string]TensorInfo{}
		for _, o := range g.Outputs {
			outs[o.Name] = o
		}
		lo, ok := outs[s.Logits]
		if !ok {
			return fail("the graph has no output %q (stages[%d].logits)", s.Logits, i)
		}
		if err := sameTensor(lo, logits); err != nil {
			return fail("logits %q: %v", s.Logits, err)
		}
		for _, st := range s.State {
			o, ok := outs[st]
			if !ok {
				return fail("the graph has no output %q (stages[%d].state)", st, i)
			}
			if o.Type != "float32" {
				return fail("state %q has type %s, want float32", st, o.Type)
			}
			if slices.Contains(o.Shape, -1) {
				return fail("state %q has a dynamic shape %v, want static", st, o.Shape)
			}
			state[st] = o
		}
	}
	return nil
}

func sameTensor(got, want TensorInfo) error {
	if got.Type != want.Type {
		return fmt.Errorf("type %s, want %s", got.Type, want.Type)
	}
	if !slices.Equal(got.Shape, want.Shape) {
		return fmt.Errorf("shape %v, want %v", got.Shape, want.Shape)
	}
	return nil
}
