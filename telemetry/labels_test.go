package telemetry

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"image"
	"image/color"
	"image/png"
	"math"
	"strings"
	"testing"
	"time"
)

func paletted(t *testing.T) []byte {
	t.Helper()
	img := image.NewPaletted(image.Rect(0, 0, 64, 48), color.Palette{color.Black, color.RGBA{128, 64, 128, 255}})
	for i := range img.Pix {
		img.Pix[i] = uint8(i % 2)
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// pngText returns the text of the tEXt chunk with keyword, checking chunk
// CRCs on the way.
func pngText(t *testing.T, b []byte, keyword string) string {
	t.Helper()
	for off := 8; off+12 <= len(b); {
		n := int(binary.BigEndian.Uint32(b[off:]))
		typ := string(b[off+4 : off+8])
		data := b[off+8 : off+8+n]
		if typ == "tEXt" && strings.HasPrefix(string(data), keyword+"\x00") {
			return string(data[len(keyword)+1:])
		}
		off += 12 + n
	}
	t.Fatalf("no tEXt chunk %q", keyword)
	return ""
}

func TestLabelsCarryEnvelope(t *testing.T) {
	tests := []struct {
		name string
		qos  int
	}{{"qos0 live", 0}, {"qos1 spooled", 1}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := startBroker(t, "127.0.0.1:0")
			defer b.Close()
			var col collector
			col.attach(t, b, "anytime/+/+/+/result/labels")
			log, _ := testLogger()
			cfg := testConfig(t, b.URL())
			cfg.LabelsQoS = tc.qos
			p := newPublisher(t, cfg, nil, log)
			defer closePublisher(t, p)
			waitConnected(t, p)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			src := paletted(t)
			ts := time.Date(2026, 11, 27, 3, 0, 0, 5, time.UTC)
			if err := p.PublishLabels(ctx, 1203, ts, src, false); err != nil {
				t.Fatal(err)
			}
			if err := p.PublishLabels(ctx, 1, ts, []byte("not a png"), false); err == nil {
				t.Fatal("PublishLabels accepted bytes that are not a PNG")
			}
			waitFor(t, 5*time.Second, "labels", func() bool { return len(col.snapshot()) == 1 })
			got := col.snapshot()[0].payload
			img, err := png.Decode(bytes.NewReader(got))
			if err != nil {
				t.Fatalf("published labels are not a valid PNG: %v", err)
			}
			want, _ := png.Decode(bytes.NewReader(src))
			if _, ok := img.(*image.Paletted); !ok || !bytes.Equal(img.(*image.Paletted).Pix, want.(*image.Paletted).Pix) {
				t.Fatal("label map changed")
			}
			text := pngText(t, got, "anytime")
			checkAgainst(t, "labels-meta", []byte(text))
			var meta labelsMeta
			if err := json.Unmarshal([]byte(text), &meta); err != nil {
				t.Fatal(err)
			}
			if meta.Frame != 1203 || meta.Boot != p.Boot() || meta.Device != "drone-7" || meta.Seq == 0 || !meta.TS.Equal(ts) {
				t.Fatalf("labels envelope = %+v", meta)
			}
		})
	}
}

// TestSeqHasNoGaps: a message that cannot be encoded does not use up a
// seq, so consumers can read a gap as a loss.
func TestSeqHasNoGaps(t *testing.T) {
	log, _ := testLogger()
	p, err := New(context.Background(), testConfig(t, "tcp://"+freeAddr(t)), nil, log)
	if err != nil {
		t.Fatal(err)
	}
	defer closePublisher(t, p)
	ctx := context.Background()
	a, bad, c := sampleResult(1), sampleResult(2), sampleResult(3)
	bad.Energy.MJ = math.NaN()
	if err := p.Publish(ctx, a); err != nil {
		t.Fatal(err)
	}
	if err := p.Publish(ctx, bad); err == nil {
		t.Fatal("Publish accepted a NaN")
	}
	if err := p.PublishLabels(ctx, 2, time.Now(), []byte("nope"), false); err == nil {
		t.Fatal("PublishLabels accepted a non-PNG")
	}
	if err := p.Publish(ctx, c); err != nil {
		t.Fatal(err)
	}
	if c.Seq != a.Seq+1 {
		t.Fatalf("seq after failed publishes = %d, want %d", c.Seq, a.Seq+1)
	}
}

// TestDurableLabelsAreSpooled: with result/labels at QoS 0 and no broker,
// a label map is dropped (counted) unless it is durable (a snapshot's),
// which goes to the spool like a result.
func TestDurableLabelsAreSpooled(t *testing.T) {
	log, _ := testLogger()
	cfg := testConfig(t, "tcp://"+freeAddr(t))
	synced := make(chan uint64, 4)
	cfg.onSynced = func(seq uint64) { synced <- seq }
	p, err := New(context.Background(), cfg, nil, log)
	if err != nil {
		t.Fatal(err)
	}
	defer closePublisher(t, p)
	ctx := context.Background()
	src := paletted(t)
	if err := p.PublishLabels(ctx, 1, time.Now(), src, false); err != nil {
		t.Fatal(err)
	}
	if err := p.PublishLabels(ctx, 2, time.Now(), src, true); err != nil {
		t.Fatal(err)
	}
	select {
	case <-synced:
	case <-time.After(5 * time.Second):
		t.Fatal("the durable label map was not written to the spool")
	}
	if n := p.spool.Stats().Records; n != 1 {
		t.Fatalf("spool holds %d records, want the durable label map only", n)
	}
	recs, err := p.spool.Read(p.spool.Oldest(), 2)
	if err != nil || len(recs) != 1 || !strings.HasSuffix(recs[0].Topic, "/result/labels") || recs[0].QoS != 1 {
		t.Fatalf("spooled %+v (%v), want one QoS 1 result/labels record", recs, err)
	}
	if !strings.Contains(pngText(t, recs[0].Payload, "anytime"), `"frame":2`) {
		t.Fatal("the spooled label map is not frame 2's")
	}
}
