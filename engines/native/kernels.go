//go:build cgo

package native

// The kernels are compiled once per instruction set (kernels.c) and the
// best one the CPU runs is picked at start: no -march flags here.

// #cgo CFLAGS: -O3 -std=gnu11 -Wall
// #include "kernels.h"
import "C"

import (
	"fmt"
	"unsafe"
)

// Map is a channels-last feature map view: pixel p = i*W + j of its H x W
// grid has channels Data[p*LD : p*LD+C]. A view into a wider map (a concat's
// channel slice) starts Data at the channel offset and keeps the wider LD.
type Map struct {
	Data        []float32
	H, W, C, LD int
}

// Pixel classes of one stride's grid (a per-pixel []uint8).
const (
	Far      uint8 = 0 // frozen, outside every fill's support: takes the shift
	Band     uint8 = 1 // frozen, near a computed pixel: takes the fill
	Computed uint8 = 2 // computed by the convolution
)

// Tap is one term of the fill: the neighbour at (DY, DX) weighted by W.
type Tap struct {
	DY, DX int32
	W      float32
}

// The C view of Tap must match it byte for byte (Fill passes []Tap as is).
var _ [unsafe.Sizeof(C.nk_tap{}) - unsafe.Sizeof(Tap{})]struct{}
var _ [unsafe.Sizeof(Tap{}) - unsafe.Sizeof(C.nk_tap{})]struct{}

// Conv is one convolution packed for Rows, with its per-output-channel
// affine epilogue folded: z = Scale*conv(x) + Bias. Its weights are packed
// for the widest vectors the CPU has (AVX-512, AVX2, else SSE2 or NEON),
// output channels padded to whole vectors. It is immutable after NewConv and
// safe for concurrent use.
type Conv struct {
	packed, bias              []float32
	zero                      []float32 // k*cin zeros: what taps outside the map read
	cout, cin, kernel, stride int
	variant                   C.int // the kernel variant packed for
}

// bestVariant is the fastest kernel variant this CPU runs.
var bestVariant = C.nk_best_variant()

// useVariant makes the kernels other than Conv.Rows run variant v until
// the returned function restores the best one (tests).
func useVariant(v C.int) (restore func()) {
	C.nk_use_variant(v)
	return func() { C.nk_best_variant() }
}

// variants are the kernel variants this CPU runs, by name.
func variants() map[string]C.int {
	vs := map[string]C.int{}
	for v := C.int(0); v < C.nk_variants(); v++ {
		if C.nk_variant_supported(v) != 0 {
			vs[C.GoString(C.nk_variant_name(v))] = v
		}
	}
	return vs
}

// NewConv packs weight ([cout][cin][k][k], PyTorch's order) for Rows, each
// output channel o scaled by scale[o] and shifted by bias[o] (nil scale: 1,
// nil bias: 0). k is 1 or 3, stride 1 or 2. It panics on shapes that do not
// fit (a programming error: the executor validates plans before).
func NewConv(weight []float32, cout, cin, k, stride int, scale, bias []float32) *Conv {
	return newConv(bestVariant, weight, cout, cin, k, stride, scale, bias)
}

// newConv is NewConv for kernel variant v.
func newConv(v C.int, weight []float32, cout, cin, k, stride int, scale, bias []float32) *Conv {
	switch {
	case k != 1 && k != 3:
		panic(fmt.Sprintf("native: conv kernel %d, want 1 or 3", k))
	case stride != 1 && stride != 2:
		panic(fmt.Sprintf("native: conv stride %d, want 1 or 2", stride))
	case cout < 1 || cin < 1:
		panic(fmt.Sprintf("native: conv of %d x %d channels", cout, cin))
	case len(weight) != cout*cin*k*k:
		panic(fmt.Sprintf("native: conv weight has %d values, want %d x %d x %d x %d", len(weight), cout, cin, k, k))
	case scale != nil && len(scale) != cout:
		panic(fmt.Sprintf("native: conv scale has %d values, want %d", len(scale), cout))
	case bias != nil && len(bias) != cout:
		panic(fmt.Sprintf("native: conv bias has %d values, want %d", len(bias), cout))
	}
	c := &Conv{cout: cout, cin: cin, kernel: k, stride: stride, variant: v, zero: make([]float32, k*cin)}
	c.packed = aligned(int(C.nk_conv_packed_size(v, C.int64_t(cout), C.int64_t(cin), C.int64_t(k))))
	c.bias = make([]float32, C.nk_conv_bias_size(v, C.int64_t(cout), C.int64_t(cin)))
	var ps, pb *C.float
	if scale != nil {
		ps = (*C.float)(&scale[0])
	}
	if bias != nil {
		pb = (*C.float)(&bias[0])
	}
	C.nk_conv_pack(v, (*C.float)(&c.packed[0]), (*C.float)(&c.bias[0]), (*C.float)(&weight[0]), ps, pb,
		C.int64_t(cout), C.int64_t(cin), C.int64_t(k))
	return c
}

