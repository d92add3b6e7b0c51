package npy

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	dir := t.TempDir()
	f := []float32{0, -1.5, float32(math.Inf(1)), 3.25e-8, 7, 8}
	if err := WriteFloat32(filepath.Join(dir, "f.npy"), []int{1, 2, 3}, f); err != nil {
		t.Fatal(err)
	}
	a, err := Read(filepath.Join(dir, "f.npy"))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(a.Shape, []int{1, 2, 3}) || !slices.Equal(a.Float32, f) {
		t.Errorf("got %v %v, want [1 2 3] %v", a.Shape, a.Float32, f)
	}
	u := []uint8{1, 0, 1, 1}
	if err := WriteUint8(filepath.Join(dir, "u.npy"), []int{4}, u); err != nil {
		t.Fatal(err)
	}
	if a, err = Read(filepath.Join(dir, "u.npy")); err != nil || !slices.Equal(a.Uint8, u) || !slices.Equal(a.Shape, []int{4}) {
		t.Errorf("got %v, %v", a, err)
	}
	raw, _ := os.ReadFile(filepath.Join(dir, "u.npy"))
	if hl := 10 + int(raw[8]) + int(raw[9])<<8; hl%64 != 0 {
		t.Errorf("header ends at %d, want a multiple of 64", hl)
	}
}

func TestReadsNumPyFiles(t *testing.T) {
	// Written by NumPy: the tiny bundle's reference dumps.
	a, err := Read("../../testdata/bundles/tiny/reference/exit1_mask.npy")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(a.Shape, []int{16, 32}) || len(a.Uint8) != 16*32 {
		t.Errorf("got shape %v with %d values", a.Shape, len(a.Uint8))
	}
}

func TestDecodeRejectsBadFiles(t *testing.T) {
	good := func(descr, shape string, body int) []byte {
		h := "{'descr': '" + descr + "', 'fortran_order': False, 'shape': (" + shape + "), }\n"
		b := append([]byte("\x93NUMPY\x01\x00"), byte(len(h)), 0)
		return append(append(b, h...), make([]byte, body)...)
	}
	tests := map[string][]byte{
		"empty":       nil,
		"bad magic":   []byte("NOTNUMPY\x01\x00\x00\x00"),
		"float64":     good("<f8", "2,", 16),
		"short data":  good("<f4", "2, 2", 15),
		"long data":   good("|u1", "3,", 4),
		"bad shape":   good("<f4", "a, b", 0),
		"huge shape":  good("<f4", "100000000, 100000000", 0),
		"truncated":   good("<f4", "2,", 8)[:20],
		"fortran":     []byte("\x93NUMPY\x01\x00\x46\x00{'descr': '<f4', 'fortran_order': True, 'shape': (1,), }            \n\x00\x00\x00\x00"),
		"bad version": []byte("\x93NUMPY\x09\x00\x00\x00"),
	}
	for name, raw := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := Decode(raw); !errors.Is(err, ErrFormat) {
				t.Errorf("got %v, want ErrFormat", err)
			}
		})
	}
}

func FuzzDecode(f *testing.F) {
	raw, _ := os.ReadFile("../../testdata/bundles/tiny/reference/x.npy")
	f.Add(raw)
	f.Add([]byte("\x93NUMPY\x01\x00"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		a, err := Decode(raw)
		if err != nil {
			return
		}
		n := count(a.Shape)
		if len(a.Float32) != n && len(a.Uint8) != n {
			t.Fatalf("shape %v but %d/%d values", a.Shape, len(a.Float32), len(a.Uint8))
		}
	})
}
