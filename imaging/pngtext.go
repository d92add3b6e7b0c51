package imaging

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

var pngSignature = []byte("\x89PNG\r\n\x1a\n")

// pngIENDLen is the size of a PNG's closing IEND chunk: length, type, CRC.
const pngIENDLen = 12

// AddPNGText returns an encoded PNG with a tEXt chunk (keyword, NUL, text)
// inserted before its IEND chunk; the image itself is unchanged. The
// keyword must be 1 to 79 Latin-1 characters without NUL, as the PNG
// specification requires.
func AddPNGText(png []byte, keyword string, text []byte) ([]byte, error) {
	if len(keyword) == 0 || len(keyword) > 79 {
		return nil, fmt.Errorf("png text keyword %q: want 1 to 79 characters", keyword)
	}
	for i := 0; i < len(keyword); i++ {
		if keyword[i] == 0 {
			return nil, fmt.Errorf("png text keyword %q: holds a NUL", keyword)
		}
	}
	if len(png) < len(pngSignature)+pngIENDLen || string(png[:len(pngSignature)]) != string(pngSignature) ||
		string(png[len(png)-pngIENDLen+4:len(png)-pngIENDLen+8]) != "IEND" {
		return nil, errors.New("not a PNG ending in IEND")
	}
	data := append(append([]byte(keyword), 0), text...)
	chunk := binary.BigEndian.AppendUint32(nil, uint32(len(data)))
	chunk = append(chunk, "tEXt"...)
	chunk = append(chunk, data...)
	chunk = binary.BigEndian.AppendUint32(chunk, crc32.ChecksumIEEE(chunk[4:]))
	out := make([]byte, 0, len(png)+len(chunk))
	out = append(out, png[:len(png)-pngIENDLen]...)
	out = append(out, chunk...)
	return append(out, png[len(png)-pngIENDLen:]...), nil
}
