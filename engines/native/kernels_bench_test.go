//go:build cgo

package native

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// The shapes of HRNet's branches at a 512x1024 input (strides 4 to 32):
// W18-Small-v2 has 18, 36, 72 and 144 channels, W48 48, 96, 192 and 384.
var benchGrids = [4][2]int{{128, 256}, {64, 128}, {32, 64}, {16, 32}}

// benchRows is a computed fraction of an h x w grid: "clustered" keeps the
// first rows of the grid (whole image rows, like a mask's connected
// regions), "random" keeps each pixel with probability frac.
func benchRows(r *rand.Rand, h, w int, frac float64, random bool) []int64 {
	var rows []int64
	for p := 0; p < h*w; p++ {
		if (random && r.Float64() < frac) || (!random && float64(p) < frac*float64(h*w)) {
			rows = append(rows, int64(p))
		}
	}
	return rows
}

// BenchmarkConvRows times one Conv.Rows call (single-threaded) at HRNet's
// shapes and reports GFLOP/s: 2 * multiply-adds of the computed pixels per
// second. Run:
//
//	go test -run '^$' -bench ConvRows -benchtime 20x ./engines/native/
func BenchmarkConvRows(b *testing.B) {
	type shape struct {
		name                 string
		cin, cout, k, stride int
		h, w                 int // the input grid
	}
	var shapes []shape
	for _, net := range []struct {
		name  string
		width int
	}{{"W18", 18}, {"W48", 48}} {
		for br, g := range benchGrids {
			c := net.width << br
			shapes = append(shapes, shape{fmt.Sprintf("%s/3x3/%d@%dx%d", net.name, c, g[0], g[1]), c, c, 3, 1, g[0], g[1]})
		}
		for br, g := range benchGrids[:3] {
			c := net.width << br
			shapes = append(shapes, shape{fmt.Sprintf("%s/3x3s2/%dto%d@%dx%d", net.name, c, 2*c, g[0], g[1]), c, 2 * c, 3, 2, g[0], g[1]})
		}
		for br, g := range benchGrids[1:] { // the fuse's 1x1s up to the first branch
			c := net.width << (br + 1)
			shapes = append(shapes, shape{fmt.Sprintf("%s/1x1/%dto%d@%dx%d", net.name, c, net.width, g[0], g[1]), c, net.width, 1, 1, g[0], g[1]})
		}
		// Stage 2's entry: stage 1's 256 channels to the first two branches.
		shapes = append(shapes,
			shape{fmt.Sprintf("%s/3x3/256to%d@128x256", net.name, net.width), 256, net.width, 3, 1, 128, 256},
			shape{fmt.Sprintf("%s/3x3s2/256to%d@128x256", net.name, 2*net.width), 256, 2 * net.width, 3, 2, 128, 256})
		all := 15 * net.width // the head's 1x1 over the concatenated branches
		shapes = append(shapes, shape{fmt.Sprintf("%s/1x1/%dto%d@128x256", net.name, all, all), all, all, 1, 1, 128, 256})
	}
	for _, s := range shapes {
		for _, m := range []struct {
			name   string
			frac   float64
			random bool
		}{{"1.0", 1, false}, {"0.5clustered", 0.5, false}, {"0.5random", 0.5, true}} {
			b.Run(s.name+"/"+m.name, func(b *testing.B) {
				r := rand.New(rand.NewPCG(1, 1))
				conv := NewConv(randomSlice(r, s.cout*s.cin*s.k*s.k), s.cout, s.cin, s.k, s.stride, randomSlice(r, s.cout), randomSlice(r, s.cout))
				src := Map{Data: randomSlice(r, s.h*s.w*s.cin), H: s.h, W: s.w, C: s.cin, LD: s.cin}
				oh, ow := s.h/s.stride, s.w/s.stride
				dst := Map{Data: make([]float32, oh*ow*s.cout), H: oh, W: ow, C: s.cout, LD: s.cout}
				rows := benchRows(r, oh, ow, m.frac, m.random)
				b.ResetTimer()
				for b.Loop() {
					conv.Rows(dst, src, rows)
				}
				flops := 2 * float64(len(rows)) * float64(s.cin*s.cout*s.k*s.k)
				b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}

// BenchmarkMemoryKernels times Fill, Epilogue, Resample, AvgPool and ToNCHW
// on an 18- and a 48-channel map at 128x256 and reports GB/s of map data
// written:
//
//	go test -run '^$' -bench MemoryKernels -benchtime 20x ./engines/native/
func BenchmarkMemoryKernels(b *testing.B) {
	for _, c := range []int{18, 48} {
		b.Run(fmt.Sprintf("C%d", c), func(b *testing.B) { benchmarkMemoryKernels(b, c) })
	}
}

func benchmarkMemoryKernels(b *testing.B, c int) {
	const h, w = 128, 256
	r := rand.New(rand.NewPCG(2, 2))
	full := func(h, w int) Map { return Map{Data: randomSlice(r, h*w*c), H: h, W: w, C: c, LD: c} }
	dst, res, half := full(h, w), full(h, w), full(h/2, w/2)
	// Computed: a checkerboard of 16x16 squares; band: the frozen pixels
	// within 3 of a computed one (the reach of the 7x7 taps below).
	class := make([]uint8, h*w)
	computed := func(i, j int) bool { return i >= 0 && i < h && j >= 0 && j < w && (i/16+j/16)%2 == 0 }
	var band []int64
	for i := range h {
		for j := range w {
			if computed(i, j) {
				class[i*w+j] = Computed
				continue
			}
			for d := -3; d <= 3 && class[i*w+j] == Far; d++ {
				for e := -3; e <= 3; e++ {
					if computed(i+d, j+e) {
						class[i*w+j] = Band
						band = append(band, int64(i*w+j))
						break
					}
				}
			}
		}
	}
	shift := randomSlice(r, c)
	var taps []Tap
	for dy := int32(-3); dy <= 3; dy++ {
		for dx := int32(-3); dx <= 3; dx++ {
			taps = append(taps, Tap{DY: dy, DX: dx, W: 0.02})
		}
	}
	bytes := func(b *testing.B, pixels int) {
		b.ReportMetric(float64(pixels*c*4)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
	}
	b.Run("Fill7x7", func(b *testing.B) {
		for b.Loop() {
			Fill(dst, class, shift, taps, band)
		}
		bytes(b, len(band))
	})
	b.Run("EpilogueResidualRelu", func(b *testing.B) {
		for b.Loop() {
			Epilogue(dst, class, shift, &res, true, 0, h*w)
		}
		bytes(b, h*w)
	})
	for _, f := range []int{1, 2} {
		b.Run(fmt.Sprintf("ResampleX%dAccumulate", f), func(b *testing.B) {
			src := dst
			if f == 2 {
				src = half
			}
			for b.Loop() {
				Resample(res, src, f, true, false, 0, h)
			}
			bytes(b, h*w)
		})
	}
	b.Run("AvgPool", func(b *testing.B) {
		for b.Loop() {
			AvgPool(half, dst, 0, h/2)
		}
		bytes(b, h*w/4)
	})
	planes := make([]float32, h*w*c)
	b.Run("ToNCHW", func(b *testing.B) {
		for b.Loop() {
			ToNCHW(planes, dst, 0, h*w)
		}
		bytes(b, h*w)
	})
	b.Run("FromNCHW", func(b *testing.B) {
		for b.Loop() {
			FromNCHW(dst, planes, 0, h*w)
		}
		bytes(b, h*w)
	})
}
