package imaging

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"image"
	"image/color"
	"image/png"
	"strings"
	"testing"
)

// TestAddPNGText: the chunk sits before IEND with a valid CRC, the image
// still decodes to the same pixels, and non-PNGs are refused.
func TestAddPNGText(t *testing.T) {
	img := image.NewPaletted(image.Rect(0, 0, 8, 4), color.Palette{color.Black, color.White})
	img.Pix[3] = 1
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	out, err := AddPNGText(b.Bytes(), "anytime", []byte(`{"frame":7}`))
	if err != nil {
		t.Fatal(err)
	}
	var found string
	for off := len(pngSignature); off+12 <= len(out); {
		n := int(binary.BigEndian.Uint32(out[off:]))
		typ, data := string(out[off+4:off+8]), out[off+8:off+8+n]
		if got, want := binary.BigEndian.Uint32(out[off+8+n:]), crc32.ChecksumIEEE(out[off+4:off+8+n]); got != want {
			t.Fatalf("chunk %s: CRC %08x, want %08x", typ, got, want)
		}
		if typ == "tEXt" {
			found = string(data)
		}
		off += 12 + n
	}
	if found != "anytime\x00{\"frame\":7}" {
		t.Fatalf("tEXt chunk = %q, want keyword anytime and the text", found)
	}
	dec, err := png.Decode(bytes.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(dec.(*image.Paletted).Pix, img.Pix) {
		t.Fatal("pixels changed")
	}
	for _, tc := range []struct {
		name, keyword string
		png           []byte
		want          string
	}{
		{"not a png", "anytime", []byte("GIF89a, not a png at all"), "not a PNG"},
		{"truncated", "anytime", b.Bytes()[:len(b.Bytes())-4], "not a PNG"},
		{"empty keyword", "", b.Bytes(), "want 1 to 79"},
		{"NUL in keyword", "a\x00b", b.Bytes(), "NUL"},
	} {
		if _, err := AddPNGText(tc.png, tc.keyword, nil); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.want)
		}
	}
}
