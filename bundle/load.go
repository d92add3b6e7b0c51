package bundle

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/anytime-edge/edge/internal/regfile"
)

// Bundle is a loaded, validated bundle.
type Bundle struct {
	// Dir is the bundle directory.
	Dir string
	Manifest
	// SHA256 is the hex digest of bundle.json, every graph file in stage
	// order and every external-data (*.weights) file by name; it
	// identifies the exact model in results.
	SHA256 string
}

// StagePath is the path of stage i's ONNX file.
func (b *Bundle) StagePath(i int) string { return filepath.Join(b.Dir, b.Stages[i].File) }

// MaxManifestBytes bounds bundle.json (the zoo's are under 10 KiB).
const MaxManifestBytes = 1 << 20

// Load reads dir/bundle.json, validates it against every rule of the format
// and checks that each stage file exists. Errors wrap ErrInvalid and name the
// file and field.
//
// bundle.json must be a regular file of at most MaxManifestBytes, and every
// stage file a regular file: a device or a FIFO is refused, not read.
func Load(dir string) (*Bundle, error) {
	path := filepath.Join(dir, ManifestFile)
	raw, err := regfile.Read(path, MaxManifestBytes)
	if err != nil {
		return nil, fmt.Errorf("load bundle: %w", err)
	}
	m, err := Parse(path, raw)
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	h.Write(raw)
	for i, s := range m.Stages {
		if err := hashFile(h, filepath.Join(dir, s.File)); err != nil {
			return nil, &FieldError{File: path, Field: fmt.Sprintf("stages[%d].file", i),
				Msg: fmt.Sprintf("stage file %q: %v", s.File, unwrapPath(err))}
		}
		files, fields := s.sparseFiles(i)
		for k, f := range files {
			if err := hashFile(h, filepath.Join(dir, f)); err != nil {
				return nil, &FieldError{File: path, Field: fields[k], Msg: fmt.Sprintf("graph %q: %v", f, unwrapPath(err))}
			}
		}
	}
	if err := hashWeights(h, dir); err != nil {
		return nil, fmt.Errorf("load bundle: %w", err)
	}
	return &Bundle{Dir: dir, Manifest: *m, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

// WeightsExt ends the name of an ONNX external-data file of a bundle: the
// weights a stage's graphs share (docs/bundle.md, "sparse" mode).
const WeightsExt = ".weights"

// hashWeights adds every external-data file of the bundle, by name, to the
// digest: TensorRT's engine cache must never outlive a weight change.
func hashWeights(h io.Writer, dir string) error {
	names, err := filepath.Glob(filepath.Join(dir, "*"+WeightsExt))
	if err != nil {
		return err
	}
	for _, name := range names { // Glob sorts
		io.WriteString(h, filepath.Base(name))
		if err := hashFile(h, name); err != nil {
			return fmt.Errorf("weights %s: %w", name, err)
		}
	}
	return nil
}

// Parse decodes and validates a manifest; name is used in errors. Unknown
// fields are an error.
func Parse(name string, raw []byte) (*Manifest, error) {
	if err := refuseRemovedModes(name, raw); err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var m Manifest
	if err := dec.Decode(&m); err != nil {
		return nil, &FieldError{File: name, Msg: "not a valid manifest: " + err.Error()}
	}
	if dec.More() {
		return nil, &FieldError{File: name, Msg: "trailing data after the JSON object"}
	}
	if err := m.validate(name); err != nil {
		return nil, err
	}
	return &m, nil
}

// modeBlocksRemoved is the stage mode of the block-sparse bundles earlier
// versions wrote (export --mode blocks); this version does not run them.
const modeBlocksRemoved = "blocks"

// refuseRemovedModes names the first stage whose mode this version no
// longer runs, and what to do instead, before the strict decode would stop
// at that mode's fields with a less useful error.
func refuseRemovedModes(name string, raw []byte) error {
	var probe struct {
		Stages []struct {
			Mode string `json:"mode"`
		} `json:"stages"`
	}
	if json.Unmarshal(raw, &probe) != nil {
		return nil // not a manifest: the strict decode says why
	}
	for i, s := range probe.Stages {
		if s.Mode == modeBlocksRemoved {
			return &FieldError{File: name, Field: fmt.Sprintf("stages[%d].mode", i),
				Msg: fmt.Sprintf("%q mode was removed in this version (the exact %q mode is faster and needs no fine-tuning); re-export the model with --variant adpc (sparse mode)", modeBlocksRemoved, ModeSparse)}
		}
	}
	return nil
}

func hashFile(w io.Writer, path string) error {
	f, _, err := regfile.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(w, f)
	return err
}

// unwrapPath drops the repeated path from an *os.PathError.
func unwrapPath(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}
