//go:build ignore

// Generates the sample frames under testdata/images: run from the repo root
// with `go run testdata/gen_images.go`. street.png is an RGB scene of smooth
// regions and shapes, grey.png and deep16.png the same scene as 8-bit grey and
// 16-bit RGB, truncated.png a PNG cut short, and not-an-image.png text.
package main

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"log"
	"math"
	"os"
)

func scene(w, h int) *image.RGBA64 {
	img := image.NewRGBA64(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			fx, fy := float64(x)/float64(w), float64(y)/float64(h)
			r, g, b := 0.3+0.4*fy, 0.5+0.3*fx, 0.8-0.5*fy // sky to ground gradient
			if fy > 0.6 {
				r, g, b = 0.35, 0.3, 0.35 // road
			}
			if dx, dy := fx-0.3, fy-0.55; dx*dx+dy*dy < 0.02 {
				r, g, b = 0.1, 0.6, 0.15 // tree
			}
			if fx > 0.6 && fx < 0.85 && fy > 0.45 && fy < 0.7 {
				r, g, b = 0.7, 0.1, 0.1 // car
			}
			n := 0.03 * math.Sin(float64(x*7+y*13))
			img.SetRGBA64(x, y, color.RGBA64{c16(r + n), c16(g + n), c16(b + n), 0xffff})
		}
	}
	return img
}

func c16(v float64) uint16 { return uint16(math.Max(0, math.Min(1, v)) * 0xffff) }

func write(path string, img image.Image) []byte {
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		log.Fatal(err)
	}
	return b.Bytes()
}

func main() {
	s := scene(256, 128)
	rgb := image.NewRGBA(s.Rect)
	grey := image.NewGray(s.Rect)
	for y := 0; y < s.Rect.Dy(); y++ {
		for x := 0; x < s.Rect.Dx(); x++ {
			rgb.Set(x, y, s.At(x, y))
			grey.Set(x, y, s.At(x, y))
		}
	}
	full := write("testdata/images/street.png", rgb)
	write("testdata/images/grey.png", grey)
	write("testdata/images/deep16.png", s)
	if err := os.WriteFile("testdata/images/truncated.png", full[:len(full)/2], 0o644); err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile("testdata/images/not-an-image.png", []byte("this is not a PNG\n"), 0o644); err != nil {
		log.Fatal(err)
	}
}
