package masking

import (
	"math"
	"math/rand/v2"
	"testing"
)

func randomLogits(r *rand.Rand, channels, hw int, scale float64) []float32 {
	l := make([]float32, channels*hw)
	for i := range l {
		l[i] = float32(r.NormFloat64() * scale)
	}
	return l
}

func referenceMaxSoftmax(logits []float32, channels, hw, p int) float64 {
	m := math.Inf(-1)
	for c := 0; c < channels; c++ {
		m = math.Max(m, float64(logits[c*hw+p]))
	}
	s := 0.0
	for c := 0; c < channels; c++ {
		s += math.Exp(float64(logits[c*hw+p]) - m)
	}
	return 1 / s
}

func TestMaxSoftmaxMatchesFloat64(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, scale := range []float64{0.01, 1, 10, 1000} {
		const channels, hw = 19, 997
		logits := randomLogits(r, channels, hw, scale)
		conf, scratch := make([]float32, hw), make([]float32, hw)
		Confidence(conf, scratch, logits, MaxSoftmax)
		for p := range conf {
			want := referenceMaxSoftmax(logits, channels, hw, p)
			if d := math.Abs(float64(conf[p]) - want); d > 1e-6 {
				t.Fatalf("scale %g pixel %d: got %v, want %v", scale, p, conf[p], want)
			}
		}
	}
}

func TestUpdateNaNConfidenceKeepsComputing(t *testing.T) {
	conf := []float32{float32(math.NaN()), float32(math.NaN())}
	for _, crit := range []Criterion{MaxSoftmax, HeatmapPeak} {
		mask := []uint8{1, 1}
		if n := Update(mask, conf, crit, 0.5); n != 2 {
			t.Errorf("criterion %d: NaN confidence froze pixels: mask %v", crit, mask)
		}
	}
}

func TestHeatmapPeak(t *testing.T) {
	heat := []float32{0.1, 0.9, -1, 0.2, 0.3, 0.05} // 2 joints, 3 pixels
	conf := make([]float32, 3)
	Confidence(conf, nil, heat, HeatmapPeak)
	want := []float32{0.2, 0.9, -1 + 1.05}
	want[2] = 0.05
	for p := range conf {
		if conf[p] != want[p] {
			t.Errorf("pixel %d: got %v, want %v", p, conf[p], want[p])
		}
	}
	mask := []uint8{1, 1, 1}
	if n := Update(mask, conf, HeatmapPeak, 0.1); n != 2 || mask[2] != 0 {
		t.Errorf("peak ≤ threshold must freeze: got mask %v (%d active)", mask, n)
	}
}

func TestUpdateThresholds(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	const channels, hw = 19, 4096
	logits := randomLogits(r, channels, hw, 8)
	conf, scratch := make([]float32, hw), make([]float32, hw)
	Confidence(conf, scratch, logits, MaxSoftmax)
	tests := []struct {
		name       string
		threshold  float32
		wantActive func(int) bool
	}{
		{"threshold 1 freezes nothing", 1, func(n int) bool { return n == hw }},
		{"threshold above 1 freezes nothing", 1.5, func(n int) bool { return n == hw }},
		{"threshold below 1/C freezes everything", 1.0/channels - 1e-4, func(n int) bool { return n == 0 }},
		{"threshold 0.9 freezes some", 0.9, func(n int) bool { return n > 0 && n < hw }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mask := make([]uint8, hw)
			Fill(mask)
			n := Update(mask, conf, MaxSoftmax, tt.threshold)
			if !tt.wantActive(n) {
				t.Errorf("got %d of %d pixels active", n, hw)
			}
			if f := Fraction(mask); f != float64(n)/hw {
				t.Errorf("Fraction = %v, Update counted %d", f, n)
			}
		})
	}
}

func TestUpdateNeverGrows(t *testing.T) {
	mask := []uint8{0, 1, 0, 1}
	conf := []float32{0.1, 0.1, 0.1, 0.99}
	if n := Update(mask, conf, MaxSoftmax, 0.5); n != 1 {
		t.Errorf("got %d active, want 1", n)
	}
	want := []uint8{0, 1, 0, 0}
	for p := range mask {
		if mask[p] != want[p] {
			t.Fatalf("got mask %v, want %v", mask, want)
		}
	}
}

func TestMergeCopiesOnlyComputedPixels(t *testing.T) {
	merged := []float32{1, 2, 3, 4, 5, 6} // 2 channels, 3 pixels
	logits := []float32{10, 20, 30, 40, 50, 60}
	Merge(merged, logits, []float32{1, 0, 1})
	want := []float32{10, 2, 30, 40, 5, 60}
	for i := range merged {
		if merged[i] != want[i] {
			t.Fatalf("got %v, want %v", merged, want)
		}
	}
}

func TestResizedFractionNearest(t *testing.T) {
	// 4×4 mask, ones only in odd rows and columns: a ×2 nearest
	// downsample picks the top-left of each 2×2 cell and sees no one.
	mask := make([]uint8, 16)
	for y := 1; y < 4; y += 2 {
		for x := 1; x < 4; x += 2 {
			mask[y*4+x] = 1
		}
	}
	tests := []struct {
		outH, outW int
		want       float64
	}{
		{4, 4, 0.25},
		{2, 2, 0},
		{8, 8, 0.25},
		{1, 1, 0},
	}
	for _, tt := range tests {
		if got := ResizedFraction(mask, 4, 4, tt.outH, tt.outW); got != tt.want {
			t.Errorf("%dx%d: got %v, want %v", tt.outH, tt.outW, got, tt.want)
		}
	}
	mask[0] = 1
	if got := ResizedFraction(mask, 4, 4, 2, 2); got != 0.25 {
		t.Errorf("top-left one: got %v, want 0.25", got)
	}
}

