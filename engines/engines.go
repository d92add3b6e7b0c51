package engines

import (
	"context"
	"errors"
)

// ErrUnavailable is returned when a backend is not compiled in or its native
// library cannot be loaded.
var ErrUnavailable = errors.New("inference backend unavailable")

// Paths is a set of the exact paths of sparse stages: their sparse path (the
// sparse graph, or on the CPU the stage's native plan), their reference
// masked graph and their plain dense graph. Each path an engine opens holds
// its own copy of the stage's weights, so an engine opens only the paths it
// is asked for.
type Paths uint8

// Paths of sparse stages.
const (
	PathSparse Paths = 1 << iota
	PathMasked
	PathDense
	AllPaths = PathSparse | PathMasked | PathDense
)

// Engine is a bundle's stages opened on one backend. Buffers are allocated
// once and reused for every frame; the caller fills Image (and Mask before a
// masked stage) in place. An Engine is not safe for concurrent use.
type Engine interface {
	// Image is the input tensor ([1, 3, H, W] float32).
	Image() []float32
	// Mask is the mask tensor read by masked stages ([1, 1, h, w] float32,
	// 1 = compute); nil when no stage takes a mask.
	Mask() []float32
	// Run runs stage i: its graph or a sparse stage's reference masked
	// graph (a masked graph reads Mask). Stages run
	// in order within a frame: stage i reads the state stages before it
	// wrote. A cancelled ctx stops a run in flight where the backend
	// supports it.
	Run(ctx context.Context, i int) error
	// Paths is what sparse stage i can run: the paths the engine opened
	// (RunSparse, Run and RunDense fail on the others); zero for other
	// stages.
	Paths(i int) Paths
	// Tables returns sparse stage i's index-table buffers, one per entry
	// of bundle.Stage.Tables in that order, each as long as its map
	// (every pixel could be listed): the caller fills a prefix of each.
	Tables(i int) [][]int64
	// RunSparse runs sparse stage i's sparse graph with table k holding
	// its first lens[k] values (the engine may pad them with −1, which
	// changes no output); it writes the same outputs as Run.
	RunSparse(ctx context.Context, i int, lens []int) error
	// RunDense runs sparse stage i's plain dense graph, which equals Run
	// when the mask is all ones; an error when the stage has none.
	//
	// Run, RunSparse and RunDense of a sparse stage fail when the engine
	// was not opened with that path.
	RunDense(ctx context.Context, i int) error
	// Logits is stage i's raw exit output ([1, C, h, w] float32), valid
	// after Run(ctx, i) until the next Run of that stage.
	Logits(i int) []float32
	// Provider names the execution provider serving stage i.
	Provider(i int) string
	// Close releases everything the engine holds.
	Close() error
}
