package masking

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
)

// Synthetic makes nested, spatially clustered masks of an h×w exit map
// (1 = compute), one per fraction, from a seed: mask k computes exactly
// round(fractions[k]·h·w) pixels, and every pixel mask k+1 computes, mask k
// computes too. The pixels are ranked by a smooth random field (value noise
// at two scales), so computed pixels form blobs as real confidence masks do.
// Fractions must lie in [0, 1] and not increase.
func Synthetic(h, w int, fractions []float64, seed uint64) ([][]uint8, error) {
	for k, f := range fractions {
		if !(f >= 0 && f <= 1) || (k > 0 && f > fractions[k-1]) {
			return nil, fmt.Errorf("synthetic masks: fractions %v: want values in [0, 1], not increasing", fractions)
		}
	}
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	field := make([]float64, h*w)
	for _, octave := range []struct{ cells, weight float64 }{{6, 1}, {24, 0.3}} {
		addValueNoise(field, h, w, octave.cells, octave.weight, r)
	}
	order := make([]int32, h*w)
	for p := range order {
		order[p] = int32(p)
	}
	slices.SortFunc(order, func(a, b int32) int {
		return cmp.Or(cmp.Compare(field[b], field[a]), cmp.Compare(a, b))
	})
	masks := make([][]uint8, len(fractions))
	for k, f := range fractions {
		masks[k] = make([]uint8, h*w)
		for _, p := range order[:int(f*float64(h*w)+0.5)] {
			masks[k][p] = 1
		}
	}
	return masks, nil
}

// addValueNoise adds weight × a bilinear interpolation of random values on a
// grid of about cells × cells knots spanning the map.
func addValueNoise(field []float64, h, w int, cells, weight float64, r *rand.Rand) {
	step := float64(max(h, w)) / cells
	gh, gw := int(float64(h)/step)+2, int(float64(w)/step)+2
	knots := make([]float64, gh*gw)
	for i := range knots {
		knots[i] = r.Float64()
	}
	for y := range h {
		fy := float64(y) / step
		y0 := int(fy)
		ty := fy - float64(y0)
		for x := range w {
			fx := float64(x) / step
			x0 := int(fx)
			tx := fx - float64(x0)
			k := knots[y0*gw+x0:]
			top := k[0]*(1-tx) + k[1]*tx
			bottom := k[gw]*(1-tx) + k[gw+1]*tx
			field[y*w+x] += weight * (top*(1-ty) + bottom*ty)
		}
	}
}
