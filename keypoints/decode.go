package keypoints

// Point is one decoded joint in input-tensor pixel coordinates (pixel
// centres at integers) with its heatmap peak value.
type Point struct {
	X, Y float64
	// Score is the heatmap value at the arg-max.
	Score float32
}

// Decode writes into dst[j] the joint decoded from heatmap j of heat
// ([len(dst)][h][w], row-major) at the given output stride. It panics if
// heat is shorter than len(dst)·h·w.
func Decode(dst []Point, heat []float32, h, w, stride int) {
	hw := h * w
	_ = heat[len(dst)*hw-1]
	for j := range dst {
		hm := heat[j*hw : (j+1)*hw]
		best := 0
		for p, v := range hm {
			if v > hm[best] {
				best = p
			}
		}
		x, y := best%w, best/w
		u := float64(x) + offset(hm, best, x, w, 1)
		v := float64(y) + offset(hm, best, y, h, w)
		s := float64(stride)
		dst[j] = Point{X: (u+0.5)*s - 0.5, Y: (v+0.5)*s - 0.5, Score: hm[best]}
	}
}

// offset is the vertex of the parabola through the values at p − step, p and
// p + step, relative to p, in [−0.5, 0.5]; zero at a border or where the
// values are not a strict maximum's neighbourhood (no downward curvature).
func offset(hm []float32, p, i, n, step int) float64 {
	if i <= 0 || i >= n-1 {
		return 0
	}
	l, c, r := float64(hm[p-step]), float64(hm[p]), float64(hm[p+step])
	den := l - 2*c + r
	if den >= 0 {
		return 0
	}
	return min(max(0.5*(l-r)/den, -0.5), 0.5)
}

// Scale maps points from the input tensor's size (inW×inH) to an image of
// outW×outH with the same half-pixel-centre rule as the bundle's resize.
func Scale(pts []Point, inW, inH, outW, outH int) {
	sx := float64(outW) / float64(inW)
	sy := float64(outH) / float64(inH)
	for i := range pts {
		pts[i].X = (pts[i].X+0.5)*sx - 0.5
		pts[i].Y = (pts[i].Y+0.5)*sy - 0.5
	}
}
