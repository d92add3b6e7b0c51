// Package npy reads and writes NumPy .npy files (format 1.0, little-endian,
// C order) of float32 and uint8 arrays: the exchange format of tensors
// between the runtime and the Python toolchain.
package npy

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"regexp"
	"strconv"
	"strings"
)

var magic = []byte("\x93NUMPY")

// Array is an n-dimensional array: exactly one of Float32 and Uint8 is set.
type Array struct {
	Shape   []int
	Float32 []float32
	Uint8   []uint8
}

// WriteFloat32 writes data with the given shape to path.
func WriteFloat32(path string, shape []int, data []float32) error {
	buf := make([]byte, 4*len(data))
	for i, v := range data {
		binary.LittleEndian.PutUint32(buf[4*i:], math.Float32bits(v))
	}
	return write(path, "<f4", shape, len(data), buf)
}

// WriteUint8 writes data with the given shape to path.
func WriteUint8(path string, shape []int, data []uint8) error {
	return write(path, "|u1", shape, len(data), data)
}

func write(path, descr string, shape []int, n int, body []byte) error {
	if count(shape) != n {
		return fmt.Errorf("write %s: shape %v holds %d values, got %d", path, shape, count(shape), n)
	}
	dims := make([]string, len(shape))
	for i, d := range shape {
		dims[i] = strconv.Itoa(d)
	}
	tuple := strings.Join(dims, ", ")
	if len(shape) == 1 {
		tuple += ","
	}
	header := fmt.Sprintf("{'descr': '%s', 'fortran_order': False, 'shape': (%s), }", descr, tuple)
	// Pad so that magic + version + length + header + '\n' is a multiple of 64.
	total := len(magic) + 2 + 2 + len(header) + 1
	header += strings.Repeat(" ", (64-total%64)%64) + "\n"
	var b bytes.Buffer
	b.Write(magic)
	b.Write([]byte{1, 0})
	binary.Write(&b, binary.LittleEndian, uint16(len(header)))
	b.WriteString(header)
	b.Write(body)
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		return fmt.Errorf("write npy: %w", err)
	}
	return nil
}

var (
	descrRE = regexp.MustCompile(`'descr':\s*'([^']*)'`)
	orderRE = regexp.MustCompile(`'fortran_order':\s*(True|False)`)
	shapeRE = regexp.MustCompile(`'shape':\s*\(([^)]*)\)`)
)

// Read reads a .npy file of float32 or uint8 values.
func Read(path string) (*Array, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read npy: %w", err)
	}
	a, err := Decode(raw)
	if err != nil {
		return nil, fmt.Errorf("read npy %s: %w", path, err)
	}
	return a, nil
}

// ErrFormat is wrapped by every error about a malformed or unsupported file.
var ErrFormat = errors.New("not a supported .npy file")

// Decode parses the bytes of a .npy file.
func Decode(raw []byte) (*Array, error) {
	if len(raw) < 10 || !bytes.Equal(raw[:6], magic) {
		return nil, fmt.Errorf("%w: bad magic", ErrFormat)
	}
	var hlen, off int
	switch raw[6] {
	case 1:
		hlen, off = int(binary.LittleEndian.Uint16(raw[8:10])), 10
	case 2, 3:
		if len(raw) < 12 {
			return nil, fmt.Errorf("%w: truncated header", ErrFormat)
		}
		hlen, off = int(binary.LittleEndian.Uint32(raw[8:12])), 12
	default:
		return nil, fmt.Errorf("%w: version %d.%d", ErrFormat, raw[6], raw[7])
	}
	if off+hlen > len(raw) {
		return nil, fmt.Errorf("%w: truncated header", ErrFormat)
	}
	header := string(raw[off : off+hlen])
	body := raw[off+hlen:]
	d, o, s := descrRE.FindStringSubmatch(header), orderRE.FindStringSubmatch(header), shapeRE.FindStringSubmatch(header)
	if d == nil || o == nil || s == nil {
		return nil, fmt.Errorf("%w: header %q", ErrFormat, header)
	}
	if o[1] == "True" {
		return nil, fmt.Errorf("%w: Fortran order", ErrFormat)
	}
	var shape []int
	for _, f := range strings.Split(s[1], ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 0 || n > 1<<31 {
			return nil, fmt.Errorf("%w: shape (%s)", ErrFormat, s[1])
		}
		shape = append(shape, n)
	}
	n := count(shape)
	if n < 0 {
		return nil, fmt.Errorf("%w: shape (%s) too large", ErrFormat, s[1])
	}
	a := &Array{Shape: shape}
	switch d[1] {
	case "<f4":
		if len(body) != 4*n {
			return nil, fmt.Errorf("%w: %d bytes of data for shape %v (want %d)", ErrFormat, len(body), shape, 4*n)
		}
		a.Float32 = make([]float32, n)
		for i := range a.Float32 {
			a.Float32[i] = math.Float32frombits(binary.LittleEndian.Uint32(body[4*i:]))
		}
	case "|u1", "<u1", "|b1":
		if len(body) != n {
			return nil, fmt.Errorf("%w: %d bytes of data for shape %v (want %d)", ErrFormat, len(body), shape, n)
		}
		a.Uint8 = append([]uint8(nil), body...)
	default:
		return nil, fmt.Errorf("%w: dtype %q (want float32 '<f4' or uint8 '|u1')", ErrFormat, d[1])
	}
	return a, nil
}

// count is the number of values of shape, or -1 if it overflows.
func count(shape []int) int {
	n := 1
	for _, d := range shape {
		if d != 0 && n > math.MaxInt32/d {
			return -1
		}
		n *= d
	}
	return n
}
