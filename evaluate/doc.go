// Package evaluate scores dense predictions the way the Python toolchain
// (models/adpc/evaluate.py) does, so that a bundle run by the Go runtime can
// be checked against the PyTorch evaluation.
//
// Segmentation is scored with mean IoU from a confusion matrix (Confusion)
// accumulated at the output stride: the ground truth of each output cell is
// the label at the cell's centre (CentreSample), and cells labelled with the
// ignore value are left out. Keypoints are scored with PCKh: a joint is
// correct when its error is at most alpha times the ground-truth head segment
// (PCKh). The zoo test runs the shipped bundles under models/zoo on their 20
// fixed test images and requires the PyTorch figures within 0.5 points.
//
// Its place in the tree, and what it may import: docs/architecture.md.
package evaluate
