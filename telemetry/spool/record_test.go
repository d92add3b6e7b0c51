package spool

import (
	"bytes"
	"testing"
	"time"
)

func FuzzScan(f *testing.F) {
	var seed []byte
	for i := 0; i < 3; i++ {
		seed, _ = encode(seed, &Record{ID: uint64(i + 1), Time: time.Unix(0, int64(i)), Topic: "a/b", QoS: 1, Payload: []byte(`{"x":1}`)})
	}
	f.Add(seed)
	f.Add(seed[:len(seed)-3])
	f.Add(append([]byte{0x41, 0x53, 0x50, 0x31, 0xff, 0xff, 0xff, 0x7f}, seed...))
	f.Fuzz(func(t *testing.T, data []byte) {
		var bad int
		recs := scan(data, func(int64, string) { bad++ })
		var end int64
		for _, r := range recs {
			if r.off < end {
				t.Fatalf("record at %d overlaps the previous one ending at %d", r.off, end)
			}
			end = r.off + r.size
			// A record that passed its CRC re-encodes to the same bytes.
			again, err := encode(nil, &r.rec)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(again, data[r.off:end]) {
				t.Fatalf("record at %d does not re-encode to its bytes", r.off)
			}
		}
		if len(recs) == 0 && len(data) > 0 && bad == 0 {
			t.Fatal("non-empty data with no record and no damage reported")
		}
	})
}
