//go:build cgo

package ort

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	onnx "github.com/yalue/onnxruntime_go"

	"github.com/anytime-edge/edge/bundle"
	"github.com/anytime-edge/edge/engines"
	"github.com/anytime-edge/edge/engines/native"
	"github.com/anytime-edge/edge/trt"
)

// Engine runs a bundle's stages on ONNX Runtime. It implements engines.Engine.
type Engine struct {
	image  *onnx.Tensor[float32]
	mask   *onnx.Tensor[float32]
	state  map[string]*onnx.Tensor[float32]
	logits []*onnx.Tensor[float32]
	stages []*stage
	// sparseGraphOnCPU is Config.SparseGraphOnCPU.
	sparseGraphOnCPU bool
	// native holds what the native sparse stages share; nil when none.
	native *native.Shared

	watch    chan watchRequest
	finished chan struct{}
}

type stage struct {
	name     string
	isSparse bool
	session  *onnx.AdvancedSession // the stage, or a sparse stage's masked graph
	run      *onnx.RunOptions
	provider trt.Provider // of session (a sparse stage's: of its first opened graph)
	// Sparse stages: the provider of the plain dense graph, and of the
	// graph that ran last (what Provider reports).
	denseProvider, last trt.Provider
	sparse              *sparseGraph          // sparse stages only, unless native
	native              *nativeGraph          // sparse stages on the CPU with a native plan
	dense               *onnx.AdvancedSession // a sparse stage's plain dense graph, if it has one
}

// runner is a session bound to its inputs and outputs.
type runner interface {
	Run() error
	RunWithOptions(*onnx.RunOptions) error
}

// watchRequest asks the watcher goroutine to terminate a run if ctx ends
// before the run finishes.
type watchRequest struct {
	ctx  context.Context
	opts *onnx.RunOptions
}

var _ engines.Engine = (*Engine)(nil)

// GraphInfo reads the inputs and outputs an ONNX file declares.
func GraphInfo(path string) (bundle.GraphInfo, error) {
	ins, outs, err := onnx.GetInputOutputInfo(path)
	if err != nil {
		return bundle.GraphInfo{}, fmt.Errorf("read graph %s: %w", path, err)
	}
	return bundle.GraphInfo{Inputs: tensorInfos(ins), Outputs: tensorInfos(outs)}, nil
}

func tensorInfos(in []onnx.InputOutputInfo) []bundle.TensorInfo {
	out := make([]bundle.TensorInfo, len(in))
	for i, t := range in {
		out[i] = bundle.TensorInfo{Name: t.Name, Type: elementType(t), Shape: []int64(t.Dimensions)}
	}
	return out
}

func elementType(t onnx.InputOutputInfo) string {
	if t.OrtValueType != onnx.ONNXTypeTensor {
		return t.OrtValueType.String()
	}
	switch t.DataType {
	case onnx.TensorElementDataTypeFloat:
		return "float32"
	case onnx.TensorElementDataTypeInt64:
		return "int64"
	default:
		return strings.ToLower(strings.TrimPrefix(t.DataType.String(), "ONNX_TENSOR_ELEMENT_DATA_TYPE_"))
	}
}

