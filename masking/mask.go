package masking

// Criterion says how confidence turns into the decision to compute a pixel.
type Criterion int

// Criteria.
const (
	// MaxSoftmax: a pixel is computed while its confidence is ≤ the
	// threshold (frozen when strictly greater), as the reference does.
	MaxSoftmax Criterion = iota
	// HeatmapPeak: a pixel is frozen when the largest heatmap value over all
	// joints is ≤ the threshold (confidently far from every joint).
	HeatmapPeak
)

// Update narrows mask (1 = compute, 0 = frozen) by conf: a pixel stays 1 only
// if it was 1 and the criterion says it is not yet confident, so masks never
// grow back. A NaN confidence keeps the pixel computing. It returns the
// number of pixels still to compute.
func Update(mask []uint8, conf []float32, crit Criterion, threshold float32) int {
	active := 0
	mask = mask[:len(conf)]
	switch crit {
	case MaxSoftmax:
		for p, c := range conf {
			if mask[p] != 0 && !(c > threshold) {
				active++
			} else {
				mask[p] = 0
			}
		}
	case HeatmapPeak:
		for p, c := range conf {
			if mask[p] != 0 && !(c <= threshold) {
				active++
			} else {
				mask[p] = 0
			}
		}
	}
	return active
}

// Fill sets every pixel of mask to compute.
func Fill(mask []uint8) {
	for p := range mask {
		mask[p] = 1
	}
}

// Merge is copy aggregation: for every pixel that mask (1 = computed,
// 0 = frozen, as float32: the tensor fed to the stage) says was computed,
// merged takes the new exit's logits; frozen pixels keep their earlier value
// bit for bit.
func Merge(merged, logits, mask []float32) {
	hw := len(mask)
	for c := 0; c < len(logits)/hw; c++ {
		rowSelect(merged[c*hw:(c+1)*hw], logits[c*hw:(c+1)*hw], mask)
	}
}

// rowSelectScalar sets dst[p] = src[p] where mask[p] != 0.
func rowSelectScalar(dst, src, mask []float32) {
	dst = dst[:len(mask)]
	src = src[:len(mask)]
	for p, m := range mask {
		if m != 0 {
			dst[p] = src[p]
		}
	}
}

// ToFloat writes mask as float32 (1 = compute, 0 = frozen), the form a
// masked stage graph takes.
func ToFloat(dst []float32, mask []uint8) {
	dst = dst[:len(mask)]
	for p, m := range mask {
		dst[p] = float32(m)
	}
}
