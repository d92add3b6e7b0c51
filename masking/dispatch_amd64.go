//go:build goexperiment.simd && amd64

package masking

import "simd/archsimd"

// Accelerated names the vector path in use.
var Accelerated = func() string {
	if useAVX2 {
		return "avx2+fma"
	}
	return "none"
}()

var useAVX2 = archsimd.X86.AVX2() && archsimd.X86.FMA()

func rowMax(dst, row []float32) {
	if !useAVX2 {
		rowMaxScalar(dst, row)
		return
	}
	n := len(row) &^ 7
	dst = dst[:len(row)]
	for p := 0; p < n; p += 8 {
		a := archsimd.LoadFloat32x8Slice(dst[p:])
		a.Max(archsimd.LoadFloat32x8Slice(row[p:])).StoreSlice(dst[p:])
	}
	rowMaxScalar(dst[n:], row[n:])
}

// expAccumulate is expAccumulateScalar eight lanes at a time, with the
// same range reduction (rounding k to even instead of half down) and
// polynomial.
func expAccumulate(sum, maxv, row []float32) {
	if !useAVX2 {
		expAccumulateScalar(sum, maxv, row)
		return
	}
	k := newExpConsts()
	n := len(row) &^ 7
	sum8 := sum[:len(row)]
	maxv8 := maxv[:len(row)]
	for p := 0; p < n; p += 8 {
		e := k.exp(archsimd.LoadFloat32x8Slice(row[p:]), archsimd.LoadFloat32x8Slice(maxv8[p:]))
		archsimd.LoadFloat32x8Slice(sum8[p:]).Add(e).StoreSlice(sum8[p:])
	}
	expAccumulateScalar(sum8[n:], maxv8[n:], row[n:])
}

// expConsts are the broadcast constants of the vector exponential.
type expConsts struct {
	lo, l2e, negHi, negLo, c6, c5, c4, c3, c2, one archsimd.Float32x8
}

func newExpConsts() expConsts {
	b := archsimd.BroadcastFloat32x8
	return expConsts{
		lo: b(clampExp), l2e: b(log2e), negHi: b(-ln2hi), negLo: b(-ln2lo),
		c6: b(1.0 / 720), c5: b(1.0 / 120), c4: b(1.0 / 24), c3: b(1.0 / 6), c2: b(0.5), one: b(1),
	}
}

// exp is e^max(x − m, −17) in each lane: exp32's range reduction (rounding
// k to even) and polynomial.
func (k *expConsts) exp(x, m archsimd.Float32x8) archsimd.Float32x8 {
	d := x.Sub(m).Max(k.lo)
	n := d.Mul(k.l2e).RoundToEven()
	r := n.MulAdd(k.negHi, d)
	r = n.MulAdd(k.negLo, r)
	e := r.MulAdd(k.c6, k.c5)
	e = e.MulAdd(r, k.c4)
	e = e.MulAdd(r, k.c3)
	e = e.MulAdd(r, k.c2)
	e = e.MulAdd(r, k.one)
	e = e.MulAdd(r, k.one)
	return e.AsInt32x8().Add(n.ConvertToInt32().ShiftAllLeft(23)).AsFloat32x8()
}

func rowSelect(dst, src, mask []float32) {
	if !useAVX2 {
		rowSelectScalar(dst, src, mask)
		return
	}
	n := len(mask) &^ 7
	dst = dst[:len(mask)]
	src = src[:len(mask)]
	zero := archsimd.BroadcastFloat32x8(0)
	for p := 0; p < n; p += 8 {
		computed := archsimd.LoadFloat32x8Slice(mask[p:]).NotEqual(zero)
		s := archsimd.LoadFloat32x8Slice(src[p:])
		s.Merge(archsimd.LoadFloat32x8Slice(dst[p:]), computed).StoreSlice(dst[p:])
	}
	rowSelectScalar(dst[n:], src[n:], mask[n:])
}

func nonFinite(x []float32) float32 {
	if !useAVX2 {
		return nonFiniteScalar(x)
	}
	n := len(x) &^ 7
	acc := archsimd.BroadcastFloat32x8(0)
	for p := 0; p < n; p += 8 {
		v := archsimd.LoadFloat32x8Slice(x[p:])
		acc = acc.Add(v.Sub(v))
	}
	var lanes [8]float32
	acc.Store(&lanes)
	return nonFiniteScalar(lanes[:]) + nonFiniteScalar(x[n:])
}

// softmaxColumns computes max-softmax confidence for pixels [t0, t1)
// sixteen at a time with every channel of those pixels in registers: the
// maximum, then the sum of exponentials, with no pass through memory in
// between. Without AVX2, or for a tile that is not a whole number of
// eight-pixel groups, it reports false and leaves the work to the caller.
func softmaxColumns(conf, x []float32, hw, channels, t0, t1 int) bool {
	if !useAVX2 || (t1-t0)%8 != 0 {
		return false
	}
	k := newExpConsts()
	_ = x[(channels-1)*hw+t1-1]
	p := t0
	for ; p+16 <= t1; p += 16 {
		m0 := archsimd.LoadFloat32x8Slice(x[p:])
		m1 := archsimd.LoadFloat32x8Slice(x[p+8:])
		for c := 1; c < channels; c++ {
			m0 = m0.Max(archsimd.LoadFloat32x8Slice(x[c*hw+p:]))
			m1 = m1.Max(archsimd.LoadFloat32x8Slice(x[c*hw+p+8:]))
		}
		s0 := archsimd.BroadcastFloat32x8(0)
		s1 := s0
		for c := 0; c < channels; c++ {
			s0 = s0.Add(k.exp(archsimd.LoadFloat32x8Slice(x[c*hw+p:]), m0))
			s1 = s1.Add(k.exp(archsimd.LoadFloat32x8Slice(x[c*hw+p+8:]), m1))
		}
		k.one.Div(s0).StoreSlice(conf[p:])
		k.one.Div(s1).StoreSlice(conf[p+8:])
	}
	for ; p < t1; p += 8 {
		m := archsimd.LoadFloat32x8Slice(x[p:])
		for c := 1; c < channels; c++ {
			m = m.Max(archsimd.LoadFloat32x8Slice(x[c*hw+p:]))
		}
		sum := archsimd.BroadcastFloat32x8(0)
		for c := 0; c < channels; c++ {
			sum = sum.Add(k.exp(archsimd.LoadFloat32x8Slice(x[c*hw+p:]), m))
		}
		k.one.Div(sum).StoreSlice(conf[p:])
	}
	return true
}
