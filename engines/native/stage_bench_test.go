//go:build cgo

package native

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkStages runs the native plans of stages 2-4 of a bundle at its
// input size with a random half of the pixels computed at stride 4 (nested
// masks at the coarser strides, the bundle's band radii), and with every
// pixel computed (active=1: nothing frozen). The bundle is
// $EDGE_NATIVE_BENCH_BUNDLE, by default the shipped fashion-seg-adpc demo
// (128×256, 8 to 64 channels: the executor's per-op cost weighs most
// there). For example:
//
//	python3 -m models.adpc.export --arch hrnet_w48 --variant adpc --seed 1 --height 512 --width 1024 --out /tmp/w48
//	EDGE_NATIVE_BENCH_BUNDLE=/tmp/w48 go test -run '^$' -bench Stages -benchtime 5x ./engines/native/
func BenchmarkStages(b *testing.B) {
	dir := os.Getenv("EDGE_NATIVE_BENCH_BUNDLE")
	if dir == "" {
		dir = filepath.Join("..", "..", "models", "zoo", "fashion-seg-adpc")
	}
	height, width, stages := bundleStages(b, dir)
	for _, st := range stages {
		for _, active := range []float64{0.5, 1} {
			for _, threads := range []int{1, 2} {
				b.Run(fmt.Sprintf("%s/active=%g/threads=%d", st.name, active, threads), func(b *testing.B) {
					s, err := Load(st.plan, height, width, threads)
					if err != nil {
						b.Fatal(err)
					}
					defer s.Close()
					rng := rand.New(rand.NewPCG(1, 1))
					in := make([][]float32, len(s.inIDs))
					for i, id := range s.inIDs {
						in[i] = make([]float32, s.size(id))
						for k := range in[i] {
							in[i][k] = rng.Float32()*2 - 1
						}
					}
					state := make([][]float32, len(s.stateIDs))
					for i, id := range s.stateIDs {
						state[i] = make([]float32, s.size(id))
					}
					logits := make([]float32, s.size(s.logitsID))
					mask4 := make([]bool, (height/4)*(width/4))
					for i := range mask4 {
						mask4[i] = rng.Float64() < active
					}
					index, band := tables(nestedMasks(mask4, height, width, s.strides), st.radii, height, width)
					ctx := context.Background()
					b.ResetTimer()
					for range b.N {
						if err := s.Run(ctx, in, index, band, state, logits); err != nil {
							b.Fatal(err)
						}
					}
					b.ReportMetric(float64(s.bytes)/(1<<20), "buffer-MiB")
				})
			}
		}
	}
}
