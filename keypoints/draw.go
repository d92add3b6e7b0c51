package keypoints

import (
	"image"
	"image/color"
	"math"
)

// Style says how Draw renders a skeleton.
type Style struct {
	// LineWidth is the limb thickness and Radius the joint dot radius, in
	// pixels of the target image.
	LineWidth, Radius float64
	// MinScore hides joints whose heatmap peak is below it, and the limbs
	// that touch them.
	MinScore float32
}

// DefaultStyle suits images of a few hundred pixels.
var DefaultStyle = Style{LineWidth: 2, Radius: 3, MinScore: 0}

// Draw paints the limbs of skeleton (pairs of indices into pts) and then the
// joints onto img. Limb i uses colors[i % len(colors)] and joint j
// colors[j % len(colors)]; with no colors everything is white. Points and
// limbs outside img are clipped.
func Draw(img *image.RGBA, pts []Point, skeleton [][2]int, colors []color.RGBA, st Style) {
	pick := func(i int) color.RGBA {
		if len(colors) == 0 {
			return color.RGBA{255, 255, 255, 255}
		}
		return colors[i%len(colors)]
	}
	shown := func(j int) bool { return j >= 0 && j < len(pts) && pts[j].Score >= st.MinScore }
	for i, limb := range skeleton {
		a, b := limb[0], limb[1]
		if !shown(a) || !shown(b) {
			continue
		}
		capsule(img, pts[a], pts[b], st.LineWidth/2, pick(i))
	}
	for j, p := range pts {
		if shown(j) {
			capsule(img, p, p, st.Radius, pick(j))
		}
	}
}

// capsule fills the pixels whose centre lies within r of segment a–b.
func capsule(img *image.RGBA, a, b Point, r float64, c color.RGBA) {
	r = max(r, 0.5)
	b0 := img.Rect
	x0 := max(int(math.Floor(min(a.X, b.X)-r)), b0.Min.X)
	x1 := min(int(math.Ceil(max(a.X, b.X)+r)), b0.Max.X-1)
	y0 := max(int(math.Floor(min(a.Y, b.Y)-r)), b0.Min.Y)
	y1 := min(int(math.Ceil(max(a.Y, b.Y)+r)), b0.Max.Y-1)
	dx, dy := b.X-a.X, b.Y-a.Y
	ll := dx*dx + dy*dy
	for y := y0; y <= y1; y++ {
		for x := x0; x <= x1; x++ {
			t := 0.0
			if ll > 0 {
				t = min(max(((float64(x)-a.X)*dx+(float64(y)-a.Y)*dy)/ll, 0), 1)
			}
			ex, ey := float64(x)-(a.X+t*dx), float64(y)-(a.Y+t*dy)
			if ex*ex+ey*ey <= r*r {
				img.SetRGBA(x, y, c)
			}
		}
	}
}
