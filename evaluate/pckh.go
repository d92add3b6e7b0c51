package evaluate

import (
	"fmt"
	"math"

	"github.com/anytime-edge/edge/keypoints"
)

// PCKh counts the joints of pred within alpha times the head segment (the
// distance between truth[head[0]] and truth[head[1]]) of the matching truth
// joint. It returns the number correct out of len(truth).
func PCKh(pred, truth []keypoints.Point, head [2]int, alpha float64) (correct, total int, err error) {
	if len(pred) != len(truth) {
		return 0, 0, fmt.Errorf("pckh: %d predicted joints for %d true ones", len(pred), len(truth))
	}
	if head[0] < 0 || head[1] < 0 || head[0] >= len(truth) || head[1] >= len(truth) {
		return 0, 0, fmt.Errorf("pckh: head joints %v outside 0..%d", head, len(truth)-1)
	}
	a, b := truth[head[0]], truth[head[1]]
	limit := alpha * math.Hypot(a.X-b.X, a.Y-b.Y)
	for j := range truth {
		if math.Hypot(pred[j].X-truth[j].X, pred[j].Y-truth[j].Y) <= limit {
			correct++
		}
	}
	return correct, len(truth), nil
}