// Open checks every stage file of b against its manifest and creates one
// session per stage on the first provider of cfg that can be set up for it.
// Cleanup on failure releases whatever was created.
func Open(rt *Runtime, b *bundle.Bundle, cfg Config) (_ *Engine, err error) {
	if rt == nil {
		return nil, fmt.Errorf("open %s: %w: ONNX Runtime is not initialised", b.Dir, engines.ErrUnavailable)
	}
	if err := cfg.Providers.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	paths := cfg.Paths
	if paths == 0 {
		paths = engines.AllPaths
	}
	graphs := make([]bundle.GraphInfo, len(b.Stages))
	for i := range b.Stages {
		if graphs[i], err = GraphInfo(b.StagePath(i)); err != nil {
			return nil, err
		}
	}
	if err := b.CheckGraphs(graphs); err != nil {
		return nil, err
	}
	twins := map[int]bundle.GraphInfo{}
	for i, s := range b.Stages {
		if s.Mode == bundle.ModeSparse {
			if twins[i], err = checkSparse(b, i, graphs[i]); err != nil {
				return nil, err
			}
		}
	}
	e := &Engine{state: map[string]*onnx.Tensor[float32]{}, sparseGraphOnCPU: cfg.SparseGraphOnCPU}
	defer func() {
		if err != nil {
			e.Close()
		}
	}()
	if e.image, err = onnx.NewEmptyTensor[float32](onnx.NewShape(b.Input.Shape...)); err != nil {
		return nil, fmt.Errorf("allocate image tensor: %w", err)
	}
	h, w := b.OutputSize()
	// A provider that cannot be set up for one stage (not in this build,
	// libraries missing) cannot for the others: it is tried, and logged,
	// once.
	unavailable := map[trt.Provider]error{}
	for i, s := range b.Stages {
		if s.Mode != bundle.ModeDense && e.mask == nil {
			if e.mask, err = onnx.NewEmptyTensor[float32](onnx.NewShape(1, 1, int64(h), int64(w))); err != nil {
				return nil, fmt.Errorf("allocate mask tensor: %w", err)
			}
		}
		lg, err := onnx.NewEmptyTensor[float32](onnx.NewShape(1, int64(b.Channels()), int64(h), int64(w)))
		if err != nil {
			return nil, fmt.Errorf("allocate logits of stage %q: %w", s.Name, err)
		}
		e.logits = append(e.logits, lg)
		for _, out := range graphs[i].Outputs {
			if !slices.Contains(s.State, out.Name) {
				continue
			}
			t, err := onnx.NewEmptyTensor[float32](onnx.NewShape(out.Shape...))
			if err != nil {
				return nil, fmt.Errorf("allocate state %q: %w", out.Name, err)
			}
			e.state[out.Name] = t
		}
		t0 := time.Now()
		st, err := e.openStage(b, i, graphs[i], twins[i], cfg.Providers, paths, unavailable, log)
		if st != nil {
			e.stages = append(e.stages, st) // closed with the engine even on error
		}
		if err != nil {
			return nil, err
		}
		if cfg.OnStage != nil {
			cfg.OnStage(i, s.Name, st.provider, time.Since(t0))
		}
	}
	e.watch = make(chan watchRequest)
	e.finished = make(chan struct{})
	go watchRuns(e.watch, e.finished)
	return e, nil
}

func (e *Engine) openStage(b *bundle.Bundle, i int, g, twin bundle.GraphInfo, opts trt.Options, paths engines.Paths, unavailable map[trt.Provider]error, log *slog.Logger) (*stage, error) {
	s := b.Stages[i]
	outNames := []string{s.Logits}
	outVals := []onnx.Value{e.logits[i]}
	for _, name := range s.State {
		outNames = append(outNames, name)
		outVals = append(outVals, e.state[name])
	}
	if s.Mode == bundle.ModeSparse {
		return e.openSparseStage(b, i, g, twin, outNames, outVals, opts, paths, unavailable, log)
	}
	path := b.StagePath(i)
	inNames, inVals, err := e.bind(s, g, nil)
	if err != nil {
		return nil, err
	}
	key := trt.StageKey{BundleSHA256: b.SHA256, Stage: s.Name}
	st := &stage{name: s.Name}
	st.provider, err = choose(opts, key, nil, unavailable, log, s.Name, path, func(so *onnx.SessionOptions) (err error) {
		st.session, err = onnx.NewAdvancedSession(path, inNames, outNames, inVals, outVals, so)
		return err
	})
	if err != nil {
		return nil, err
	}
	log.Info("stage ready", "stage", s.Name, "provider", st.provider)
	if st.run, err = onnx.NewRunOptions(); err != nil {
		return st, fmt.Errorf("stage %q: run options: %w", s.Name, err)
	}
	return st, nil
}

