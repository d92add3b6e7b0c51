package keypoints

import (
	"image"
	"image/color"
	"math"
	"testing"
)

// gaussian fills a w×h heatmap with a Gaussian peak at (u, v) in cells.
func gaussian(h, w int, u, v, sigma float64) []float32 {
	hm := make([]float32, h*w)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			d2 := (float64(x)-u)*(float64(x)-u) + (float64(y)-v)*(float64(y)-v)
			hm[y*w+x] = float32(math.Exp(-d2 / (2 * sigma * sigma)))
		}
	}
	return hm
}

func TestDecode(t *testing.T) {
	tests := []struct {
		name         string
		u, v         float64 // peak in heatmap cells
		stride       int
		wantX, wantY float64
		tol          float64
	}{
		{"on a cell centre", 10, 7, 4, 41.5, 29.5, 1e-9},
		{"between cells", 10.3, 7.6, 4, (10.3+0.5)*4 - 0.5, (7.6+0.5)*4 - 0.5, 0.25},
		{"stride 1", 5.2, 3.9, 1, 5.2, 3.9, 0.1},
		{"left border: no refinement", 0.2, 5, 4, 1.5, 21.5, 1e-9},
		{"bottom-right corner", 31, 15, 2, 62.5, 30.5, 1e-9},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hm := gaussian(16, 32, tc.u, tc.v, 1.5)
			var got [1]Point
			Decode(got[:], hm, 16, 32, tc.stride)
			if math.Abs(got[0].X-tc.wantX) > tc.tol || math.Abs(got[0].Y-tc.wantY) > tc.tol {
				t.Errorf("got (%.3f, %.3f), want (%.3f, %.3f) ± %g", got[0].X, got[0].Y, tc.wantX, tc.wantY, tc.tol)
			}
		})
	}
}

// TestDecodeMatchesPython pins the refinement to values computed with
// models/adpc/data/pose.py's decode on the same 3×3 heatmap.
func TestDecodeMatchesPython(t *testing.T) {
	hm := []float32{
		0.1, 0.2, 0.1,
		0.3, 0.9, 0.6,
		0.1, 0.4, 0.1,
	}
	var got [1]Point
	Decode(got[:], hm, 3, 3, 4)
	// dx = 0.5·(0.3−0.6)/(0.3−1.8+0.6) = 1/6, dy = 0.5·(0.2−0.4)/(0.2−1.8+0.4) = 1/12.
	wantX, wantY := (1+1.0/6+0.5)*4-0.5, (1+1.0/12+0.5)*4-0.5
	if math.Abs(got[0].X-wantX) > 1e-6 || math.Abs(got[0].Y-wantY) > 1e-6 || got[0].Score != 0.9 {
		t.Errorf("got %+v, want (%.6f, %.6f) score 0.9", got[0], wantX, wantY)
	}
}

func TestDecodeSeveralJointsFirstMaximum(t *testing.T) {
	h, w := 4, 4
	heat := make([]float32, 2*h*w)
	heat[5], heat[6] = 1, 1 // joint 0: tie at (1, 1) and (2, 1)
	heat[h*w+15] = 0.5      // joint 1: corner
	got := make([]Point, 2)
	Decode(got, heat, h, w, 1)
	// The first maximum (1, 1) is taken and refined half a cell towards its
	// equal neighbour.
	if got[0].X != 1.5 || got[0].Y != 1 {
		t.Errorf("joint 0 at (%g, %g), want (1.5, 1)", got[0].X, got[0].Y)
	}
	if got[1].X != 3 || got[1].Y != 3 || got[1].Score != 0.5 {
		t.Errorf("joint 1 = %+v, want (3, 3) score 0.5", got[1])
	}
}

func TestDecodeDoesNotAllocate(t *testing.T) {
	heat := gaussian(32, 32, 5, 5, 1.5)
	dst := make([]Point, 1)
	if n := testing.AllocsPerRun(10, func() { Decode(dst, heat, 32, 32, 4) }); n != 0 {
		t.Errorf("Decode allocates %v times, want 0", n)
	}
}

func TestScale(t *testing.T) {
	pts := []Point{{X: 0, Y: 0}, {X: 63.5, Y: 31.5}}
	Scale(pts, 128, 64, 256, 128)
	want := []Point{{X: 0.5, Y: 0.5}, {X: 127.5, Y: 63.5}}
	for i := range pts {
		if pts[i] != want[i] {
			t.Errorf("point %d = %+v, want %+v", i, pts[i], want[i])
		}
	}
}

func TestDraw(t *testing.T) {
	red := color.RGBA{255, 0, 0, 255}
	blue := color.RGBA{0, 0, 255, 255}
	pts := []Point{{X: 2, Y: 5, Score: 1}, {X: 17, Y: 5, Score: 1}, {X: 10, Y: 15, Score: 0.01}}
	tests := []struct {
		name  string
		style Style
		at    image.Point
		want  color.RGBA
	}{
		{"limb pixel", Style{LineWidth: 2, Radius: 1}, image.Pt(9, 5), red},
		{"joint dot over the limb", Style{LineWidth: 2, Radius: 2}, image.Pt(17, 6), blue},
		{"away from everything", Style{LineWidth: 2, Radius: 1}, image.Pt(9, 10), color.RGBA{}},
		{"low-score joint hidden", Style{LineWidth: 2, Radius: 2, MinScore: 0.5}, image.Pt(10, 15), color.RGBA{}},
		{"low-score joint shown without MinScore", Style{LineWidth: 2, Radius: 2}, image.Pt(10, 15), red},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			img := image.NewRGBA(image.Rect(0, 0, 20, 20))
			Draw(img, pts, [][2]int{{0, 1}, {1, 2}}, []color.RGBA{red, blue}, tc.style)
			if got := img.RGBAAt(tc.at.X, tc.at.Y); got != tc.want {
				t.Errorf("pixel %v = %v, want %v", tc.at, got, tc.want)
			}
		})
	}
}

func TestDrawClipsOutside(t *testing.T) {
	img := image.NewRGBA(image.Rect(0, 0, 8, 8))
	pts := []Point{{X: -50, Y: -50, Score: 1}, {X: 100, Y: 100, Score: 1}}
	Draw(img, pts, [][2]int{{0, 1}, {0, 7}}, nil, DefaultStyle)
	if got := img.RGBAAt(4, 4); got != (color.RGBA{255, 255, 255, 255}) {
		t.Errorf("diagonal pixel = %v, want white", got)
	}
}
