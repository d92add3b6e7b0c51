package imaging

import (
	"bufio"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"

	"github.com/anytime-edge/edge/bundle"
)

// Argmax writes into labels[p] the channel with the largest value of logits
// ([C][len(labels)]) at pixel p. C is at most 256 (bundle.MaxLabels: a validated
// bundle has no more labels), so every channel fits the 8-bit label map.
func Argmax(labels []uint8, logits []float32) {
	hw := len(labels)
	best := make([]float32, hw)
	copy(best, logits[:hw])
	clear(labels)
	for c := 1; c < len(logits)/hw; c++ {
		for p, v := range logits[c*hw : (c+1)*hw] {
			if v > best[p] {
				best[p], labels[p] = v, uint8(c)
			}
		}
	}
}

// Palette is the bundle's label colours as a PNG palette.
func Palette(labels []bundle.Label) color.Palette {
	p := make(color.Palette, len(labels))
	for i, l := range labels {
		p[i] = color.RGBA{l.Color[0], l.Color[1], l.Color[2], 255}
	}
	return p
}

// LabelImage is the label map (h×w) resized by nearest neighbour to
// width×height as a paletted image.
func LabelImage(labels []uint8, h, w, width, height int, pal color.Palette) *image.Paletted {
	img := image.NewPaletted(image.Rect(0, 0, width, height), pal)
	for y := 0; y < height; y++ {
		sy := y * h / height
		row := img.Pix[y*img.Stride:]
		for x := 0; x < width; x++ {
			row[x] = labels[sy*w+x*w/width]
		}
	}
	return img
}

// Overlay blends the label colours over the frame with the given opacity.
func Overlay(frame *image.RGBA, labels *image.Paletted, alpha float32) *image.RGBA {
	out := image.NewRGBA(frame.Rect)
	for y := 0; y < frame.Rect.Dy(); y++ {
		for x := 0; x < frame.Rect.Dx(); x++ {
			c := labels.Palette[labels.Pix[y*labels.Stride+x]].(color.RGBA)
			i := y*frame.Stride + 4*x
			o := y*out.Stride + 4*x
			for k, v := range [3]uint8{c.R, c.G, c.B} {
				out.Pix[o+k] = uint8(float32(frame.Pix[i+k])*(1-alpha) + float32(v)*alpha + 0.5)
			}
			out.Pix[o+3] = 255
		}
	}
	return out
}

// ClassFractions is the fraction of pixels of each label in a label map.
func ClassFractions(labels []uint8, names []bundle.Label) map[string]float64 {
	counts := make([]int, len(names))
	for _, l := range labels {
		if int(l) < len(counts) {
			counts[l]++
		}
	}
	out := map[string]float64{}
	for i, n := range counts {
		if n > 0 {
			out[names[i].Name] = float64(n) / float64(len(labels))
		}
	}
	return out
}

// WritePNG encodes img to path.
func WritePNG(path string, img image.Image) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("write png: %w", err)
	}
	w := bufio.NewWriter(f)
	if err := png.Encode(w, img); err != nil {
		f.Close()
		return fmt.Errorf("write png %s: %w", path, err)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("write png %s: %w", path, err)
	}
	return f.Close()
}

// ExitThumbnail is one exit's label map (h×w) in its label colours, with the
// pixels the exit did not compute (computed[p] == 0, as in the mask fed to
// the stage) drawn dimmed and grey. A nil computed means all were.
func ExitThumbnail(labels, computed []uint8, h, w int, pal color.Palette) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for p, l := range labels[:h*w] {
		c := pal[l].(color.RGBA)
		if computed != nil && computed[p] == 0 {
			g := uint8((uint16(c.R) + uint16(c.G) + uint16(c.B)) / 6)
			c = color.RGBA{g, g, g, 255}
		}
		img.Pix[4*p], img.Pix[4*p+1], img.Pix[4*p+2], img.Pix[4*p+3] = c.R, c.G, c.B, 255
	}
	return img
}

// HeatThumbnail is a grey map (h×w) of peak, scaled so that its largest
// value is white, with the pixels not computed (computed[p] == 0) drawn in
// dark blue. A nil computed means all were.
func HeatThumbnail(peak []float32, computed []uint8, h, w int) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	top := float32(1e-6)
	for _, v := range peak[:h*w] {
		top = max(top, v)
	}
	for p, v := range peak[:h*w] {
		g := uint8(255 * min(max(v/top, 0), 1))
		c := color.RGBA{g, g, g, 255}
		if computed != nil && computed[p] == 0 {
			c = color.RGBA{g / 4, g / 4, 64 + g/4, 255}
		}
		img.Pix[4*p], img.Pix[4*p+1], img.Pix[4*p+2], img.Pix[4*p+3] = c.R, c.G, c.B, 255
	}
	return img
}
