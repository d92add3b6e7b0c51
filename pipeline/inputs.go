package pipeline

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/anytime-edge/edge/bundle"
	"github.com/anytime-edge/edge/imaging"
	"github.com/anytime-edge/edge/internal/npy"
	"github.com/anytime-edge/edge/source"
)

// Input is one file `edge infer` runs: an image, or (Tensor) a float32
// [1,3,H,W] .npy already preprocessed for the bundle.
type Input struct {
	Path   string
	Tensor bool
}

// Inputs is the finite source of `edge infer`: each input once, in order,
// numbered from 1, its path as the frame's Source. An image that cannot be
// read is a failed frame (source.FrameError), not the end of the source. A
// tensor input is a frame without an image; Prepare reads it.
type Inputs struct {
	list    []Input
	next    int
	in      bundle.Input
	prepare Prepare
}

var _ source.Source = (*Inputs)(nil)

// NewInputs makes the source of list for a bundle with input in.
func NewInputs(list []Input, in bundle.Input) *Inputs {
	return &Inputs{list: list, in: in, prepare: Preprocess(in)}
}

// Next implements source.Source.
func (s *Inputs) Next(ctx context.Context) (source.Frame, error) {
	if err := ctx.Err(); err != nil {
		return source.Frame{}, err
	}
	if s.next >= len(s.list) {
		return source.Frame{}, io.EOF
	}
	in := s.list[s.next]
	s.next++
	f := source.Frame{ID: uint64(s.next), Source: in.Path, Captured: time.Now()}
	if in.Tensor {
		return f, nil
	}
	img, err := imaging.Load(in.Path)
	if err != nil {
		return f, &source.FrameError{ID: f.ID, Source: in.Path, Err: err}
	}
	f.Image = img
	return f, nil
}

// Close implements source.Source.
func (s *Inputs) Close() error { return nil }

// Prepare is the Prepare of these inputs: images are preprocessed, tensors
// read and checked against the bundle's input shape.
func (s *Inputs) Prepare(dst []float32, f *source.Frame) error {
	if f.Image != nil {
		return s.prepare(dst, f)
	}
	// The header is checked against the bundle before the data is read.
	x, err := npy.ReadFloat32(f.Source, []int{1, 3, s.in.Height(), s.in.Width()})
	if err != nil {
		return fmt.Errorf("--tensor: %w", err)
	}
	copy(dst, x)
	return nil
}
