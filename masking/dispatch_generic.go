//go:build !(goexperiment.simd && amd64)

package masking

// Accelerated names the vector path in use: none in this build.
const Accelerated = "none"

func rowMax(dst, row []float32)              { rowMaxScalar(dst, row) }
func expAccumulate(sum, maxv, row []float32) { expAccumulateScalar(sum, maxv, row) }
func rowSelect(dst, src, mask []float32)     { rowSelectScalar(dst, src, mask) }
func nonFinite(x []float32) float32          { return nonFiniteScalar(x) }

// softmaxColumns has no vector version in this build.
func softmaxColumns(conf, x []float32, hw, channels, t0, t1 int) bool { return false }
