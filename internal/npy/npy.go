// Package npy reads and writes NumPy .npy files (format 1.0, little-endian,
// C order) of float32 and uint8 arrays: the exchange format of tensors
// between the runtime and the Python toolchain.
//
// Its place in the tree, and what it may import: docs/architecture.md.
package npy

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/anytime-edge/edge/internal/regfile"
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

// MaxHeader bounds the header of a .npy file Read accepts (NumPy writes a
// few hundred bytes).
const MaxHeader = 64 << 10

// Read reads a .npy file of float32 or uint8 values. The file must be a
// regular file whose length is exactly what its header declares; the header
// is checked before the data is read.
func Read(path string) (*Array, error) {
	return read(path, nil)
}

// ReadFloat32 reads a .npy file that must hold float32 values of the given
// shape; a file whose header declares anything else is refused before its
// data is read.
func ReadFloat32(path string, shape []int) ([]float32, error) {
	a, err := read(path, func(h header) error {
		if h.descr != "<f4" || !slices.Equal(h.shape, shape) {
			return fmt.Errorf("got %s %v, want float32 %v", dtypeName(h.descr), h.shape, shape)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return a.Float32, nil
}

// read reads path, calling check (when not nil) on the header before the
// data.
func read(path string, check func(header) error) (*Array, error) {
	f, st, err := regfile.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read npy: %w", err)
	}
	defer f.Close()
	br := bufio.NewReader(f)
	prefix := make([]byte, 12)
	if _, err := io.ReadFull(br, prefix[:10]); err != nil {
		return nil, fmt.Errorf("read npy %s: %w: truncated header", path, ErrFormat)
	}
	if prefix[6] >= 2 {
		if _, err := io.ReadFull(br, prefix[10:12]); err != nil {
			return nil, fmt.Errorf("read npy %s: %w: truncated header", path, ErrFormat)
		}
	}
	hlen, off, err := headerLen(prefix)
	if err != nil {
		return nil, fmt.Errorf("read npy %s: %w", path, err)
	}
	if hlen > MaxHeader {
		return nil, fmt.Errorf("read npy %s: %w: header of %d bytes (limit %d)", path, ErrFormat, hlen, MaxHeader)
	}
	raw := make([]byte, hlen)
	if _, err := io.ReadFull(br, raw); err != nil {
		return nil, fmt.Errorf("read npy %s: %w: truncated header", path, ErrFormat)
	}
	h, err := parseHeader(string(raw))
	if err != nil {
		return nil, fmt.Errorf("read npy %s: %w", path, err)
	}
	if check != nil {
		if err := check(h); err != nil {
			return nil, fmt.Errorf("read npy %s: %w", path, err)
		}
	}
	want := int64(off+hlen) + int64(h.size)*int64(h.n)
	if st.Size() != want {
		return nil, fmt.Errorf("read npy %s: %w: %d bytes of data for %s %v (want %d)",
			path, ErrFormat, st.Size()-int64(off+hlen), dtypeName(h.descr), h.shape, want-int64(off+hlen))
	}
	body := make([]byte, h.size*h.n)
	if _, err := io.ReadFull(br, body); err != nil {
		return nil, fmt.Errorf("read npy %s: %w", path, err)
	}
	return h.array(body), nil
}

// ErrFormat is wrapped by every error about a malformed or unsupported file.
var ErrFormat = errors.New("not a supported .npy file")

// header is a parsed .npy header.
type header struct {
	descr string
	shape []int
	n     int // values
	size  int // bytes per value
}

// headerLen returns the header's length and offset from the file's first
// 10 (version 1) or 12 (versions 2 and 3) bytes.
func headerLen(raw []byte) (hlen, off int, err error) {
	if len(raw) < 10 || !bytes.Equal(raw[:6], magic) {
		return 0, 0, fmt.Errorf("%w: bad magic", ErrFormat)
	}
	switch raw[6] {
	case 1:
		return int(binary.LittleEndian.Uint16(raw[8:10])), 10, nil
	case 2, 3:
		if len(raw) < 12 {
			return 0, 0, fmt.Errorf("%w: truncated header", ErrFormat)
		}
		return int(binary.LittleEndian.Uint32(raw[8:12])), 12, nil
	default:
		return 0, 0, fmt.Errorf("%w: version %d.%d", ErrFormat, raw[6], raw[7])
	}
}

// parseHeader parses the header's Python dict.
func parseHeader(text string) (header, error) {
	d, o, s := descrRE.FindStringSubmatch(text), orderRE.FindStringSubmatch(text), shapeRE.FindStringSubmatch(text)
	if d == nil || o == nil || s == nil {
		return header{}, fmt.Errorf("%w: header %q", ErrFormat, text)
	}
	if o[1] == "True" {
		return header{}, fmt.Errorf("%w: Fortran order", ErrFormat)
	}
	h := header{descr: d[1]}
	switch h.descr {
	case "<f4":
		h.size = 4
	case "|u1", "<u1", "|b1":
		h.size = 1
	default:
		return header{}, fmt.Errorf("%w: dtype %q (want float32 '<f4' or uint8 '|u1')", ErrFormat, h.descr)
	}
	for _, f := range strings.Split(s[1], ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 0 || n > 1<<31 {
			return header{}, fmt.Errorf("%w: shape (%s)", ErrFormat, s[1])
		}
		h.shape = append(h.shape, n)
	}
	if h.n = count(h.shape); h.n < 0 {
		return header{}, fmt.Errorf("%w: shape (%s) too large", ErrFormat, s[1])
	}
	return h, nil
}

// array converts body, exactly size·n bytes, into an Array.
func (h header) array(body []byte) *Array {
	a := &Array{Shape: h.shape}
	if h.size == 4 {
		a.Float32 = make([]float32, h.n)
		for i := range a.Float32 {
			a.Float32[i] = math.Float32frombits(binary.LittleEndian.Uint32(body[4*i:]))
		}
		return a
	}
	a.Uint8 = append([]uint8(nil), body...)
	return a
}

// dtypeName is a descr as a reader says it.
func dtypeName(descr string) string {
	switch descr {
	case "<f4":
		return "float32"
	case "|u1", "<u1":
		return "uint8"
	case "|b1":
		return "bool"
	}
	return strconv.Quote(descr)
}

// Decode parses the bytes of a .npy file.
func Decode(raw []byte) (*Array, error) {
	hlen, off, err := headerLen(raw)
	if err != nil {
		return nil, err
	}
	if off+hlen > len(raw) {
		return nil, fmt.Errorf("%w: truncated header", ErrFormat)
	}
	h, err := parseHeader(string(raw[off : off+hlen]))
	if err != nil {
		return nil, err
	}
	body := raw[off+hlen:]
	if len(body) != h.size*h.n {
		return nil, fmt.Errorf("%w: %d bytes of data for shape %v (want %d)", ErrFormat, len(body), h.shape, h.size*h.n)
	}
	return h.array(body), nil
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