// Rows writes z at the given output pixels (flat ids of dst's grid) of dst,
// with zero padding k/2: dst.H = ceil(src.H/stride) (PyTorch's output size;
// src.H/stride for the even sizes HRNet has), dst.W likewise,
// dst.C = cout, src.C = cin; dst and src must not overlap. Concurrent calls
// are safe when their rows are disjoint. It panics on shapes that do not fit
// or rows outside dst.
func (c *Conv) Rows(dst, src Map, rows []int64) { c.RowsEpilogue(dst, src, nil, false, rows) }

// RowsEpilogue is Rows with the epilogue of computed pixels fused into the
// store: each row written is z plus res's row (when res is not nil: a map
// of dst's shape overlapping neither dst nor src), then clamped at 0 when
// relu. The values equal Rows followed by Epilogue over those rows.
func (c *Conv) RowsEpilogue(dst, src Map, res *Map, relu bool, rows []int64) {
	dst.check("conv dst")
	src.check("conv src")
	if dst.C != c.cout || src.C != c.cin || dst.H != (src.H+c.stride-1)/c.stride || dst.W != (src.W+c.stride-1)/c.stride {
		panic(fmt.Sprintf("native: conv %dx%d k%d s%d from %dx%dx%d to %dx%dx%d", c.cout, c.cin, c.kernel, c.stride,
			src.H, src.W, src.C, dst.H, dst.W, dst.C))
	}
	checkPixels("conv rows", rows, dst.H*dst.W)
	pr, ld := residual("conv res", res, dst)
	if len(rows) == 0 {
		return
	}
	C.nk_conv_rows(c.variant, (*C.float)(&c.packed[0]), (*C.float)(&c.bias[0]), (*C.float)(&c.zero[0]),
		C.int64_t(c.cout), C.int64_t(c.cin), C.int64_t(c.kernel), C.int64_t(c.stride), dst.c(), src.c(),
		pr, C.int64_t(ld), cbool(relu), (*C.int64_t)(&rows[0]), C.int64_t(len(rows)))
}

// Fill writes, for each band pixel p, dst[p] = shift + sum over taps t whose
// pixel p+t is inside the map and Computed of t.W * (dst[p+t] - shift). It
// reads only Computed rows and writes only the band rows. class has one
// entry per pixel of dst's grid, shift dst.C values.
func Fill(dst Map, class []uint8, shift []float32, taps []Tap, band []int64) {
	dst.check("fill dst")
	checkClass("fill", class, shift, dst)
	checkPixels("fill band", band, dst.H*dst.W)
	if len(band) == 0 {
		return
	}
	var pt *C.nk_tap
	if len(taps) > 0 {
		pt = (*C.nk_tap)(unsafe.Pointer(&taps[0]))
	}
	C.nk_fill(dst.c(), (*C.uint8_t)(&class[0]), (*C.float)(&shift[0]), pt, C.int64_t(len(taps)),
		(*C.int64_t)(&band[0]), C.int64_t(len(band)))
}

// Epilogue finishes pixels [p0, p1) of dst in place: v = shift at Far
// pixels, dst[p] otherwise; plus res[p] when res is not nil (a map of
// dst's shape that does not overlap it); then max(v, 0) when relu.
func Epilogue(dst Map, class []uint8, shift []float32, res *Map, relu bool, p0, p1 int) {
	dst.check("epilogue dst")
	checkClass("epilogue", class, shift, dst)
	checkRange("epilogue pixels", p0, p1, dst.H*dst.W)
	pr, ld := residual("epilogue res", res, dst)
	if p0 == p1 {
		return
	}
	C.nk_epilogue(dst.c(), (*C.uint8_t)(&class[0]), (*C.float)(&shift[0]), pr, C.int64_t(ld), cbool(relu),
		C.int64_t(p0), C.int64_t(p1))
}

// residual is res's data and floats per pixel for the C kernels (nil, 0 for
// no residual); it panics, naming what (the residual's role), unless res has
// dst's shape.
func residual(what string, res *Map, dst Map) (*C.float, int) {
	if res == nil {
		return nil, 0
	}
	res.check(what)
	if res.H != dst.H || res.W != dst.W || res.C != dst.C {
		panic(fmt.Sprintf("native: %s %dx%dx%d, dst %dx%dx%d", what, res.H, res.W, res.C, dst.H, dst.W, dst.C))
	}
	if len(res.Data) == 0 {
		return nil, 0 // an empty grid: no row to add
	}
	return (*C.float)(&res.Data[0]), res.LD
}