func TestEffectiveMACs(t *testing.T) {
	m := MaskedConvs{Height: 8, Width: 16, MACs: 1000000, OutChannels: 10}
	tests := []struct {
		p, want float64
	}{
		{1, 1000000},
		{0, 0},
		// 1e6·0.5 + 0.5·0.5·10·49·128 = 500000 + 15680
		{0.5, 515680},
		// 1e6·0.25 + 0.75·0.25·10·49·128 = 250000 + 11760
		{0.25, 261760},
	}
	for _, tt := range tests {
		if got := m.Effective(tt.p); math.Abs(got-tt.want) > 1e-6 {
			t.Errorf("p=%v: got %v, want %v", tt.p, got, tt.want)
		}
	}
}

// frameBuffers are the buffers of one 19×256×512 exit.
type frameBuffers struct {
	logits, merged, conf, scratch []float32
	mask                          []uint8
	fmask                         []float32
}

func newFrameBuffers(channels, hw int) *frameBuffers {
	r := rand.New(rand.NewPCG(5, 6))
	return &frameBuffers{
		logits:  randomLogits(r, channels, hw, 4),
		merged:  randomLogits(r, channels, hw, 4),
		conf:    make([]float32, hw),
		scratch: make([]float32, hw),
		mask:    make([]uint8, hw),
		fmask:   make([]float32, hw),
	}
}

// step is the per-exit work of the executor: merge, confidence, mask.
func (b *frameBuffers) step() int {
	ToFloat(b.fmask, b.mask)
	MergeConfidence(b.merged, b.logits, b.fmask, b.conf, b.scratch, MaxSoftmax)
	return Update(b.mask, b.conf, MaxSoftmax, 0.998)
}

func TestMergeConfidenceSkipsFrozenTiles(t *testing.T) {
	const channels, hw = 3, 3 * tile
	b := newFrameBuffers(channels, hw)
	for p := tile; p < 2*tile; p++ {
		b.fmask[p] = 1 // only the middle tile computes
	}
	before := append([]float32(nil), b.merged...)
	for p := range b.conf {
		b.conf[p] = -1
	}
	MergeConfidence(b.merged, b.logits, b.fmask, b.conf, b.scratch, MaxSoftmax)
	for c := 0; c < channels; c++ {
		for p := 0; p < hw; p++ {
			i := c*hw + p
			want := before[i]
			if p >= tile && p < 2*tile {
				want = b.logits[i]
			}
			if b.merged[i] != want {
				t.Fatalf("channel %d pixel %d: merged %v, want %v", c, p, b.merged[i], want)
			}
		}
	}
	if b.conf[0] != -1 || b.conf[3*tile-1] != -1 || b.conf[tile] <= 0 {
		t.Errorf("frozen tiles were scored or the active one was not: %v %v %v", b.conf[0], b.conf[tile], b.conf[3*tile-1])
	}
}

func TestMergeConfidenceEqualsMergeThenConfidence(t *testing.T) {
	for _, crit := range []Criterion{MaxSoftmax, HeatmapPeak} {
		const channels, hw = 7, 5000 // more than two tiles, not a multiple of 8
		a, b := newFrameBuffers(channels, hw), newFrameBuffers(channels, hw)
		r := rand.New(rand.NewPCG(11, 12))
		for p := range a.fmask {
			a.fmask[p] = float32(r.IntN(2))
		}
		copy(b.fmask, a.fmask)
		MergeConfidence(a.merged, a.logits, a.fmask, a.conf, a.scratch, crit)
		Merge(b.merged, b.logits, b.fmask)
		Confidence(b.conf, b.scratch, b.merged, crit)
		for i := range a.merged {
			if math.Float32bits(a.merged[i]) != math.Float32bits(b.merged[i]) {
				t.Fatalf("criterion %d: merged differs at %d", crit, i)
			}
		}
		for p := range a.conf {
			if math.Float32bits(a.conf[p]) != math.Float32bits(b.conf[p]) {
				t.Fatalf("criterion %d: confidence differs at %d: %v vs %v", crit, p, a.conf[p], b.conf[p])
			}
		}
	}
}

func TestExitStepDoesNotAllocate(t *testing.T) {
	b := newFrameBuffers(19, 64*128)
	Fill(b.mask)
	if n := testing.AllocsPerRun(10, func() { Fill(b.mask); b.step() }); n != 0 {
		t.Errorf("merge+confidence+mask allocates %v times per exit, want 0", n)
	}
}

// BenchmarkExitStep measures merge + confidence + mask for the logits of a
// 1024×2048 frame at output stride 4 (19×256×512), every pixel active.
func BenchmarkExitStep(b *testing.B) {
	const channels, hw = 19, 256 * 512
	f := newFrameBuffers(channels, hw)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		Fill(f.mask)
		f.step()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/hw, "ns/pixel")
}

func TestFinite(t *testing.T) {
	for _, n := range []int{1, 7, 8, 9, 100} {
		x := make([]float32, n)
		if !Finite(x) {
			t.Fatalf("n=%d zeros: got not finite", n)
		}
		for _, bad := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
			for _, at := range []int{0, n - 1, n / 2} {
				clear(x)
				x[at] = float32(bad)
				if Finite(x) {
					t.Errorf("n=%d, %v at %d: got finite", n, bad, at)
				}
			}
		}
	}
}
