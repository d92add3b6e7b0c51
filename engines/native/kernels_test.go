//go:build cgo

package native

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
)

// sentinel marks values a kernel must not touch.
const sentinel = 7777

// view is a test map: a C-channel view at channel offset off of a buffer
// with ld floats per pixel, the rest of the buffer set to sentinel.
type view struct {
	Map
	buf []float32
	off int
}

// forEachVariant runs test once per kernel variant this CPU runs.
func forEachVariant(t *testing.T, test func(t *testing.T)) {
	for name, v := range variants() {
		t.Run(name, func(t *testing.T) {
			defer useVariant(v)()
			test(t)
		})
	}
}

func newView(h, w, c, off, ld int) view {
	buf := make([]float32, h*w*ld)
	for i := range buf {
		buf[i] = sentinel
	}
	return view{Map: Map{Data: buf[off:], H: h, W: w, C: c, LD: ld}, buf: buf, off: off}
}

// at is channel ch of pixel p.
func (v view) at(p, ch int) float32 { return v.buf[p*v.LD+v.off+ch] }

func (v view) set(p, ch int, x float32) { v.buf[p*v.LD+v.off+ch] = x }

// randomize sets every pixel's channels to values in [-1, 1).
func (v view) randomize(r *rand.Rand) {
	for p := 0; p < v.H*v.W; p++ {
		for ch := 0; ch < v.C; ch++ {
			v.set(p, ch, 2*r.Float32()-1)
		}
	}
}

// untouched fails unless every value outside the view's channels, and every
// channel of the pixels not in written, still holds sentinel.
func (v view) untouched(t *testing.T, written map[int]bool) {
	t.Helper()
	for p := 0; p < v.H*v.W; p++ {
		for k := 0; k < v.LD; k++ {
			inView := k >= v.off && k < v.off+v.C
			if (!inView || !written[p]) && v.buf[p*v.LD+k] != sentinel {
				t.Fatalf("pixel %d slot %d = %v, want untouched", p, k, v.buf[p*v.LD+k])
			}
		}
	}
}

func randomSlice(r *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = 2*r.Float32() - 1
	}
	return s
}

// close reports whether got is within float32 rounding of want, the sum of
// terms whose magnitudes add up to scale.
func close(got float32, want, scale float64) bool {
	return math.Abs(float64(got)-want) <= 1e-5*(scale+1)
}

// refConv is conv2d (zero padding k/2) at output pixel (i, j), channel o,
// in float64, with the magnitude of its terms.
func refConv(src view, weight, scale, bias []float32, cin, k, stride, i, j, o int) (float64, float64) {
	sum, mag := 0.0, 0.0
	for c := 0; c < cin; c++ {
		for ky := 0; ky < k; ky++ {
			for kx := 0; kx < k; kx++ {
				y, x := i*stride-k/2+ky, j*stride-k/2+kx
				if y < 0 || y >= src.H || x < 0 || x >= src.W {
					continue
				}
				term := float64(weight[((o*cin+c)*k+ky)*k+kx]) * float64(src.at(y*src.W+x, c))
				sum += term
				mag += math.Abs(term)
			}
		}
	}
	s, b := 1.0, 0.0
	if scale != nil {
		s = float64(scale[o])
	}
	if bias != nil {
		b = float64(bias[o])
	}
	return s*sum + b, math.Abs(s)*mag + math.Abs(b)
}