// Resample writes rows [y0, y1) of dst's grid with src bilinearly upsampled
// by factor (1, 2, 4 or 8; 1 copies), PyTorch's align_corners=False rule.
// accumulate adds to dst instead of overwriting; relu clamps the result at
// 0. dst.H = src.H*factor, dst.W = src.W*factor, dst.C = src.C; dst and src
// must not overlap.
func Resample(dst, src Map, factor int, accumulate, relu bool, y0, y1 int) {
	dst.check("resample dst")
	src.check("resample src")
	if factor != 1 && factor != 2 && factor != 4 && factor != 8 {
		panic(fmt.Sprintf("native: resample factor %d, want 1, 2, 4 or 8", factor))
	}
	if dst.H != src.H*factor || dst.W != src.W*factor || dst.C != src.C {
		panic(fmt.Sprintf("native: resample x%d from %dx%dx%d to %dx%dx%d", factor, src.H, src.W, src.C, dst.H, dst.W, dst.C))
	}
	checkRange("resample rows", y0, y1, dst.H)
	if y0 == y1 {
		return
	}
	C.nk_resample(dst.c(), src.c(), C.int64_t(factor), cbool(accumulate), cbool(relu), C.int64_t(y0), C.int64_t(y1))
}

// AvgPool writes rows [y0, y1) of dst's grid with the 2x2 stride-2 average
// of src: dst.H = src.H/2, dst.W = src.W/2, dst.C = src.C; dst and src must
// not overlap.
func AvgPool(dst, src Map, y0, y1 int) {
	dst.check("avgpool dst")
	src.check("avgpool src")
	if dst.H != src.H/2 || dst.W != src.W/2 || dst.C != src.C {
		panic(fmt.Sprintf("native: avgpool from %dx%dx%d to %dx%dx%d", src.H, src.W, src.C, dst.H, dst.W, dst.C))
	}
	checkRange("avgpool rows", y0, y1, dst.H)
	if y0 == y1 {
		return
	}
	C.nk_avgpool(dst.c(), src.c(), C.int64_t(y0), C.int64_t(y1))
}

// FromNCHW copies pixels [p0, p1) of the planes src ([dst.C][dst.H*dst.W])
// into dst.
func FromNCHW(dst Map, src []float32, p0, p1 int) {
	if checkPlanes("from NCHW", src, dst, p0, p1) {
		return
	}
	C.nk_from_nchw(dst.c(), (*C.float)(&src[0]), C.int64_t(p0), C.int64_t(p1))
}

// ToNCHW copies pixels [p0, p1) of src into the planes dst
// ([src.C][src.H*src.W]).
func ToNCHW(dst []float32, src Map, p0, p1 int) {
	if checkPlanes("to NCHW", dst, src, p0, p1) {
		return
	}
	C.nk_to_nchw((*C.float)(&dst[0]), src.c(), C.int64_t(p0), C.int64_t(p1))
}

// aligned is a slice of n floats starting at a 64-byte boundary (a cache
// line: Rows streams the packed weights in whole vectors).
func aligned(n int) []float32 {
	s := make([]float32, n+15)
	off := int(uintptr(unsafe.Pointer(&s[0]))%64) / 4
	if off > 0 {
		off = 16 - off
	}
	return s[off : off+n : off+n]
}

// check panics unless m's Data holds its whole grid.
func (m Map) check(what string) {
	if m.H < 0 || m.W < 0 || m.C < 1 || m.LD < m.C {
		panic(fmt.Sprintf("native: %s map %dx%dx%d with LD %d", what, m.H, m.W, m.C, m.LD))
	}
	if n := m.H * m.W; n > 0 && len(m.Data) < (n-1)*m.LD+m.C {
		panic(fmt.Sprintf("native: %s map %dx%dx%d with LD %d has %d values", what, m.H, m.W, m.C, m.LD, len(m.Data)))
	}
}

// c is m's C view; Data must not be empty unless the grid is.
func (m Map) c() C.nk_map {
	var p *C.float
	if len(m.Data) > 0 {
		p = (*C.float)(&m.Data[0])
	}
	return C.nk_map{data: p, h: C.int64_t(m.H), w: C.int64_t(m.W), c: C.int64_t(m.C), ld: C.int64_t(m.LD)}
}

// checkPlanes panics unless planes holds m's channels as NCHW planes and
// [p0, p1) is a range of m's pixels; it reports whether the range is empty.
func checkPlanes(what string, planes []float32, m Map, p0, p1 int) (empty bool) {
	m.check(what)
	if len(planes) != m.C*m.H*m.W {
		panic(fmt.Sprintf("native: %s: %d values, want %d x %d x %d", what, len(planes), m.C, m.H, m.W))
	}
	checkRange(what, p0, p1, m.H*m.W)
	return p0 == p1
}

func checkClass(what string, class []uint8, shift []float32, dst Map) {
	if len(class) != dst.H*dst.W || len(shift) != dst.C {
		panic(fmt.Sprintf("native: %s: %d classes and %d shifts for %dx%dx%d", what, len(class), len(shift), dst.H, dst.W, dst.C))
	}
}

func checkPixels(what string, pixels []int64, n int) {
	for _, p := range pixels {
		if p < 0 || p >= int64(n) {
			panic(fmt.Sprintf("native: %s: pixel %d outside [0, %d)", what, p, n))
		}
	}
}

func checkRange(what string, lo, hi, n int) {
	if lo < 0 || hi < lo || hi > n {
		panic(fmt.Sprintf("native: %s [%d, %d) outside [0, %d]", what, lo, hi, n))
	}
}

func cbool(b bool) C.int {
	if b {
		return 1
	}
	return 0
}
