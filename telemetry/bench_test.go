package telemetry

import (
	"context"
	"sort"
	"testing"
	"time"
)

// benchPublish publishes b.N results, optionally paced at rate per second,
// through the spool to an in-process mochi broker, and reports the
// delivered rate (PUBACKed and removed from the spool) and the time Publish
// took in the calling (frame) loop.
func benchPublish(b *testing.B, rate float64) {
	log, _ := testLogger()
	brk := startBroker(b, "127.0.0.1:0")
	defer brk.Close()
	cfg := testConfig(b, brk.URL())
	if rate == 0 {
		// A burst with no pacing: size the hand-off queue to hold it, so
		// the figure is the pipeline's throughput, not the queue's size.
		cfg.QueueLen = b.N + 16
	}
	p := newPublisher(b, cfg, nil, log)
	defer closePublisher(b, p)
	waitConnected(b, p)
	msgs := make([]*Result, b.N)
	for i := range msgs {
		msgs[i] = sampleResult(uint64(i + 1))
	}
	lat := make([]time.Duration, b.N)
	b.ResetTimer()
	start := time.Now()
	for i, m := range msgs {
		if rate > 0 {
			if d := time.Until(start.Add(time.Duration(float64(i) / rate * float64(time.Second)))); d > 0 {
				time.Sleep(d)
			}
		}
		t0 := time.Now()
		if err := p.Publish(context.Background(), m); err != nil {
			b.Fatalf("Publish %d: %v", i, err)
		}
		lat[i] = time.Since(t0)
	}
	published := time.Since(start)
	for p.spool.Stats().Records > 0 || len(p.in) > 0 {
		time.Sleep(time.Millisecond)
	}
	delivered := time.Since(start)
	b.StopTimer()
	if st := p.spool.Stats(); st.Dropped > 0 {
		b.Fatalf("spool dropped %d", st.Dropped)
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	q := func(f float64) float64 { return float64(lat[min(len(lat)-1, int(f*float64(len(lat))))].Microseconds()) }
	b.ReportMetric(float64(b.N)/delivered.Seconds(), "delivered/s")
	b.ReportMetric(float64(b.N)/published.Seconds(), "published/s")
	b.ReportMetric(q(0.50), "publish-p50-µs")
	b.ReportMetric(q(0.99), "publish-p99-µs")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds()), "publish-max-µs")
}

// BenchmarkPublishResults publishes a burst as fast as the caller can;
// delivered/s is the most the spool, sender and broker sustain.
func BenchmarkPublishResults(b *testing.B) { benchPublish(b, 0) }

// BenchmarkFrameLoop5000Hz shows the headroom above 2,000 per second.
func BenchmarkFrameLoop5000Hz(b *testing.B) { benchPublish(b, 5000) }

// BenchmarkFrameLoop2000Hz paces results at 2,000 per second, as a frame
// loop would, and shows what Publish adds to each frame.
func BenchmarkFrameLoop2000Hz(b *testing.B) { benchPublish(b, 2000) }