func TestConvRows(t *testing.T) {
	cases := []struct {
		cin, cout, k, stride, h, w int
		affine                     bool
	}{
		{1, 1, 3, 1, 5, 7, false},
		{3, 5, 3, 1, 6, 9, true},
		{18, 18, 3, 1, 8, 16, true},
		{17, 33, 3, 1, 7, 5, true},
		{36, 50, 3, 1, 4, 12, true},
		{8, 16, 3, 2, 10, 14, true},
		{18, 36, 3, 2, 8, 8, true},
		{13, 7, 3, 2, 2, 2, false},
		{6, 10, 3, 2, 7, 9, true}, // odd sizes: ceil(7/2) x ceil(9/2) outputs
		{40, 72, 1, 1, 6, 10, true},
		{5, 3, 1, 1, 3, 3, false},
		{70, 19, 1, 1, 4, 8, true},
		{9, 20, 1, 2, 6, 8, true},
		{8, 5, 1, 2, 5, 7, false},
		{64, 48, 3, 1, 1, 1, true},
		{100, 200, 3, 1, 3, 4, true},
	}
	r := rand.New(rand.NewPCG(1, 2))
	vs := variants()
	if len(vs) == 0 {
		t.Fatal("no kernel variant runs on this CPU")
	}
	t.Logf("variants: %v", vs)
	for _, tc := range cases {
		for _, frac := range []float64{1, 0.4, 0.05} {
			// A whole input map (its 3x3 tap rows are contiguous) and a
			// channel slice of a wider one.
			for _, srcOff := range []int{0, 3} {
				for vname, v := range vs {
					name := fmt.Sprintf("%s/%dto%d_k%d_s%d_%dx%d_at%.2f_off%d", vname, tc.cin, tc.cout, tc.k, tc.stride, tc.h, tc.w, frac, srcOff)
					t.Run(name, func(t *testing.T) {
						weight := randomSlice(r, tc.cout*tc.cin*tc.k*tc.k)
						var scale, bias []float32
						if tc.affine {
							scale, bias = randomSlice(r, tc.cout), randomSlice(r, tc.cout)
						}
						conv := newConv(v, weight, tc.cout, tc.cin, tc.k, tc.stride, scale, bias)
						src := newView(tc.h, tc.w, tc.cin, srcOff, tc.cin+2*srcOff)
						src.randomize(r)
						oh, ow := (tc.h+tc.stride-1)/tc.stride, (tc.w+tc.stride-1)/tc.stride
						dst := newView(oh, ow, tc.cout, 1, tc.cout+2)
						var rows []int64
						written := map[int]bool{}
						for p := 0; p < oh*ow; p++ {
							if r.Float64() < frac || p == 0 || p == oh*ow-1 { // the corners always
								rows = append(rows, int64(p))
								written[p] = true
							}
						}
						conv.Rows(dst.Map, src.Map, rows)
						for _, p := range rows {
							i, j := int(p)/ow, int(p)%ow
							for o := 0; o < tc.cout; o++ {
								want, mag := refConv(src, weight, scale, bias, tc.cin, tc.k, tc.stride, i, j, o)
								if got := dst.at(int(p), o); !close(got, want, mag) {
									t.Fatalf("pixel (%d, %d) channel %d = %v, want %v", i, j, o, got, want)
								}
							}
						}
						dst.untouched(t, written)
					})
				}
			}
		}
	}
}

// RowsEpilogue stores exactly what Rows then Epilogue (at Computed pixels)
// store, bit for bit, in every variant: paired and unpaired packings, a
// partial last vector, residuals that are channel views of wider maps.
func TestConvRowsEpilogue(t *testing.T) {
	cases := []struct{ cin, cout, k, stride, h, w int }{
		{18, 18, 3, 1, 8, 16}, // paired where the vectors hold 16
		{48, 48, 3, 1, 6, 10},
		{17, 33, 3, 1, 7, 5}, // odd input channels: unpaired, a partial last vector
		{36, 50, 3, 1, 4, 12},
		{48, 96, 3, 2, 8, 12},
		{40, 72, 1, 1, 6, 10},
		{6, 10, 3, 2, 7, 9},
	}
	r := rand.New(rand.NewPCG(11, 12))
	for _, tc := range cases {
		for vname, v := range variants() {
			for _, withRes := range []bool{false, true} {
				for _, relu := range []bool{false, true} {
					name := fmt.Sprintf("%s/%dto%d_k%d_s%d/res=%v_relu=%v", vname, tc.cin, tc.cout, tc.k, tc.stride, withRes, relu)
					t.Run(name, func(t *testing.T) {
						conv := newConv(v, randomSlice(r, tc.cout*tc.cin*tc.k*tc.k), tc.cout, tc.cin, tc.k, tc.stride,
							randomSlice(r, tc.cout), randomSlice(r, tc.cout))
						src := newView(tc.h, tc.w, tc.cin, 0, tc.cin)
						src.randomize(r)
						oh, ow := (tc.h+tc.stride-1)/tc.stride, (tc.w+tc.stride-1)/tc.stride
						var res *Map
						if withRes {
							rv := newView(oh, ow, tc.cout, 2, tc.cout+3)
							rv.randomize(r)
							res = &rv.Map
						}
						var rows []int64
						written := map[int]bool{}
						for p := 0; p < oh*ow; p++ {
							if r.Float64() < 0.6 || p == 0 || p == oh*ow-1 {
								rows = append(rows, int64(p))
								written[p] = true
							}
						}
						class := slices.Repeat([]uint8{Computed}, oh*ow)
						shift := randomSlice(r, tc.cout)
						want := newView(oh, ow, tc.cout, 1, tc.cout+2)
						conv.Rows(want.Map, src.Map, rows)
						for _, p := range rows {
							Epilogue(want.Map, class, shift, res, relu, int(p), int(p)+1)
						}
						got := newView(oh, ow, tc.cout, 1, tc.cout+2)
						conv.RowsEpilogue(got.Map, src.Map, res, relu, rows)
						for p := range oh * ow {
							for ch := range tc.cout {
								if g, w := got.at(p, ch), want.at(p, ch); g != w && !(math.IsNaN(float64(g)) && math.IsNaN(float64(w))) {
									t.Fatalf("pixel %d channel %d = %v, want %v (Rows then Epilogue)", p, ch, g, w)
								}
							}
						}
						got.untouched(t, written)
						if relu {
							for _, p := range rows {
								for ch := range tc.cout {
									if got.at(int(p), ch) < 0 {
										t.Fatalf("pixel %d channel %d = %v after ReLU", p, ch, got.at(int(p), ch))
									}
								}
							}
						}
					})
				}
			}
		}
	}
}

