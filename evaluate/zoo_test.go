package evaluate

import (
	"context"
	"encoding/json"
	"errors"
	"image/color"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/anytime-edge/edge/anytime"
	"github.com/anytime-edge/edge/bundle"
	"github.com/anytime-edge/edge/engines"
	"github.com/anytime-edge/edge/engines/ort"
	"github.com/anytime-edge/edge/imaging"
	"github.com/anytime-edge/edge/keypoints"
	"github.com/anytime-edge/edge/trt"
)

// tolerance is how far (in points) the Go figures may be from PyTorch's.
const tolerance = 0.5

// expected is a test set's expected.json, written by models/adpc/zoo.py.
type expected struct {
	Task   string `json:"task"`
	Images []struct {
		Image  string       `json:"image"`
		Labels string       `json:"labels"`
		Joints [][2]float64 `json:"joints"`
	} `json:"images"`
	Ignore int `json:"ignore"`
	ADPC   struct {
		Threshold float32   `json:"threshold"`
		Exits     []float64 `json:"exits"`
	} `json:"adpc"`
}

func readExpected(t *testing.T, dir string) expected {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, "expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	var e expected
	if err := json.Unmarshal(raw, &e); err != nil {
		t.Fatalf("%s/expected.json: %v", dir, err)
	}
	return e
}

// runner runs a shipped bundle on ONNX Runtime's CPU provider and keeps
// every exit's merged output.
type runner struct {
	b      *bundle.Bundle
	e      *ort.Engine
	ex     *anytime.Executor
	merged [][]float32
}

func openRunner(t *testing.T, dir string) *runner {
	t.Helper()
	lib := filepath.Join("..", ".deps", "libonnxruntime.so.1")
	if _, err := os.Stat(lib); err != nil {
		lib = ""
	}
	rt, err := ort.Init(lib)
	if errors.Is(err, engines.ErrUnavailable) {
		t.Skipf("ONNX Runtime not available (run make setup): %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	b, err := bundle.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	opts := trt.DefaultOptions()
	opts.Order = []trt.Provider{trt.CPU}
	opts.IntraOpThreads = 1
	e, err := ort.Open(rt, b, ort.Config{Providers: opts})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	r := &runner{b: b, e: e}
	r.ex, err = anytime.New(b, e, anytime.Config{OnExit: func(x anytime.Exit, merged []float32, _ []uint8) {
		r.merged = append(r.merged, append([]float32(nil), merged...))
	}})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// run returns the merged output of every exit for the image at path; exits
// skipped because every pixel was frozen repeat the last one.
func (r *runner) run(t *testing.T, path string) [][]float32 {
	t.Helper()
	img, err := imaging.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if img.Rect.Dx() != r.b.Input.Width() || img.Rect.Dy() != r.b.Input.Height() {
		t.Fatalf("%s is %v, want the bundle's input size %dx%d", path, img.Rect.Size(), r.b.Input.Width(), r.b.Input.Height())
	}
	imaging.Preprocess(r.e.Image(), img, r.b.Input)
	r.merged = r.merged[:0]
	if _, err := r.ex.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	for len(r.merged) < len(r.b.Stages) {
		r.merged = append(r.merged, r.merged[len(r.merged)-1])
	}
	return r.merged
}

func readLabels(t *testing.T, path string) ([]uint8, int, int) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	r := img.Bounds()
	out := make([]uint8, 0, r.Dx()*r.Dy())
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			out = append(out, color.GrayModel.Convert(img.At(x, y)).(color.Gray).Y)
		}
	}
	return out, r.Dy(), r.Dx()
}

func zooDir(t *testing.T, name string) string {
	t.Helper()
	dir := filepath.Join("..", "models", "zoo", name)
	if _, err := os.Stat(filepath.Join(dir, "bundle.json")); err != nil {
		t.Skipf("bundle %s not shipped: %v", dir, err)
	}
	return dir
}

