package evaluate

import "fmt"

// Confusion counts (truth, prediction) pairs of a segmentation over
// Classes classes. The zero value is unusable; use NewConfusion.
type Confusion struct {
	Classes int
	// Counts[t*Classes+p] is the number of cells of true class t predicted
	// as p.
	Counts []int64
}

// NewConfusion returns an empty matrix for the given number of classes.
func NewConfusion(classes int) *Confusion {
	return &Confusion{Classes: classes, Counts: make([]int64, classes*classes)}
}

// Add counts the cells of pred against truth (same length), skipping cells
// whose truth is ignore. A label outside 0..Classes−1 that is not ignore is
// an error, and nothing of that call is counted.
func (c *Confusion) Add(pred, truth []uint8, ignore uint8) error {
	if len(pred) != len(truth) {
		return fmt.Errorf("confusion: %d predictions for %d labels", len(pred), len(truth))
	}
	for i, t := range truth {
		if t != ignore && (int(t) >= c.Classes || int(pred[i]) >= c.Classes) {
			return fmt.Errorf("confusion: cell %d has truth %d, prediction %d, want both below %d", i, t, pred[i], c.Classes)
		}
	}
	for i, t := range truth {
		if t != ignore {
			c.Counts[int(t)*c.Classes+int(pred[i])]++
		}
	}
	return nil
}

// IoU is the intersection over union of each class, and whether the class
// occurs at all (in truth or prediction); absent classes have IoU 0.
func (c *Confusion) IoU() (iou []float64, present []bool) {
	n := c.Classes
	iou, present = make([]float64, n), make([]bool, n)
	for k := 0; k < n; k++ {
		tp := c.Counts[k*n+k]
		var row, col int64
		for j := 0; j < n; j++ {
			row += c.Counts[k*n+j]
			col += c.Counts[j*n+k]
		}
		if union := row + col - tp; union > 0 {
			iou[k], present[k] = float64(tp)/float64(union), true
		}
	}
	return iou, present
}

// MIoU is the mean IoU in percent over the classes present; 0 when none is.
func (c *Confusion) MIoU() float64 {
	iou, present := c.IoU()
	sum, n := 0.0, 0
	for k, ok := range present {
		if ok {
			sum += iou[k]
			n++
		}
	}
	if n == 0 {
		return 0
	}
	return 100 * sum / float64(n)
}

// CentreSample writes into dst ([H/stride][W/stride]) the label at the centre
// of each stride×stride cell of labels (H×W): row stride·i + stride/2,
// column stride·j + stride/2.
func CentreSample(dst, labels []uint8, height, width, stride int) error {
	h, w := height/stride, width/stride
	if len(labels) != height*width || len(dst) != h*w {
		return fmt.Errorf("centre sample: %d labels for %dx%d and %d cells for %dx%d", len(labels), height, width, len(dst), h, w)
	}
	c := stride / 2
	for i := 0; i < h; i++ {
		for j := 0; j < w; j++ {
			dst[i*w+j] = labels[(stride*i+c)*width+stride*j+c]
		}
	}
	return nil
}