// Rows on unsorted, repeated and split row lists writes the same values.
func TestConvRowsOrderAndSplit(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	const cin, cout, h, w = 20, 24, 9, 11
	conv := NewConv(randomSlice(r, cout*cin*9), cout, cin, 3, 1, nil, randomSlice(r, cout))
	src := newView(h, w, cin, 0, cin)
	src.randomize(r)
	all := make([]int64, h*w)
	for p := range all {
		all[p] = int64(p)
	}
	want := newView(h, w, cout, 0, cout)
	conv.Rows(want.Map, src.Map, all)

	got := newView(h, w, cout, 0, cout)
	shuffled := slices.Clone(all)
	r.Shuffle(len(shuffled), func(a, b int) { shuffled[a], shuffled[b] = shuffled[b], shuffled[a] })
	var wg sync.WaitGroup
	for part := range 4 { // concurrent calls on disjoint rows
		wg.Go(func() { conv.Rows(got.Map, src.Map, shuffled[part*len(all)/4:(part+1)*len(all)/4]) })
	}
	wg.Wait()
	conv.Rows(got.Map, src.Map, shuffled[:5]) // again: the same values
	if !slices.Equal(got.buf, want.buf) {
		t.Fatal("rows computed shuffled, split and concurrently differ from one in-order call")
	}
}

// The kernels run per op of every frame: none allocates.
func TestKernelsAllocationFree(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	conv := NewConv(randomSlice(r, 16*16*9), 16, 16, 3, 1, nil, nil)
	src, dst, half := newView(8, 8, 16, 0, 16), newView(8, 8, 16, 0, 16), newView(4, 4, 16, 0, 16)
	res := newView(8, 8, 16, 0, 16)
	rows := []int64{0, 9, 63}
	class := make([]uint8, 64)
	class[9] = Computed
	shift := make([]float32, 16)
	taps, band := []Tap{{DY: 0, DX: -1, W: 0.5}}, []int64{10}
	planes := make([]float32, 64*16)
	for name, f := range map[string]func(){
		"Rows":     func() { conv.Rows(dst.Map, src.Map, rows) },
		"RowsEpi":  func() { conv.RowsEpilogue(dst.Map, src.Map, &res.Map, true, rows) },
		"Fill":     func() { Fill(dst.Map, class, shift, taps, band) },
		"Epilogue": func() { Epilogue(dst.Map, class, shift, &src.Map, true, 0, 64) },
		"Resample": func() { Resample(dst.Map, half.Map, 2, true, true, 0, 8) },
		"AvgPool":  func() { AvgPool(half.Map, src.Map, 0, 4) },
		"FromNCHW": func() { FromNCHW(dst.Map, planes, 0, 64) },
		"ToNCHW":   func() { ToNCHW(planes, dst.Map, 0, 64) },
	} {
		if n := testing.AllocsPerRun(10, f); n != 0 {
			t.Errorf("%s allocates %v times per call", name, n)
		}
	}
}

