package pipeline

import (
	"context"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/anytime-edge/edge/bundle"
	"github.com/anytime-edge/edge/internal/npy"
	"github.com/anytime-edge/edge/source"
)

// TestInputsYieldEachInputOnce: images decode, an unreadable one is a
// failed frame (not the end), a tensor comes without an image and Prepare
// reads it, checking its shape; then the source ends.
func TestInputsYieldEachInputOnce(t *testing.T) {
	dir := t.TempDir()
	good := zeros(t, filepath.Join(dir, "t.npy"), 1, 3, 2, 4)
	bad := zeros(t, filepath.Join(dir, "wrong.npy"), 1, 3, 4, 2)
	in := bundle.Input{Tensor: "image", Shape: []int64{1, 3, 2, 4}, Color: "rgb", Scale: 1, Mean: []float32{0, 0, 0}, Std: []float32{1, 1, 1}}
	street := filepath.Join("..", "testdata", "images", "street.png")
	missing := filepath.Join(dir, "missing.png")
	s := NewInputs([]Input{{Path: street}, {Path: missing}, {Path: good, Tensor: true}, {Path: bad, Tensor: true}}, in)
	ctx := context.Background()
	dst := make([]float32, 24)

	f, err := s.Next(ctx)
	if err != nil || f.ID != 1 || f.Source != street || f.Image == nil {
		t.Fatalf("frame 1 = %+v, %v; want street.png decoded", f, err)
	}
	if err := s.Prepare(dst, &f); err != nil {
		t.Fatal(err)
	}
	var fe *source.FrameError
	if _, err := s.Next(ctx); !errors.As(err, &fe) || fe.ID != 2 || fe.Source != missing {
		t.Fatalf("frame 2: err %v, want a FrameError for %s", err, missing)
	}
	for _, tc := range []struct {
		path, want string
	}{{good, ""}, {bad, "want float32 [1 3 2 4]"}} {
		f, err := s.Next(ctx)
		if err != nil || f.Image != nil || f.Source != tc.path {
			t.Fatalf("tensor frame %+v, %v", f, err)
		}
		err = s.Prepare(dst, &f)
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("Prepare(%s) = %v, want %q", tc.path, err, tc.want)
		}
	}
	if _, err := s.Next(ctx); err != io.EOF {
		t.Fatalf("after the last input: %v, want io.EOF", err)
	}
}

// zeros writes a float32 .npy of zeros of shape to path and returns path.
func zeros(t *testing.T, path string, shape ...int) string {
	t.Helper()
	n := 1
	for _, d := range shape {
		n *= d
	}
	if err := npy.WriteFloat32(path, shape, make([]float32, n)); err != nil {
		t.Fatal(err)
	}
	return path
}
