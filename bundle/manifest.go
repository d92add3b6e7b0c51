package bundle

// Format is the bundle format this package reads.
const Format = "anytime-bundle/1"

// ManifestFile is the name of the manifest inside a bundle directory.
const ManifestFile = "bundle.json"

// Task kinds.
const (
	TaskSegmentation = "segmentation"
	TaskKeypoints    = "keypoints"
)

// Confidence criteria.
const (
	CriterionMaxSoftmax  = "max_softmax"
	CriterionHeatmapPeak = "heatmap_peak"
)

// Stage execution modes.
const (
	ModeDense  = "dense"
	ModeMasked = "masked"
	ModeSparse = "sparse"
)

// Stage input sources other than "state:NAME".
const (
	SourceInput = "input"
	SourceMask  = "mask"
	statePrefix = "state:"
)

// Manifest is bundle.json.
type Manifest struct {
	Format       string      `json:"format"`
	Name         string      `json:"name"`
	Task         string      `json:"task"`
	Input        Input       `json:"input"`
	OutputStride int         `json:"output_stride"`
	Labels       []Label     `json:"labels"`
	Keypoints    *Keypoints  `json:"keypoints,omitempty"`
	Confidence   Confidence  `json:"confidence"`
	Stages       []Stage     `json:"stages"`
	Provenance   *Provenance `json:"provenance,omitempty"`
}

// Input describes the image tensor: float32 NCHW, value × Scale, then
// (v − Mean) / Std per channel.
type Input struct {
	Tensor string    `json:"tensor"`
	Shape  []int64   `json:"shape"`
	Color  string    `json:"color"`
	Scale  float32   `json:"scale"`
	Mean   []float32 `json:"mean"`
	Std    []float32 `json:"std"`
}

// Height and Width of the input tensor.
func (in Input) Height() int { return int(in.Shape[2]) }

// Width of the input tensor.
func (in Input) Width() int { return int(in.Shape[3]) }

// Label is one segmentation class (or keypoint heatmap) with its colour.
type Label struct {
	Name  string   `json:"name"`
	Color [3]uint8 `json:"color"`
}

// Keypoints describes a keypoints task: joint names, skeleton pairs and the
// two joints whose distance is the head segment for PCKh.
type Keypoints struct {
	Names    []string `json:"names"`
	Skeleton [][2]int `json:"skeleton"`
	Head     [2]int   `json:"head"`
}

// Confidence says how a pixel becomes frozen.
type Confidence struct {
	Criterion string  `json:"criterion"`
	Threshold float32 `json:"threshold"`
}

// Stage is one graph, ending in one exit.
type Stage struct {
	Name   string            `json:"name"`
	File   string            `json:"file"`
	Mode   string            `json:"mode"`
	Inputs map[string]string `json:"inputs"`
	State  []string          `json:"state"`
	Logits string            `json:"logits"`
	MACs   MACs              `json:"macs"`
	// Sparse is set on sparse stages only.
	Sparse *Sparse `json:"sparse,omitempty"`
}

// MACs is the stage's multiply-accumulate count for one image.
type MACs struct {
	Fixed  int64                 `json:"fixed"`
	Masked map[string]MaskedMACs `json:"masked"`
}

// MaskedMACs are the dense MACs and summed output channels of the masked
// convolutions at one output stride.
type MaskedMACs struct {
	MACs        int64 `json:"macs"`
	OutChannels int64 `json:"out_channels"`
}

// Provenance records where a bundle came from.
type Provenance struct {
	Arch             string `json:"arch"`
	Variant          string `json:"variant"`
	CheckpointSHA256 string `json:"checkpoint_sha256"`
	Exporter         string `json:"exporter"`
	Torch            string `json:"torch"`
	Opset            int    `json:"opset"`
}
