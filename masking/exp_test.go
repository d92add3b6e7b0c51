package masking

import (
	"math"
	"testing"
)

func TestExp32MatchesMathExp(t *testing.T) {
	worst := 0.0
	for i := 0; i <= 170000; i++ {
		x := float32(-17 + float64(i)*1e-4)
		got := float64(exp32(x))
		want := math.Exp(float64(x))
		if rel := math.Abs(got-want) / want; rel > worst {
			worst = rel
		}
	}
	if worst > 3e-7 {
		t.Errorf("exp32 worst relative error on [-17, 0] = %g, want ≤ 3e-7", worst)
	}
}
