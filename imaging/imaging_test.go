package imaging

import (
	"bytes"
	"errors"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/anytime-edge/edge/bundle"
)

func TestDecodeConvertsGreyAnd16Bit(t *testing.T) {
	for _, name := range []string{"street.png", "grey.png", "deep16.png"} {
		img, err := Load("../testdata/images/" + name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if img.Rect.Dx() != 256 || img.Rect.Dy() != 128 {
			t.Errorf("%s: got %v", name, img.Rect)
		}
	}
	grey, _ := Load("../testdata/images/grey.png")
	if p := grey.Pix[4*300:]; p[0] != p[1] || p[1] != p[2] || p[3] != 255 {
		t.Errorf("grey pixel became %v, want equal RGB and opaque", p[:4])
	}
}

func TestDecodeRejectsBadImages(t *testing.T) {
	trunc, _ := os.ReadFile("../testdata/images/truncated.png")
	var huge bytes.Buffer
	png.Encode(&huge, image.NewGray(image.Rect(0, 0, 1, 1)))
	raw := huge.Bytes()
	// Rewrite the IHDR width to 2^20 (the CRC no longer matches; either
	// the size check or the decoder must refuse it).
	raw[16], raw[17], raw[18], raw[19] = 0, 0x10, 0, 0
	for name, b := range map[string][]byte{"empty": nil, "text": []byte("hello"), "truncated": trunc, "huge": raw} {
		if _, err := Decode(b); !errors.Is(err, ErrImage) {
			t.Errorf("%s: got %v, want ErrImage", name, err)
		}
	}
}

// TestLoadRefusesFIFOsAndDevices: a FIFO with no writer used to block Load
// forever and /dev/zero to exhaust memory.
func TestLoadRefusesFIFOsAndDevices(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "frame.png")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{fifo, "/dev/zero"} {
		if _, err := Load(path); err == nil || !strings.Contains(err.Error(), path+": not a regular file") {
			t.Errorf("got %v, want an error naming %s as not a regular file", err, path)
		}
	}
}

// TestPreprocessBilinear checks the resize against hand-computed values of
// PyTorch's bilinear interpolation with align_corners=False.
func TestPreprocessBilinear(t *testing.T) {
	src := image.NewRGBA(image.Rect(0, 0, 4, 2))
	for x := 0; x < 4; x++ {
		src.Set(x, 0, color.RGBA{uint8(10 * x), 0, 0, 255})
		src.Set(x, 1, color.RGBA{uint8(10*x + 40), 0, 0, 255})
	}
	in := bundle.Input{Shape: []int64{1, 3, 1, 2}, Color: "rgb", Scale: 1, Mean: []float32{0, 0, 0}, Std: []float32{1, 1, 1}}
	dst := make([]float32, 6)
	Preprocess(dst, src, in)
	// Output x=0 samples source x=0.5, y=0.5: (5 + 45)/2 = 25; x=1 samples 2.5: 65/2 + ... = 45.
	if dst[0] != 25 || dst[1] != 45 {
		t.Errorf("red plane: got %v, want [25 45]", dst[:2])
	}
	in = bundle.Input{Shape: []int64{1, 3, 2, 4}, Color: "bgr", Scale: 1.0 / 255, Mean: []float32{0.5, 0.5, 0.5}, Std: []float32{0.25, 0.5, 1}}
	dst = make([]float32, 24)
	Preprocess(dst, src, in)
	// Same size: no interpolation; BGR puts red last with std 1, mean 0.5.
	want := float32(30)/255 - 0.5
	if got := dst[2*8+3]; math.Abs(float64(got-want)) > 1e-6 {
		t.Errorf("bgr red at (0,3): got %v, want %v", got, want)
	}
}

func TestLabelImageAndFractions(t *testing.T) {
	labels := []uint8{0, 1, 1, 2}
	pal := Palette([]bundle.Label{{Name: "a", Color: [3]uint8{1, 2, 3}}, {Name: "b"}, {Name: "c"}})
	img := LabelImage(labels, 2, 2, 4, 4, pal)
	if img.Pix[0] != 0 || img.Pix[3] != 1 || img.Pix[3*img.Stride+3] != 2 {
		t.Errorf("nearest upscale wrong: %v", img.Pix)
	}
	f := ClassFractions(labels, []bundle.Label{{Name: "a"}, {Name: "b"}, {Name: "c"}})
	if f["a"] != 0.25 || f["b"] != 0.5 || f["c"] != 0.25 {
		t.Errorf("got %v", f)
	}
	logits := []float32{1, 0, 0, 0, 0, 2, 0, 0} // 2 channels, 4 pixels
	out := make([]uint8, 4)
	Argmax(out, logits)
	if out[0] != 0 || out[1] != 1 || out[2] != 0 {
		t.Errorf("argmax got %v", out)
	}
}

func FuzzDecode(f *testing.F) {
	raw, _ := os.ReadFile("../testdata/images/grey.png")
	f.Add(raw)
	f.Fuzz(func(t *testing.T, raw []byte) {
		img, err := Decode(raw)
		if err == nil && (img.Rect.Dx() <= 0 || len(img.Pix) != 4*img.Rect.Dx()*img.Rect.Dy()) {
			t.Fatalf("bad image accepted: %v", img.Rect)
		}
	})
}
