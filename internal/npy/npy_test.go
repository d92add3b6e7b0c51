package npy

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
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

// TestReadChecksTheHeaderBeforeTheData gives ReadFloat32 a 256 MiB tensor of
// the wrong shape: it must be refused having read only its header.
func TestReadChecksTheHeaderBeforeTheData(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "big.npy")
	if err := WriteFloat32(path, []int{1}, []float32{0}); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(path)
	hdr := strings.Replace(string(raw[:len(raw)-4]), "(1,)", "(1, 4, 4096, 4096)", 1)
	if err := os.WriteFile(path, []byte(hdr), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, int64(len(hdr))+4*4*4096*4096); err != nil { // sparse: no disk used
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := ReadFloat32(path, []int{1, 3, 64, 128})
	runtime.ReadMemStats(&after)
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "want float32 [1 3 64 128]") {
		t.Fatalf("got %v, want an error naming the file and the wanted shape", err)
	}
	if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
		t.Errorf("refusing the file allocated %d bytes, want under 1 MiB (the header only)", n)
	}
}

func TestReadRefusesFilesTheHeaderDoesNotDescribe(t *testing.T) {
	dir := t.TempDir()
	short := filepath.Join(dir, "short.npy")
	if err := WriteFloat32(short, []int{2, 2}, []float32{1, 2, 3, 4}); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(short)
	os.WriteFile(short, raw[:len(raw)-1], 0o644)
	fifo := filepath.Join(dir, "fifo.npy")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ path, want string }{
		{short, "15 bytes of data for float32 [2 2] (want 16)"},
		{fifo, "not a regular file"},
	} {
		if _, err := Read(tt.path); err == nil || !strings.Contains(err.Error(), tt.path) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: got %v, want %q", tt.path, err, tt.want)
		}
	}
	got, err := ReadFloat32(filepath.Join(dir, "ok.npy"), []int{2})
	if err == nil {
		t.Errorf("missing file: got %v", got)
	}
	WriteFloat32(filepath.Join(dir, "ok.npy"), []int{2}, []float32{5, 6})
	if got, err := ReadFloat32(filepath.Join(dir, "ok.npy"), []int{2}); err != nil || !slices.Equal(got, []float32{5, 6}) {
		t.Errorf("got %v, %v", got, err)
	}
}