func TestFill(t *testing.T) { forEachVariant(t, testFill) }

func testFill(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for _, tc := range []struct{ h, w, c, radius int }{{9, 13, 5, 3}, {16, 8, 18, 1}, {5, 5, 33, 2}, {1, 1, 4, 3}, {12, 14, 70, 6}, {20, 20, 3, 9}} {
		t.Run(fmt.Sprintf("%dx%dx%d_r%d", tc.h, tc.w, tc.c, tc.radius), func(t *testing.T) {
			dst := newView(tc.h, tc.w, tc.c, 2, tc.c+3)
			class := make([]uint8, tc.h*tc.w)
			for p := range class {
				class[p] = uint8(r.IntN(3))
			}
			var band []int64
			for p, k := range class {
				if k == Computed {
					for ch := 0; ch < tc.c; ch++ {
						dst.set(p, ch, 2*r.Float32()-1)
					}
				}
				if k == Band {
					band = append(band, int64(p))
				}
			}
			shift := randomSlice(r, tc.c)
			var taps []Tap // a full square, crossing the border at every edge pixel
			for dy := -tc.radius; dy <= tc.radius; dy++ {
				for dx := -tc.radius; dx <= tc.radius; dx++ {
					taps = append(taps, Tap{DY: int32(dy), DX: int32(dx), W: r.Float32()})
				}
			}
			before := slices.Clone(dst.buf)
			Fill(dst.Map, class, shift, taps, band)
			for p, k := range class {
				i, j := p/tc.w, p%tc.w
				for ch := 0; ch < tc.c; ch++ {
					if k != Band {
						if got, want := dst.at(p, ch), before[p*dst.LD+dst.off+ch]; got != want {
							t.Fatalf("class %d pixel %d channel %d = %v, was %v: not a band pixel", k, p, ch, got, want)
						}
						continue
					}
					want, mag := float64(shift[ch]), math.Abs(float64(shift[ch]))
					for _, tp := range taps {
						y, x := i+int(tp.DY), j+int(tp.DX)
						if y < 0 || y >= tc.h || x < 0 || x >= tc.w || class[y*tc.w+x] != Computed {
							continue
						}
						term := float64(tp.W) * (float64(before[(y*tc.w+x)*dst.LD+dst.off+ch]) - float64(shift[ch]))
						want += term
						mag += math.Abs(term)
					}
					if got := dst.at(p, ch); !close(got, want, mag) {
						t.Fatalf("band pixel (%d, %d) channel %d = %v, want %v", i, j, ch, got, want)
					}
				}
			}
			for p := 0; p < tc.h*tc.w; p++ { // the other slots of the wider map
				for k := 0; k < dst.LD; k++ {
					if (k < dst.off || k >= dst.off+dst.C) && dst.buf[p*dst.LD+k] != sentinel {
						t.Fatalf("pixel %d slot %d outside the view was written", p, k)
					}
				}
			}
		})
	}
}

func TestEpilogue(t *testing.T) { forEachVariant(t, testEpilogue) }

func testEpilogue(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	const h, w, c = 6, 7, 21
	for _, withRes := range []bool{false, true} {
		for _, relu := range []bool{false, true} {
			t.Run(fmt.Sprintf("res=%v_relu=%v", withRes, relu), func(t *testing.T) {
				dst := newView(h, w, c, 4, c+4)
				dst.randomize(r)
				class := make([]uint8, h*w)
				for p := range class {
					class[p] = uint8(r.IntN(3))
				}
				shift := randomSlice(r, c)
				var res *Map
				resView := newView(h, w, c, 1, c+1)
				resView.randomize(r)
				if withRes {
					res = &resView.Map
				}
				before := slices.Clone(dst.buf)
				p0, p1 := 3, h*w-2
				Epilogue(dst.Map, class, shift, res, relu, p0, p1)
				written := map[int]bool{}
				for p := 0; p < h*w; p++ {
					written[p] = true
					for ch := 0; ch < c; ch++ {
						want := before[p*dst.LD+dst.off+ch]
						if p >= p0 && p < p1 {
							if class[p] == Far {
								want = shift[ch]
							}
							if withRes {
								want += resView.at(p, ch)
							}
							if relu {
								want = max(want, 0)
							}
						}
						if got := dst.at(p, ch); got != want {
							t.Fatalf("pixel %d (class %d) channel %d = %v, want %v", p, class[p], ch, got, want)
						}
					}
				}
				dst.untouched(t, written)
			})
		}
	}
}

