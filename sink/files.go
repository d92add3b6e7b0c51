package sink

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/anytime-edge/edge/anytime"
	"github.com/anytime-edge/edge/imaging"
	"github.com/anytime-edge/edge/internal/npy"
	"github.com/anytime-edge/edge/source"
	"github.com/anytime-edge/edge/telemetry"
)

// FilesOptions say what Files writes where.
type FilesOptions struct {
	// Dir receives {name}_overlay.png per frame with an image; "" writes
	// none of the files below Dir.
	Dir string
	// ExitMaps also writes each exit's label map, {name}_exit{k}.png
	// (segmentation), the moment the exit exists.
	ExitMaps bool
	// Summaries also writes {name}.json (a Summary) per frame.
	Summaries bool
	// Dump receives every exit's merged output, exit{k}_logits.npy, and
	// the mask it leaves for the next stage, exit{k}_mask.npy; "" none.
	// DumpPerFrame puts them under Dump/{name}/.
	Dump         string
	DumpPerFrame bool
	// Name names a frame's files; nil names them frame%06d by frame id.
	// Names must differ between frames (see Names).
	Name func(f *source.Frame) string
	// Threshold is the confidence threshold in force, for summaries.
	Threshold func() float32
}

// Files writes results to disk.
type Files struct {
	o FilesOptions
}

// NewFiles creates the directories and returns the file output.
func NewFiles(o FilesOptions) (*Files, error) {
	for _, d := range []struct{ flag, dir string }{{"--out", o.Dir}, {"--dump", o.Dump}} {
		if d.dir == "" {
			continue
		}
		if err := os.MkdirAll(d.dir, 0o755); err != nil {
			return nil, fmt.Errorf("%s: %w", d.flag, err)
		}
	}
	if o.Name == nil {
		o.Name = func(f *source.Frame) string { return fmt.Sprintf("frame%06d", f.ID) }
	}
	return &Files{o: o}, nil
}

func (w *Files) exit(v *view) error {
	name := w.o.Name(v.frame)
	k := len(v.exits)
	if w.o.Dump != "" {
		dir := w.o.Dump
		if w.o.DumpPerFrame {
			dir = filepath.Join(dir, name)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return fmt.Errorf("--dump: %w", err)
			}
		}
		if err := npy.WriteFloat32(filepath.Join(dir, fmt.Sprintf("exit%d_logits.npy", k)), []int{1, v.bundle.Channels(), v.h, v.w}, v.merged); err != nil {
			return err
		}
		if k < len(v.bundle.Stages) {
			if err := npy.WriteUint8(filepath.Join(dir, fmt.Sprintf("exit%d_mask.npy", k)), []int{v.h, v.w}, v.masks[k-1]); err != nil {
				return err
			}
		}
	}
	if w.o.Dir != "" && w.o.ExitMaps && v.pose == nil {
		return imaging.WritePNG(filepath.Join(w.o.Dir, fmt.Sprintf("%s_exit%d.png", name, k)), v.labelImage(k))
	}
	return nil
}

func (w *Files) frame(v *view) error {
	if v.err != nil || w.o.Dir == "" || len(v.errs) > 0 {
		return nil // a frame whose exit files failed gets no summary
	}
	name := w.o.Name(v.frame)
	if img := v.overlayImage(); img != nil {
		if err := imaging.WritePNG(filepath.Join(w.o.Dir, name+"_overlay.png"), img); err != nil {
			return err
		}
	}
	if !w.o.Summaries {
		return nil
	}
	width, height := v.size()
	s := Summary{
		Input: v.frame.Source, Width: width, Height: height,
		Bundle: telemetry.Bundle{Name: v.bundle.Name, SHA256: v.bundle.SHA256},
		Exits:  v.exits, Halt: SummaryHalt{Exit: len(v.exits), Reason: v.result.Halt},
		Classes: v.classes(), Keypoints: v.keypoints,
	}
	if w.o.Threshold != nil {
		s.Threshold = w.o.Threshold()
	}
	raw, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("encode summary: %w", err)
	}
	return os.WriteFile(filepath.Join(w.o.Dir, name+".json"), append(raw, '\n'), 0o644)
}

// Summary is the JSON Files writes per frame ({name}.json).
type Summary struct {
	Input     string               `json:"input"`
	Width     int                  `json:"width"`
	Height    int                  `json:"height"`
	Bundle    telemetry.Bundle     `json:"bundle"`
	Threshold float32              `json:"threshold"`
	Exits     []telemetry.Exit     `json:"exits"`
	Halt      SummaryHalt          `json:"halt"`
	Classes   map[string]float64   `json:"classes,omitempty"`
	Keypoints []telemetry.Keypoint `json:"keypoints,omitempty"`
}

// SummaryHalt says where and why a frame stopped.
type SummaryHalt struct {
	Exit   int            `json:"exit"`
	Reason anytime.Reason `json:"reason"`
}

// Names names each input's files by its base name without extension
// (a/x.png → x), for FilesOptions.Name over frames whose Source is the
// input's path. Two inputs with the same name would overwrite each other's
// files, so that is an error naming both.
func Names(paths []string) (func(f *source.Frame) string, error) {
	byPath := make(map[string]string, len(paths))
	first := make(map[string]string, len(paths))
	for _, p := range paths {
		stem := strings.TrimSuffix(filepath.Base(p), filepath.Ext(p))
		if prev, ok := first[stem]; ok && prev != p {
			return nil, fmt.Errorf("inputs %s and %s would both write %s_* and %s.json: rename one or run them separately", prev, p, stem, stem)
		}
		first[stem], byPath[p] = p, stem
	}
	return func(f *source.Frame) string { return byPath[f.Source] }, nil
}
