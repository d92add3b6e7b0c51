package masking

import "math"

// Confidence writes into conf the per-pixel confidence of logits ([C][len(conf)])
// under crit. scratch must be as long as conf. Logits must be finite (see
// Finite); the result for a pixel with NaN logits is unspecified.
func Confidence(conf, scratch, logits []float32, crit Criterion) {
	if crit == HeatmapPeak {
		channelMax(conf, logits)
		return
	}
	maxSoftmax(conf, scratch, logits)
}

// MergeConfidence is Merge followed by Confidence of the merged logits, done
// tile by tile so that each tile of merged logits is still in cache when its
// confidence is computed. mask is as in Merge (float32, 1 = computed). A
// tile with no computed pixel is skipped: its merged logits did not change,
// and its pixels, frozen already, stay frozen whatever their confidence, so
// conf is left as it was there.
func MergeConfidence(merged, logits, mask, conf, scratch []float32, crit Criterion) {
	hw := len(conf)
	channels := len(logits) / hw
	for t0 := 0; t0 < hw; t0 += tile {
		t1 := min(t0+tile, hw)
		if allZero(mask[t0:t1]) {
			continue
		}
		for c := 0; c < channels; c++ {
			rowSelect(merged[c*hw+t0:c*hw+t1], logits[c*hw+t0:c*hw+t1], mask[t0:t1])
		}
		confidenceTile(conf, scratch, merged, hw, t0, t1, crit)
	}
}

// tile is the number of pixels processed together: small enough that all
// channels of a tile stay in cache between passes.
const tile = 2048

// maxSoftmax writes into conf[p] the largest softmax probability over the
// channels of logits at pixel p. sum is scratch of len(conf). It is
// numerically stable: the per-pixel maximum is subtracted before
// exponentiation.
func maxSoftmax(conf, sum, logits []float32) {
	hw := len(conf)
	for t0 := 0; t0 < hw; t0 += tile {
		confidenceTile(conf, sum, logits, hw, t0, min(t0+tile, hw), MaxSoftmax)
	}
}

// confidenceTile computes the confidence of pixels [t0, t1) of x
// ([C][hw]) into conf, using scratch.
func confidenceTile(conf, scratch, x []float32, hw, t0, t1 int, crit Criterion) {
	channels := len(x) / hw
	if crit == MaxSoftmax && softmaxColumns(conf, x, hw, channels, t0, t1) {
		return
	}
	maxv := conf[t0:t1] // for max_softmax, conf holds the maximum until the last pass
	copy(maxv, x[t0:t1])
	for c := 1; c < channels; c++ {
		rowMax(maxv, x[c*hw+t0:c*hw+t1])
	}
	if crit == HeatmapPeak {
		return
	}
	s := scratch[t0:t1]
	clear(s)
	for c := 0; c < channels; c++ {
		expAccumulate(s, maxv, x[c*hw+t0:c*hw+t1])
	}
	for p := range s {
		maxv[p] = 1 / s[p]
	}
}

// channelMax writes into dst[p] the largest value over the channels of x at
// pixel p.
func channelMax(dst, x []float32) {
	hw := len(dst)
	copy(dst, x[:hw])
	for c := 1; c < len(x)/hw; c++ {
		rowMax(dst, x[c*hw:(c+1)*hw])
	}
}

// clampExp is where exponentiation is cut off: e^d for d < -17 is below half
// an ulp of a softmax denominator (at least 1), so it cannot change the
// float32 result.
const clampExp = -17

// Constants of the exponential's range reduction: log2(e), and ln 2 split in
// a part exact in float32 and the rest.
const (
	log2e = 1.44269504088896341
	ln2hi = 0.693359375
	ln2lo = -2.12194440e-4
)

// rowMaxScalar sets dst[p] = max(dst[p], row[p]).
func rowMaxScalar(dst, row []float32) {
	dst = dst[:len(row)]
	for p, x := range row {
		dst[p] = max(dst[p], x)
	}
}

// expAccumulateScalar adds e^(row[p] − maxv[p]) to sum[p].
func expAccumulateScalar(sum, maxv, row []float32) {
	sum = sum[:len(row)]
	maxv = maxv[:len(row)]
	for p, x := range row {
		sum[p] += exp32(max(x-maxv[p], clampExp))
	}
}

// exp32 is e^x for x in [-17, 0], accurate to about 2 float32 ulps: the
// argument is split as x = k·ln2 + r with |r| ≤ ln2/2 and e^r comes from a
// degree-6 Taylor polynomial.
func exp32(x float32) float32 {
	k := float32(int32(x*log2e - 0.5))
	r := x - k*ln2hi - k*ln2lo
	p := float32(1.0/720)*r + 1.0/120
	p = p*r + 1.0/24
	p = p*r + 1.0/6
	p = p*r + 0.5
	p = p*r + 1
	p = p*r + 1
	return math.Float32frombits(math.Float32bits(p) + uint32(int32(k))<<23)
}

// Finite reports whether every value of x is finite (no NaN, no ±Inf).
func Finite(x []float32) bool { return nonFinite(x) == 0 }

// nonFiniteScalar is 0 when every value of x is finite and NaN otherwise.
func nonFiniteScalar(x []float32) float32 {
	var acc float32
	for _, v := range x {
		acc += v - v // 0 for finite v, NaN otherwise
	}
	return acc
}

// allZero reports whether every value of m is 0.
func allZero(m []float32) bool {
	for _, v := range m {
		if v != 0 {
			return false
		}
	}
	return true
}