// refResample is PyTorch's bilinear upsampling (align_corners=False, scale
// factor f) at (y, x), channel ch, in float32 as PyTorch computes it.
func refResample(src view, f, y, x, ch int) float32 {
	index := func(d, n int) (int, int, float32) {
		s := max((float32(d)+0.5)/float32(f)-0.5, 0)
		i0 := int(s)
		return i0, min(i0+1, n-1), s - float32(i0)
	}
	h0, h1, hl := index(y, src.H)
	w0, w1, wl := index(x, src.W)
	v := func(i, j int) float32 { return src.at(i*src.W+j, ch) }
	return (1-hl)*((1-wl)*v(h0, w0)+wl*v(h0, w1)) + hl*((1-wl)*v(h1, w0)+wl*v(h1, w1))
}

// TestResampleMatchesPyTorch pins the rule to values PyTorch printed for
// F.interpolate(x, scale_factor=f, mode="bilinear", align_corners=False).
func TestResampleMatchesPyTorch(t *testing.T) { forEachVariant(t, testResampleMatchesPyTorch) }

func testResampleMatchesPyTorch(t *testing.T) {
	src := newView(2, 2, 1, 0, 1)
	for p, v := range []float32{1, 2, 3, 4} {
		src.set(p, 0, v)
	}
	dst := newView(4, 4, 1, 0, 1)
	Resample(dst.Map, src.Map, 2, false, false, 0, 4)
	want := []float32{1, 1.25, 1.75, 2, 1.5, 1.75, 2.25, 2.5, 2.5, 2.75, 3.25, 3.5, 3, 3.25, 3.75, 4}
	if !slices.Equal(dst.buf, want) {
		t.Errorf("x2 = %v, want %v", dst.buf, want)
	}
	src = newView(2, 3, 1, 0, 1)
	for p := range 6 {
		src.set(p, 0, float32(p))
	}
	dst = newView(8, 12, 1, 0, 1)
	Resample(dst.Map, src.Map, 4, false, false, 0, 8)
	wantRows := map[int][]float32{ // the first six columns of rows 0, 2 and 7
		0: {0, 0, 0.125, 0.375, 0.625, 0.875},
		2: {0.375, 0.375, 0.5, 0.75, 1, 1.25},
		7: {3, 3, 3.125, 3.375, 3.625, 3.875},
	}
	for y, want := range wantRows {
		if got := dst.buf[y*12 : y*12+6]; !slices.Equal(got, want) {
			t.Errorf("x4 row %d = %v, want %v", y, got, want)
		}
	}
}

func TestResample(t *testing.T) { forEachVariant(t, testResample) }

func testResample(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	for _, f := range []int{1, 2, 4, 8} {
		for _, mode := range []struct{ accumulate, relu bool }{{false, false}, {true, false}, {true, true}, {false, true}} {
			t.Run(fmt.Sprintf("x%d_acc=%v_relu=%v", f, mode.accumulate, mode.relu), func(t *testing.T) {
				const sh, sw, c = 3, 5, 19
				src := newView(sh, sw, c, 2, c+2)
				src.randomize(r)
				dst := newView(sh*f, sw*f, c, 1, c+3)
				dst.randomize(r)
				before := slices.Clone(dst.buf)
				y0, y1 := 1, sh*f-1
				if f == 1 {
					y0 = 0
				}
				mid := (y0 + y1) / 2 // two calls cover the range
				Resample(dst.Map, src.Map, f, mode.accumulate, mode.relu, y0, mid)
				Resample(dst.Map, src.Map, f, mode.accumulate, mode.relu, mid, y1)
				written := map[int]bool{}
				for y := 0; y < dst.H; y++ {
					for x := 0; x < dst.W; x++ {
						p := y*dst.W + x
						written[p] = true
						for ch := 0; ch < c; ch++ {
							want := before[p*dst.LD+dst.off+ch]
							if y >= y0 && y < y1 {
								v := refResample(src, f, y, x, ch)
								if mode.accumulate {
									v += want
								}
								if mode.relu {
									v = max(v, 0)
								}
								want = v
							}
							if got := dst.at(p, ch); math.Abs(float64(got-want)) > 1e-6 {
								t.Fatalf("(%d, %d) channel %d = %v, want %v", y, x, ch, got, want)
							}
						}
					}
				}
				dst.untouched(t, written)
			})
		}
	}
}

