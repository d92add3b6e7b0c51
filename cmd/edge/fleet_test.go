package main

import (
	"encoding/json"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/anytime-edge/edge/telemetry/broker"
)

// collector subscribes to a device's topics on the embedded broker.
type collector struct {
	mu   sync.Mutex
	msgs map[string][][]byte
}

func (c *collector) add(topic string, payload []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.msgs[topic] = append(c.msgs[topic], append([]byte(nil), payload...))
}

func (c *collector) get(topic string) [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.msgs[topic]
}

// TestRunOncePublishesOneResultPerImage runs `edge run --once` over the
// sample directory, publishing to an embedded (mochi) broker that the test
// starts first, so its in-process subscriber sees everything. Each good image
// gives exactly one final result (and intermediate ones with --progressive),
// each bad one a frame-failed event, and the run ends with the offline
// status.
func TestRunOncePublishesOneResultPerImage(t *testing.T) {
	lib := ortOrSkip(t)
	b, err := broker.Start(broker.Config{Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	col := &collector{msgs: map[string][][]byte{}}
	base := "anytime/v1/test/unit-1/"
	if err := b.Subscribe(base+"#", 1, func(topic string, payload []byte, _ bool) { col.add(topic, payload) }); err != nil {
		t.Fatal(err)
	}
	err = runEdge(t, "run", "--once", "--ort-lib", lib, "--providers", "cpu", "--bundle", filepath.Join(repo, "testdata/bundles/tiny"),
		"--progressive", "--mqtt", b.URL(), "--site", "test", "--device", "unit-1", "--spool", filepath.Join(t.TempDir(), "spool"),
		filepath.Join(repo, "testdata/images"))
	if err == nil || !strings.Contains(err.Error(), "2 of 5 frames failed") {
		t.Errorf("run: got %v, want the two broken images reported", err)
	}
	var sources []string
	for _, r := range finals(t, col.get(base+"result")) {
		sources = append(sources, filepath.Base(r))
	}
	sort.Strings(sources)
	if strings.Join(sources, ",") != "deep16.png,grey.png,street.png" {
		t.Errorf("final results for %v, want one each for deep16, grey and street", sources)
	}
	if n := len(col.get(base + "result")); n <= 3 {
		t.Errorf("--progressive published %d results, want intermediate exits too", n)
	}
	if n := len(col.get(base + "event/frame-failed")); n != 2 {
		t.Errorf("got %d frame-failed events, want 2", n)
	}
	if n := len(col.get(base + "result/labels")); n != 3 {
		t.Errorf("got %d label maps, want 3", n)
	}
	status := col.get(base + "status")
	if len(status) == 0 || !strings.Contains(string(status[len(status)-1]), `"online":false`) {
		t.Errorf("last status is not offline: %q", status)
	}
}

// finals returns the sources of the non-progressive results.
func finals(t *testing.T, msgs [][]byte) []string {
	var out []string
	for _, m := range msgs {
		var r struct {
			Progressive bool `json:"progressive"`
			Frame       struct {
				Source string `json:"source"`
			} `json:"frame"`
		}
		if err := json.Unmarshal(m, &r); err != nil {
			t.Fatalf("bad result %q: %v", m, err)
		}
		if !r.Progressive {
			out = append(out, r.Frame.Source)
		}
	}
	return out
}
