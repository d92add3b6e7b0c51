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

// expAccumulate is expAccumulateScalar eight lanes at a time, with the same
// range reduction (rounding k to even instead of half down) and polynomial.
func expAccumulate(sum, maxv, row []float32) {
	if !useAVX2 {
		expAccumulateScalar(sum, maxv, row)
		return
	}
	var (
		lo    = archsimd.BroadcastFloat32x8(clampExp)
		l2e   = archsimd.BroadcastFloat32x8(log2e)
		negHi = archsimd.BroadcastFloat32x8(-ln2hi)
		negLo = archsimd.BroadcastFloat32x8(-ln2lo)
		c6    = archsimd.BroadcastFloat32x8(1.0 / 720)
		c5    = archsimd.BroadcastFloat32x8(1.0 / 120)
		c4    = archsimd.BroadcastFloat32x8(1.0 / 24)
		c3    = archsimd.BroadcastFloat32x8(1.0 / 6)
		c2    = archsimd.BroadcastFloat32x8(0.5)
		one   = archsimd.BroadcastFloat32x8(1)
		n     = len(row) &^ 7
		sum8  = sum[:len(row)]
		maxv8 = maxv[:len(row)]
	)
	for p := 0; p < n; p += 8 {
		x := archsimd.LoadFloat32x8Slice(row[p:])
		d := x.Sub(archsimd.LoadFloat32x8Slice(maxv8[p:])).Max(lo)
		k := d.Mul(l2e).RoundToEven()
		r := k.MulAdd(negHi, d)
		r = k.MulAdd(negLo, r)
		e := r.MulAdd(c6, c5)
		e = e.MulAdd(r, c4)
		e = e.MulAdd(r, c3)
		e = e.MulAdd(r, c2)
		e = e.MulAdd(r, one)
		e = e.MulAdd(r, one)
		e = e.AsInt32x8().Add(k.ConvertToInt32().ShiftAllLeft(23)).AsFloat32x8()
		archsimd.LoadFloat32x8Slice(sum8[p:]).Add(e).StoreSlice(sum8[p:])
	}
	expAccumulateScalar(sum8[n:], maxv8[n:], row[n:])
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

// softmaxColumns computes max-softmax confidence for pixels [t0, t1) eight
// at a time with every channel of those pixels in registers: the maximum,
// then the sum of exponentials, with no pass through memory in between.
// It leaves a tail of fewer than eight pixels to the caller's loops by
// reporting false, and does nothing without AVX2.
func softmaxColumns(conf, x []float32, hw, channels, t0, t1 int) bool {
	if !useAVX2 || (t1-t0)%8 != 0 {
		return false
	}
	var (
		lo    = archsimd.BroadcastFloat32x8(clampExp)
		l2e   = archsimd.BroadcastFloat32x8(log2e)
		negHi = archsimd.BroadcastFloat32x8(-ln2hi)
		negLo = archsimd.BroadcastFloat32x8(-ln2lo)
		c6    = archsimd.BroadcastFloat32x8(1.0 / 720)
		c5    = archsimd.BroadcastFloat32x8(1.0 / 120)
		c4    = archsimd.BroadcastFloat32x8(1.0 / 24)
		c3    = archsimd.BroadcastFloat32x8(1.0 / 6)
		c2    = archsimd.BroadcastFloat32x8(0.5)
		one   = archsimd.BroadcastFloat32x8(1)
	)
	_ = x[(channels-1)*hw+t1-1]
	exp := func(d, m archsimd.Float32x8) archsimd.Float32x8 {
		d = d.Sub(m).Max(lo)
		k := d.Mul(l2e).RoundToEven()
		r := k.MulAdd(negHi, d)
		r = k.MulAdd(negLo, r)
		e := r.MulAdd(c6, c5)
		e = e.MulAdd(r, c4)
		e = e.MulAdd(r, c3)
		e = e.MulAdd(r, c2)
		e = e.MulAdd(r, one)
		e = e.MulAdd(r, one)
		return e.AsInt32x8().Add(k.ConvertToInt32().ShiftAllLeft(23)).AsFloat32x8()
	}
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
			s0 = s0.Add(exp(archsimd.LoadFloat32x8Slice(x[c*hw+p:]), m0))
			s1 = s1.Add(exp(archsimd.LoadFloat32x8Slice(x[c*hw+p+8:]), m1))
		}
		one.Div(s0).StoreSlice(conf[p:])
		one.Div(s1).StoreSlice(conf[p+8:])
	}
	for ; p < t1; p += 8 {
		m := archsimd.LoadFloat32x8Slice(x[p:])
		for c := 1; c < channels; c++ {
			m = m.Max(archsimd.LoadFloat32x8Slice(x[c*hw+p:]))
		}
		sum := archsimd.BroadcastFloat32x8(0)
		for c := 0; c < channels; c++ {
			sum = sum.Add(exp(archsimd.LoadFloat32x8Slice(x[c*hw+p:]), m))
		}
		one.Div(sum).StoreSlice(conf[p:])
	}
	return true
}