// bind lists a graph's input names and the engine's tensors feeding them;
// extra supplies the tensors of index tables (by input name).
func (e *Engine) bind(s bundle.Stage, g bundle.GraphInfo, extra map[string]onnx.Value) ([]string, []onnx.Value, error) {
	var names []string
	var vals []onnx.Value
	for _, in := range g.Inputs {
		src := s.Inputs[in.Name]
		var v onnx.Value
		switch {
		case src == bundle.SourceInput:
			v = e.image
		case src == bundle.SourceMask, s.Sparse != nil && in.Name == s.Sparse.Masked.Mask:
			v = e.mask
		case strings.HasPrefix(src, "state:"):
			v = e.state[strings.TrimPrefix(src, "state:")]
		case strings.HasPrefix(src, bundle.SourceIndexPrefix), strings.HasPrefix(src, bundle.SourceBandPrefix):
			v = extra[in.Name]
		}
		if v == nil {
			return nil, nil, fmt.Errorf("stage %q: input %q: source %q is not supported", s.Name, in.Name, src)
		}
		names = append(names, in.Name)
		vals = append(vals, v)
	}
	return names, vals, nil
}

// choose creates a session with the first provider of opts that works,
// remembering providers that cannot be set up at all.
func choose(opts trt.Options, key trt.StageKey, profile *trt.Profile, unavailable map[trt.Provider]error, log *slog.Logger, what, path string, create func(*onnx.SessionOptions) error) (trt.Provider, error) {
	provider, failed, err := trt.Choose(opts.Order, func(p trt.Provider) error {
		if err, known := unavailable[p]; known {
			return err
		}
		so, err := sessionOptions(p, opts, key, profile)
		if err != nil {
			unavailable[p] = err
			logUnavailable(log, p, err, opts.Explicit)
			return err
		}
		defer so.Destroy()
		return create(so)
	})
	for _, a := range failed {
		if _, known := unavailable[a.Provider]; !known {
			log.Warn("execution provider could not run the stage, trying the next", "stage", what, "provider", a.Provider, "reason", a.Err)
		}
	}
	if err != nil {
		return "", fmt.Errorf("stage %q (%s): %w", what, path, err)
	}
	return provider, nil
}

// sessionOptions builds session options with provider p appended. A provider
// that cannot be appended is an error: ONNX Runtime would otherwise create
// the session and silently run it on the CPU.
func sessionOptions(p trt.Provider, opts trt.Options, key trt.StageKey, profile *trt.Profile) (*onnx.SessionOptions, error) {
	so, err := onnx.NewSessionOptions()
	if err != nil {
		return nil, err
	}
	if err := configure(so, p, opts, key, profile); err != nil {
		so.Destroy()
		return nil, err
	}
	return so, nil
}

func configure(so *onnx.SessionOptions, p trt.Provider, opts trt.Options, key trt.StageKey, profile *trt.Profile) error {
	if opts.IntraOpThreads > 0 {
		if err := so.SetIntraOpNumThreads(opts.IntraOpThreads); err != nil {
			return err
		}
	}
	if err := so.AddSessionConfigEntry("session.use_env_allocators", "1"); err != nil {
		return err
	}
	// A bundle has several sessions (one per stage, up to three per sparse
	// stage) and they run one after another: an intra-op pool left
	// spinning after its run takes the cores from the next session's.
	if err := so.AddSessionConfigEntry("session.intra_op.allow_spinning", "0"); err != nil {
		return err
	}
	switch p {
	case trt.TensorRT:
		po, err := onnx.NewTensorRTProviderOptions()
		if err != nil {
			return err
		}
		defer po.Destroy()
		if err := po.Update(opts.TensorRTOptions(key, profile)); err != nil {
			return err
		}
		return so.AppendExecutionProviderTensorRT(po)
	case trt.CUDA:
		po, err := onnx.NewCUDAProviderOptions()
		if err != nil {
			return err
		}
		defer po.Destroy()
		if err := po.Update(opts.CUDAOptions()); err != nil {
			return err
		}
		return so.AppendExecutionProviderCUDA(po)
	case trt.CPU:
		return nil
	}
	return fmt.Errorf("unknown provider %q", p)
}