func checkExits(t *testing.T, got, want []float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d exits, want %d", len(got), len(want))
	}
	for k := range got {
		t.Logf("exit %d: Go %.3f, PyTorch %.3f", k+1, got[k], want[k])
		if math.Abs(got[k]-want[k]) > tolerance {
			t.Errorf("exit %d: Go %.3f, PyTorch %.3f: more than %g points apart", k+1, got[k], want[k], tolerance)
		}
	}
}

// TestSegmentationBundleMatchesPyTorch runs the shipped segmentation bundle
// at its shipped threshold on the 20 test scenes and compares each exit's
// mIoU with the PyTorch evaluation of the same scenes.
func TestSegmentationBundleMatchesPyTorch(t *testing.T) {
	dir := zooDir(t, "fashion-seg-adpc")
	set := filepath.Join(dir, "testset")
	want := readExpected(t, set)
	r := openRunner(t, dir)
	if r.b.Confidence.Threshold != want.ADPC.Threshold {
		t.Fatalf("bundle threshold %g, the PyTorch figures are for %g", r.b.Confidence.Threshold, want.ADPC.Threshold)
	}
	h, w := r.b.OutputSize()
	classes := r.b.Channels()
	conf := make([]*Confusion, len(r.b.Stages))
	for k := range conf {
		conf[k] = NewConfusion(classes)
	}
	pred := make([]uint8, h*w)
	truth := make([]uint8, h*w)
	for _, item := range want.Images {
		labels, lh, lw := readLabels(t, filepath.Join(set, item.Labels))
		if err := CentreSample(truth, labels, lh, lw, r.b.OutputStride); err != nil {
			t.Fatal(err)
		}
		for k, merged := range r.run(t, filepath.Join(set, item.Image)) {
			imaging.Argmax(pred, merged)
			if err := conf[k].Add(pred, truth, uint8(want.Ignore)); err != nil {
				t.Fatal(err)
			}
		}
	}
	got := make([]float64, len(conf))
	for k, c := range conf {
		got[k] = c.MIoU()
	}
	checkExits(t, got, want.ADPC.Exits)
}

// TestPoseBundleMatchesPyTorch runs the shipped pose bundle at its shipped
// threshold on the 20 test figures, decodes the keypoints of every exit and
// compares PCKh@0.5 with the PyTorch evaluation of the same figures.
func TestPoseBundleMatchesPyTorch(t *testing.T) {
	dir := zooDir(t, "fashion-pose-adpc")
	set := filepath.Join(dir, "testset")
	want := readExpected(t, set)
	r := openRunner(t, dir)
	if r.b.Keypoints == nil {
		t.Fatal("pose bundle has no keypoints object")
	}
	if r.b.Confidence.Threshold != want.ADPC.Threshold {
		t.Fatalf("bundle threshold %g, the PyTorch figures are for %g", r.b.Confidence.Threshold, want.ADPC.Threshold)
	}
	h, w := r.b.OutputSize()
	joints := len(r.b.Keypoints.Names)
	correct := make([]int, len(r.b.Stages))
	total := 0
	pts := make([]keypoints.Point, joints)
	truth := make([]keypoints.Point, joints)
	for _, item := range want.Images {
		if len(item.Joints) != joints {
			t.Fatalf("%s: %d joints, want %d", item.Image, len(item.Joints), joints)
		}
		for j, p := range item.Joints {
			truth[j] = keypoints.Point{X: p[0], Y: p[1]}
		}
		for k, merged := range r.run(t, filepath.Join(set, item.Image)) {
			keypoints.Decode(pts, merged, h, w, r.b.OutputStride)
			n, _, err := PCKh(pts, truth, r.b.Keypoints.Head, 0.5)
			if err != nil {
				t.Fatal(err)
			}
			correct[k] += n
		}
		total += joints
	}
	got := make([]float64, len(correct))
	for k, n := range correct {
		got[k] = 100 * float64(n) / float64(total)
	}
	checkExits(t, got, want.ADPC.Exits)
}
