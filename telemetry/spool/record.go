package spool

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"time"
)

// Record layout on disk, all integers little-endian:
//
//	magic   u32  recordMagic
//	length  u32  length of the body that follows the header
//	crc     u32  CRC-32C (Castagnoli) of the body
//	body:
//	  id      u64
//	  time    i64  Unix nanoseconds when the record was appended
//	  qos     u8
//	  tlen    u16  topic length
//	  topic   tlen bytes
//	  payload the rest
const (
	recordMagic  = 0x31505341 // "ASP1"
	headerSize   = 12
	fixedBody    = 8 + 8 + 1 + 2
	maxTopicLen  = 1024
	maxRecordLen = 16 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Record is one spooled message.
type Record struct {
	// ID increases by one per append and is never reused within a
	// directory.
	ID uint64
	// Time is when the record was appended.
	Time time.Time
	// Topic, QoS and Payload are what will be published.
	Topic   string
	QoS     byte
	Payload []byte
	// Recovered is true for a record found on disk when the spool was
	// opened (written by an earlier process).
	Recovered bool
}

// ErrTooLarge is returned by Append for a record over the size limit.
var ErrTooLarge = errors.New("spool: record too large")

// encode appends the on-disk form of r to dst.
func encode(dst []byte, r *Record) ([]byte, error) {
	if len(r.Topic) > maxTopicLen {
		return dst, fmt.Errorf("topic of %d bytes: %w", len(r.Topic), ErrTooLarge)
	}
	n := fixedBody + len(r.Topic) + len(r.Payload)
	if n > maxRecordLen {
		return dst, fmt.Errorf("record of %d bytes: %w", n, ErrTooLarge)
	}
	start := len(dst)
	dst = binary.LittleEndian.AppendUint32(dst, recordMagic)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(n))
	dst = binary.LittleEndian.AppendUint32(dst, 0) // crc, filled below
	body := len(dst)
	dst = binary.LittleEndian.AppendUint64(dst, r.ID)
	dst = binary.LittleEndian.AppendUint64(dst, uint64(r.Time.UnixNano()))
	dst = append(dst, r.QoS)
	dst = binary.LittleEndian.AppendUint16(dst, uint16(len(r.Topic)))
	dst = append(dst, r.Topic...)
	dst = append(dst, r.Payload...)
	binary.LittleEndian.PutUint32(dst[start+8:], crc32.Checksum(dst[body:], castagnoli))
	return dst, nil
}

// decodeBody parses a record body whose CRC has been checked.
func decodeBody(b []byte) (Record, error) {
	if len(b) < fixedBody {
		return Record{}, fmt.Errorf("body of %d bytes is shorter than %d", len(b), fixedBody)
	}
	r := Record{
		ID:   binary.LittleEndian.Uint64(b),
		Time: time.Unix(0, int64(binary.LittleEndian.Uint64(b[8:]))),
		QoS:  b[16],
	}
	tl := int(binary.LittleEndian.Uint16(b[17:]))
	if fixedBody+tl > len(b) {
		return Record{}, fmt.Errorf("topic length %d beyond body of %d bytes", tl, len(b))
	}
	r.Topic = string(b[fixedBody : fixedBody+tl])
	r.Payload = b[fixedBody+tl:]
	return r, nil
}

// scanned is a record found by scan, with its place in the file.
type scanned struct {
	rec  Record
	off  int64
	size int64
}

// parseRecord checks and parses the record at the start of data and
// returns it with its size on disk, or the reason it is not a valid record.
// The payload aliases data.
func parseRecord(data []byte) (Record, int, string) {
	if len(data) < headerSize {
		return Record{}, 0, "torn record header at end of segment"
	}
	if binary.LittleEndian.Uint32(data) != recordMagic {
		return Record{}, 0, "bad record marker"
	}
	n := int(binary.LittleEndian.Uint32(data[4:]))
	switch {
	case n < fixedBody || n > maxRecordLen:
		return Record{}, 0, fmt.Sprintf("impossible record length %d", n)
	case headerSize+n > len(data):
		return Record{}, 0, "torn record at end of segment"
	}
	body := data[headerSize : headerSize+n]
	if crc32.Checksum(body, castagnoli) != binary.LittleEndian.Uint32(data[8:]) {
		return Record{}, 0, "CRC mismatch"
	}
	r, err := decodeBody(body)
	if err != nil {
		return Record{}, 0, err.Error()
	}
	return r, headerSize + n, ""
}

// scan parses every valid record in a segment's bytes. Damage (bad magic,
// impossible length, CRC mismatch, torn tail) is reported through bad with
// the offset where it starts; scanning resumes at the next offset holding a
// record that checks out.
func scan(data []byte, bad func(off int64, why string)) []scanned {
	var out []scanned
	badFrom, badWhy := -1, ""
	for off := 0; off < len(data); {
		r, n, why := parseRecord(data[off:])
		if why == "" {
			if badFrom >= 0 {
				bad(int64(badFrom), badWhy)
				badFrom = -1
			}
			out = append(out, scanned{rec: r, off: int64(off), size: int64(n)})
			off += n
			continue
		}
		if badFrom < 0 {
			badFrom, badWhy = off, why
		}
		off++
	}
	if badFrom >= 0 {
		bad(int64(badFrom), badWhy)
	}
	return out
}
