package evaluate

import (
	"math"
	"strings"
	"testing"

	"github.com/anytime-edge/edge/keypoints"
)

func TestConfusionMIoU(t *testing.T) {
	tests := []struct {
		name        string
		classes     int
		pred, truth []uint8
		want        float64
	}{
		{"perfect", 3, []uint8{0, 1, 2, 2}, []uint8{0, 1, 2, 2}, 100},
		// each class: tp 1, union 3 → 33.3.
		{"one swap", 2, []uint8{0, 1, 1, 0}, []uint8{0, 1, 0, 1}, 100.0 / 3},
		{"ignore cells skipped", 2, []uint8{0, 1, 1}, []uint8{0, 1, 255}, 100},
		// class 2 absent from both: not averaged.
		{"absent class", 3, []uint8{0, 0}, []uint8{0, 1}, 25},
		{"nothing counted", 2, []uint8{1}, []uint8{255}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := NewConfusion(tc.classes)
			if err := c.Add(tc.pred, tc.truth, 255); err != nil {
				t.Fatal(err)
			}
			if got := c.MIoU(); math.Abs(got-tc.want) > 1e-9 {
				t.Errorf("mIoU = %g, want %g", got, tc.want)
			}
		})
	}
}

func TestConfusionErrors(t *testing.T) {
	tests := []struct {
		name        string
		pred, truth []uint8
		want        string
	}{
		{"length", []uint8{0}, []uint8{0, 1}, "1 predictions for 2 labels"},
		{"truth out of range", []uint8{0}, []uint8{7}, "truth 7"},
		{"prediction out of range", []uint8{9}, []uint8{0}, "prediction 9"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := NewConfusion(2)
			err := c.Add(tc.pred, tc.truth, 255)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to mention %q", err, tc.want)
			}
			for _, n := range c.Counts {
				if n != 0 {
					t.Fatalf("counts %v after a refused Add, want all zero", c.Counts)
				}
			}
		})
	}
}

func TestCentreSample(t *testing.T) {
	// 4×8 labels, stride 4: cells sample rows 2 and columns 2 and 6.
	labels := make([]uint8, 32)
	for i := range labels {
		labels[i] = uint8(i)
	}
	dst := make([]uint8, 2)
	if err := CentreSample(dst, labels, 4, 8, 4); err != nil {
		t.Fatal(err)
	}
	if dst[0] != 18 || dst[1] != 22 {
		t.Errorf("got %v, want [18 22]", dst)
	}
	if err := CentreSample(make([]uint8, 3), labels, 4, 8, 4); err == nil {
		t.Error("wrong destination size accepted")
	}
}

func TestPCKh(t *testing.T) {
	truth := []keypoints.Point{{X: 0, Y: 0}, {X: 0, Y: 10}, {X: 20, Y: 20}}
	head := [2]int{0, 1} // head segment 10: limit 5 at alpha 0.5
	tests := []struct {
		name string
		pred []keypoints.Point
		want int
	}{
		{"exact", truth, 3},
		{"on the limit counts", []keypoints.Point{{X: 3, Y: 4}, {X: 0, Y: 10}, {X: 20, Y: 20}}, 3},
		{"just beyond", []keypoints.Point{{X: 3, Y: 4.01}, {X: 0, Y: 10}, {X: 26, Y: 20}}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, total, err := PCKh(tc.pred, truth, head, 0.5)
			if err != nil || got != tc.want || total != 3 {
				t.Errorf("got %d of %d (err %v), want %d of 3", got, total, err, tc.want)
			}
		})
	}
	if _, _, err := PCKh(truth[:2], truth, head, 0.5); err == nil {
		t.Error("mismatched lengths accepted")
	}
	if _, _, err := PCKh(truth, truth, [2]int{0, 5}, 0.5); err == nil {
		t.Error("head joint out of range accepted")
	}
}
