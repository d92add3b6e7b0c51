package masking

// MaskedConvs are the masked convolutions of a stage at one resolution: their
// dense MACs for one image and the sum of their output channels.
type MaskedConvs struct {
	// Height and Width of the convolutions' outputs.
	Height, Width int
	MACs          int64
	OutChannels   int64
}

// rbfTaps is the size of the 7×7 RBF interpolation window.
const rbfTaps = 49

// Effective is the paper's effective MAC count of these convolutions when a
// fraction p of their output positions is computed:
// MACs·p + (1 − p)·p·OutChannels·49·H·W (the second term is the RBF fill).
func (m MaskedConvs) Effective(p float64) float64 {
	return float64(m.MACs)*p + (1-p)*p*float64(m.OutChannels)*rbfTaps*float64(m.Height*m.Width)
}

// ResizedFraction is the fraction of ones in mask (h×w) after a
// nearest-neighbour resize to outH×outW, with PyTorch's rule: source index
// floor(dst · in/out) with the scale in float32.
func ResizedFraction(mask []uint8, h, w, outH, outW int) float64 {
	if outH <= 0 || outW <= 0 {
		return 0
	}
	sy := float32(h) / float32(outH)
	sx := float32(w) / float32(outW)
	ones := 0
	for y := 0; y < outH; y++ {
		row := mask[nearest(y, sy, h)*w:]
		for x := 0; x < outW; x++ {
			if row[nearest(x, sx, w)] != 0 {
				ones++
			}
		}
	}
	return float64(ones) / float64(outH*outW)
}

func nearest(dst int, scale float32, in int) int {
	src := int(float32(dst) * scale)
	if src > in-1 {
		return in - 1
	}
	return src
}

// Fraction is the fraction of ones in mask.
func Fraction(mask []uint8) float64 {
	ones := 0
	for _, m := range mask {
		if m != 0 {
			ones++
		}
	}
	return float64(ones) / float64(len(mask))
}
