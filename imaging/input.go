package imaging

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/draw"
	_ "image/jpeg" // register the JPEG decoder
	_ "image/png"  // register the PNG decoder

	"github.com/anytime-edge/edge/bundle"
	"github.com/anytime-edge/edge/internal/regfile"
)

// ErrImage is wrapped by every error about an image that cannot be used.
var ErrImage = errors.New("unusable image")

// maxPixels bounds decoded images (a 16k × 16k frame), so a hostile header
// cannot make the decoder allocate without limit.
const maxPixels = 1 << 28

// MaxFileBytes bounds the size of an image file Load reads (a camera frame
// is a few MiB; a 16k × 16k PNG of noise is under this).
const MaxFileBytes = 256 << 20

// Load decodes an image file into 8-bit RGBA. The file must be a regular
// file of at most MaxFileBytes: a device, a FIFO or a larger file is refused
// with an error naming it, without being read.
func Load(path string) (*image.RGBA, error) {
	raw, err := regfile.Read(path, MaxFileBytes)
	if err != nil {
		return nil, fmt.Errorf("read image: %w", err)
	}
	img, err := Decode(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return img, nil
}

// Decode decodes PNG or JPEG bytes into 8-bit RGBA. Grey, paletted and 16-bit
// images are converted; anything else is an ErrImage.
func Decode(raw []byte) (*image.RGBA, error) {
	cfg, format, err := image.DecodeConfig(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("%w: not a PNG or JPEG image (%v)", ErrImage, err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 || cfg.Width*cfg.Height > maxPixels {
		return nil, fmt.Errorf("%w: %s of %dx%d pixels (want 1 to %d pixels)", ErrImage, format, cfg.Width, cfg.Height, maxPixels)
	}
	img, _, err := image.Decode(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("%w: corrupt %s: %v", ErrImage, format, err)
	}
	if rgba, ok := img.(*image.RGBA); ok && rgba.Rect.Min == (image.Point{}) {
		return rgba, nil
	}
	b := img.Bounds()
	out := image.NewRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
	draw.Draw(out, out.Rect, img, b.Min, draw.Src)
	return out, nil
}

// Preprocess writes img into dst, the bundle's input tensor ([1, 3, H, W]
// float32): bilinear resize to H×W (half-pixel centres, as PyTorch's
// align_corners=False), then value × scale, then (v − mean) / std per
// channel, in the bundle's channel order.
func Preprocess(dst []float32, img *image.RGBA, in bundle.Input) {
	h, w := in.Height(), in.Width()
	sh, sw := img.Rect.Dy(), img.Rect.Dx()
	plane := h * w
	order := [3]int{0, 1, 2}
	if in.Color == "bgr" {
		order = [3]int{2, 1, 0}
	}
	var mul, add [3]float32
	for c := 0; c < 3; c++ {
		mul[c] = in.Scale / in.Std[c]
		add[c] = -in.Mean[c] / in.Std[c]
	}
	sy := float32(sh) / float32(h)
	sx := float32(sw) / float32(w)
	for y := 0; y < h; y++ {
		y0, y1, fy := taps(y, sy, sh)
		for x := 0; x < w; x++ {
			x0, x1, fx := taps(x, sx, sw)
			p00 := img.Pix[y0*img.Stride+4*x0:]
			p01 := img.Pix[y0*img.Stride+4*x1:]
			p10 := img.Pix[y1*img.Stride+4*x0:]
			p11 := img.Pix[y1*img.Stride+4*x1:]
			for c := 0; c < 3; c++ {
				src := order[c]
				top := float32(p00[src]) + fx*(float32(p01[src])-float32(p00[src]))
				bot := float32(p10[src]) + fx*(float32(p11[src])-float32(p10[src]))
				v := top + fy*(bot-top)
				dst[c*plane+y*w+x] = v*mul[c] + add[c]
			}
		}
	}
}

// taps are the two source indices and the weight of the second for output
// index i at scale s (half-pixel centres, clamped at the borders).
func taps(i int, s float32, n int) (int, int, float32) {
	f := (float32(i)+0.5)*s - 0.5
	if f < 0 {
		f = 0
	}
	i0 := int(f)
	if i0 > n-1 {
		i0 = n - 1
	}
	i1 := i0 + 1
	if i1 > n-1 {
		i1 = n - 1
	}
	return i0, i1, f - float32(i0)
}