func TestAvgPool(t *testing.T) { forEachVariant(t, testAvgPool) }

func testAvgPool(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	const h, w, c = 6, 10, 37
	src := newView(h, w, c, 1, c+1)
	src.randomize(r)
	dst := newView(h/2, w/2, c, 3, c+3)
	AvgPool(dst.Map, src.Map, 1, 3)
	written := map[int]bool{}
	for y := 1; y < 3; y++ {
		for x := 0; x < w/2; x++ {
			written[y*(w/2)+x] = true
			for ch := 0; ch < c; ch++ {
				v := func(i, j int) float32 { return src.at(i*w+j, ch) }
				want := (v(2*y, 2*x) + v(2*y, 2*x+1) + v(2*y+1, 2*x) + v(2*y+1, 2*x+1)) / 4
				if got := dst.at(y*(w/2)+x, ch); math.Abs(float64(got-want)) > 1e-6 {
					t.Fatalf("(%d, %d) channel %d = %v, want %v", y, x, ch, got, want)
				}
			}
		}
	}
	dst.untouched(t, written)
}

func TestNCHW(t *testing.T) { forEachVariant(t, testNCHW) }

func testNCHW(t *testing.T) {
	r := rand.New(rand.NewPCG(15, 16))
	// 1073 pixels: past the split, two whole spans of the widest variant
	// (32 tiles of 16 pixels), single tiles and a scalar tail; 23 channels:
	// whole channel tiles and the rest.
	const h, w, c = 37, 29, 23
	planes := randomSlice(r, c*h*w)
	m := newView(h, w, c, 2, c+5)
	FromNCHW(m.Map, planes, 0, 17)
	FromNCHW(m.Map, planes, 17, h*w)
	written := map[int]bool{}
	for p := 0; p < h*w; p++ {
		written[p] = true
		for ch := 0; ch < c; ch++ {
			if got, want := m.at(p, ch), planes[ch*h*w+p]; got != want {
				t.Fatalf("FromNCHW pixel %d channel %d = %v, want %v", p, ch, got, want)
			}
		}
	}
	m.untouched(t, written)
	back := make([]float32, c*h*w)
	ToNCHW(back, m.Map, 0, 30)
	ToNCHW(back, m.Map, 30, h*w)
	if !slices.Equal(back, planes) {
		t.Error("ToNCHW(FromNCHW(x)) != x")
	}
}

func TestBadShapesPanic(t *testing.T) {
	r := rand.New(rand.NewPCG(17, 18))
	conv := NewConv(randomSlice(r, 4*3*9), 4, 3, 3, 2, nil, nil)
	src, dst := newView(8, 8, 3, 0, 3), newView(4, 4, 4, 0, 4)
	short := dst.Map
	short.Data = short.Data[:len(short.Data)-1]
	for name, f := range map[string]func(){
		"kernel 5":          func() { NewConv(make([]float32, 25), 1, 1, 5, 1, nil, nil) },
		"short weight":      func() { NewConv(make([]float32, 8), 1, 1, 3, 1, nil, nil) },
		"stride 3":          func() { NewConv(make([]float32, 9), 1, 1, 3, 3, nil, nil) },
		"row outside":       func() { conv.Rows(dst.Map, src.Map, []int64{16}) },
		"negative row":      func() { conv.Rows(dst.Map, src.Map, []int64{-1}) },
		"wrong grid":        func() { conv.Rows(src.Map, src.Map, []int64{0}) },
		"short data":        func() { conv.Rows(short, src.Map, []int64{0}) },
		"resample factor 3": func() { Resample(dst.Map, dst.Map, 3, false, false, 0, 1) },
		"avgpool rows":      func() { AvgPool(dst.Map, src.Map, 0, 5) },
		"fill band outside": func() { Fill(dst.Map, make([]uint8, 16), make([]float32, 4), nil, []int64{99}) },
		"epilogue classes":  func() { Epilogue(dst.Map, make([]uint8, 15), make([]float32, 4), nil, false, 0, 1) },
		"nchw size":         func() { ToNCHW(make([]float32, 3), dst.Map, 0, 1) },
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			f()
		})
	}
}
