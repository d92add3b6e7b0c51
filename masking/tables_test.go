package masking

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// naiveTable is the definition of a table, pixel by pixel: resize with
// PyTorch's nearest rule, then for a band test every pixel against every
// computed one.
func naiveTable(mask []uint8, h, w int, s Table) []int64 {
	sy, sx := float32(h)/float32(s.Height), float32(w)/float32(s.Width)
	m := make([]uint8, s.Height*s.Width)
	for y := range s.Height {
		for x := range s.Width {
			m[y*s.Width+x] = mask[nearest(y, sy, h)*w+nearest(x, sx, w)]
		}
	}
	out := []int64{}
	for p, v := range m {
		y, x := p/s.Width, p%s.Width
		if !s.Band {
			if v != 0 {
				out = append(out, int64(p))
			}
			continue
		}
		if v != 0 {
			continue
		}
		near := false
		for q, u := range m {
			qy, qx := q/s.Width, q%s.Width
			if u != 0 && max(abs(qy-y), abs(qx-x)) <= s.Radius {
				near = true
			}
		}
		if near {
			out = append(out, int64(p))
		}
	}
	return out
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

func TestTablesMatchNaive(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	random := func(h, w int, p float64) []uint8 {
		m := make([]uint8, h*w)
		for i := range m {
			if r.Float64() < p {
				m[i] = 1
			}
		}
		return m
	}
	one := func(h, w, y, x int) []uint8 {
		m := make([]uint8, h*w)
		m[y*w+x] = 1
		return m
	}
	full := func(h, w int) []uint8 {
		m := make([]uint8, h*w)
		Fill(m)
		return m
	}
	tests := []struct {
		name string
		h, w int
		mask []uint8
		gh   []int // grid heights; widths scale alike
	}{
		{"empty", 16, 32, make([]uint8, 16*32), []int{16, 8, 4, 2}},
		{"all", 16, 32, full(16, 32), []int{16, 8, 4, 2}},
		{"top-left corner", 16, 32, one(16, 32, 0, 0), []int{16, 8, 4}},
		{"bottom-right corner", 16, 32, one(16, 32, 15, 31), []int{16, 8, 4}},
		{"right edge", 16, 32, one(16, 32, 7, 31), []int{16, 8}},
		{"sparse random", 16, 32, random(16, 32, 0.05), []int{16, 8, 4, 2, 1}},
		{"dense random", 16, 32, random(16, 32, 0.7), []int{16, 8, 4, 2}},
		{"one row", 1, 40, random(1, 40, 0.2), []int{1}},
		{"one column", 30, 1, random(30, 1, 0.2), []int{30, 15}},
		{"non-integer ratios", 10, 14, random(10, 14, 0.3), []int{4, 3, 7}},
		{"upsampling", 5, 6, random(5, 6, 0.4), []int{9, 11}},
	}
	for _, tt := range tests {
		var specs []Table
		for _, gh := range tt.gh {
			gw := max(1, tt.w*gh/tt.h)
			specs = append(specs, Table{Height: gh, Width: gw})
			for radius := range 4 {
				specs = append(specs, Table{Height: gh, Width: gw, Band: true, Radius: radius})
			}
		}
		tb := NewTables(tt.h, tt.w, specs)
		dst := make([][]int64, len(specs))
		for k, s := range specs {
			dst[k] = make([]int64, s.Height*s.Width)
		}
		lens := make([]int, len(specs))
		for range 2 { // a second build reuses the buffers
			tb.Build(tt.mask, dst, lens)
		}
		for k, s := range specs {
			t.Run(fmt.Sprintf("%s/%dx%d band=%v r=%d", tt.name, s.Height, s.Width, s.Band, s.Radius), func(t *testing.T) {
				want := naiveTable(tt.mask, tt.h, tt.w, s)
				if got := dst[k][:lens[k]]; !slices.Equal(got, want) {
					t.Errorf("got %v, want %v", got, want)
				}
			})
		}
	}
}

// w18Tables are the tables of one W18-Small stage at 512×1024: an index and
// a band at each of the four strides, over the 128×256 exit map.
func w18Tables() (h, w int, specs []Table) {
	h, w = 128, 256
	for _, div := range []int{1, 2, 4, 8} {
		specs = append(specs, Table{Height: h / div, Width: w / div}, Table{Height: h / div, Width: w / div, Band: true, Radius: 2})
	}
	return h, w, specs
}

// w18Build returns one frame's Build of the w18Tables, into buffers made
// once, from a clustered mask with half the pixels computed.
func w18Build(t testing.TB) func() {
	h, w, specs := w18Tables()
	tb := NewTables(h, w, specs)
	dst, lens := make([][]int64, len(specs)), make([]int, len(specs))
	for k, s := range specs {
		dst[k] = make([]int64, s.Height*s.Width)
	}
	masks, err := Synthetic(h, w, []float64{0.5}, 1)
	if err != nil {
		t.Fatal(err)
	}
	return func() { tb.Build(masks[0], dst, lens) }
}

func TestTablesBuildDoesNotAllocate(t *testing.T) {
	build := w18Build(t)
	if n := testing.AllocsPerRun(20, build); n != 0 {
		t.Errorf("Build allocates %.0f times per frame, want 0", n)
	}
}

// BenchmarkTables builds the tables of one W18-Small stage at 512×1024
// (four strides, an index and a radius-2 band each) from a clustered mask
// with half the pixels computed.
func BenchmarkTables(b *testing.B) {
	build := w18Build(b)
	b.ReportAllocs()
	for b.Loop() {
		build()
	}
}

func TestSyntheticMasks(t *testing.T) {
	h, w := 64, 128
	fractions := []float64{0.82, 0.63, 0.38, 0}
	masks, err := Synthetic(h, w, fractions, 1)
	if err != nil {
		t.Fatal(err)
	}
	for k, m := range masks {
		if got, want := Fraction(m), float64(int(fractions[k]*float64(h*w)+0.5))/float64(h*w); got != want {
			t.Errorf("mask %d: fraction %v, want %v", k, got, want)
		}
		if k > 0 {
			for p := range m {
				if m[p] > masks[k-1][p] {
					t.Fatalf("mask %d computes pixel %d that mask %d froze", k, p, k-1)
				}
			}
		}
	}
	// Clustered: far fewer computed/frozen neighbour pairs than an
	// independent mask of the same fraction (2·a·(1−a) of all pairs).
	m := masks[2]
	edges, pairs := 0, 0
	for y := range h {
		for x := range w - 1 {
			pairs++
			if m[y*w+x] != m[y*w+x+1] {
				edges++
			}
		}
	}
	a := Fraction(m)
	if got, independent := float64(edges)/float64(pairs), 2*a*(1-a); got > independent/4 {
		t.Errorf("boundary pairs %.3f of all, want clustered (≤ a quarter of %.3f)", got, independent)
	}
	again, _ := Synthetic(h, w, fractions, 1)
	other, _ := Synthetic(h, w, fractions, 2)
	if !slices.Equal(again[2], masks[2]) || slices.Equal(other[2], masks[2]) {
		t.Error("the masks do not follow the seed")
	}
	for _, bad := range [][]float64{{0.3, 0.5}, {1.2}, {-0.1}} {
		if _, err := Synthetic(h, w, bad, 1); err == nil {
			t.Errorf("fractions %v accepted", bad)
		}
	}
}