// setUp reports whether provider p can be appended to session options.
func setUp(p trt.Provider, opts trt.Options) error {
	so, err := sessionOptions(p, opts, trt.StageKey{Stage: "probe"}, nil)
	if err == nil {
		so.Destroy()
	}
	return err
}

// watchRuns terminates a run whose context ends before it finishes.
func watchRuns(watch <-chan watchRequest, finished <-chan struct{}) {
	for req := range watch {
		select {
		case <-req.ctx.Done():
			req.opts.Terminate()
			<-finished
		case <-finished:
		}
	}
}

// Image implements engines.Engine.
func (e *Engine) Image() []float32 { return e.image.GetData() }

// Mask implements engines.Engine.
func (e *Engine) Mask() []float32 {
	if e.mask == nil {
		return nil
	}
	return e.mask.GetData()
}

// Logits implements engines.Engine.
func (e *Engine) Logits(i int) []float32 { return e.logits[i].GetData() }

// Provider implements engines.Engine.
func (e *Engine) Provider(i int) string {
	if s := e.stages[i]; s.last != "" {
		return string(s.last)
	}
	return string(e.stages[i].provider)
}

// Run implements engines.Engine. A context that can end arms RunOptions
// termination, so a deadline also stops a stage in flight.
func (e *Engine) Run(ctx context.Context, i int) error {
	s := e.stages[i]
	if s.session == nil {
		return fmt.Errorf("run stage %q: its masked graph was not opened", s.name)
	}
	if s.sparse != nil || s.native != nil || s.dense != nil {
		s.last = s.provider
	}
	if err := e.runGraph(ctx, s, s.session); err != nil {
		return fmt.Errorf("run stage %q: %w", s.name, err)
	}
	return nil
}

// runGraph runs r with stage s's run options, terminating it if ctx ends
// first.
func (e *Engine) runGraph(ctx context.Context, s *stage, r runner) error {
	if ctx.Done() == nil {
		return r.Run()
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	e.watch <- watchRequest{ctx: ctx, opts: s.run}
	err := r.RunWithOptions(s.run)
	e.finished <- struct{}{}
	if ctx.Err() != nil {
		s.run.UnsetTerminate()
		return ctx.Err()
	}
	return err
}

// Close implements engines.Engine. It tolerates a partly opened engine.
func (e *Engine) Close() error {
	var errs []error
	if e.watch != nil {
		close(e.watch)
		e.watch = nil
	}
	for _, s := range e.stages {
		if s.run != nil {
			errs = append(errs, s.run.Destroy())
		}
		if s.session != nil {
			errs = append(errs, s.session.Destroy())
		}
		if s.dense != nil {
			errs = append(errs, s.dense.Destroy())
		}
		if s.sparse != nil {
			errs = append(errs, s.sparse.destroy())
		}
		if s.native != nil {
			errs = append(errs, s.native.stage.Close())
		}
	}
	e.stages = nil
	if e.native != nil {
		errs = append(errs, e.native.Close())
		e.native = nil
	}
	destroy := func(t *onnx.Tensor[float32]) {
		if t != nil {
			errs = append(errs, t.Destroy())
		}
	}
	destroy(e.image)
	destroy(e.mask)
	for _, t := range e.logits {
		destroy(t)
	}
	for _, t := range e.state {
		destroy(t)
	}
	e.image, e.mask, e.logits, e.state = nil, nil, nil, nil
	return errors.Join(errs...)
}
