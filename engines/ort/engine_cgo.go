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

	"github.com/anytime-edge/edge/engines"
	"github.com/anytime-edge/edge/models"
	"github.com/anytime-edge/edge/trt"
)

// Config is how a bundle's engine is built.
type Config struct {
	Providers trt.Options
	Log       *slog.Logger
	// OnStage, when set, is called after each stage's session is created
	// (where TensorRT builds or loads its engine), for progress reports.
	OnStage func(i int, name string, provider trt.Provider, took time.Duration)
}

// Engine runs a bundle's stages on ONNX Runtime. It implements engines.Engine.
type Engine struct {
	image  *onnx.Tensor[float32]
	mask   *onnx.Tensor[float32]
	state  map[string]*onnx.Tensor[float32]
	logits []*onnx.Tensor[float32]
	stages []*stage

	watch    chan watchRequest
	finished chan struct{}
}

type stage struct {
	name     string
	session  *onnx.AdvancedSession
	run      *onnx.RunOptions
	provider trt.Provider
}

// watchRequest asks the watcher goroutine to terminate a run if ctx ends
// before the run finishes.
type watchRequest struct {
	ctx  context.Context
	opts *onnx.RunOptions
}

var _ engines.Engine = (*Engine)(nil)

// GraphInfo reads the inputs and outputs an ONNX file declares.
func GraphInfo(path string) (models.GraphInfo, error) {
	ins, outs, err := onnx.GetInputOutputInfo(path)
	if err != nil {
		return models.GraphInfo{}, fmt.Errorf("read graph %s: %w", path, err)
	}
	return models.GraphInfo{Inputs: tensorInfos(ins), Outputs: tensorInfos(outs)}, nil
}

func tensorInfos(in []onnx.InputOutputInfo) []models.TensorInfo {
	out := make([]models.TensorInfo, len(in))
	for i, t := range in {
		out[i] = models.TensorInfo{Name: t.Name, Type: elementType(t), Shape: []int64(t.Dimensions)}
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
func Open(rt *Runtime, b *models.Bundle, cfg Config) (_ *Engine, err error) {
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
	graphs := make([]models.GraphInfo, len(b.Stages))
	for i := range b.Stages {
		if graphs[i], err = GraphInfo(b.StagePath(i)); err != nil {
			return nil, err
		}
	}
	if err := b.CheckGraphs(graphs); err != nil {
		return nil, err
	}
	e := &Engine{state: map[string]*onnx.Tensor[float32]{}}
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
		if s.Mode != models.ModeDense && s.Mode != models.ModeMasked {
			return nil, fmt.Errorf("stage %q: mode %q is not supported by this runtime", s.Name, s.Mode)
		}
		if s.Mode == models.ModeMasked && e.mask == nil {
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
		st, err := e.openStage(b, i, graphs[i], cfg.Providers, unavailable, log)
		if err != nil {
			return nil, err
		}
		e.stages = append(e.stages, st)
		if cfg.OnStage != nil {
			cfg.OnStage(i, s.Name, st.provider, time.Since(t0))
		}
	}
	e.watch = make(chan watchRequest)
	e.finished = make(chan struct{})
	go e.watchRuns()
	return e, nil
}

func (e *Engine) openStage(b *models.Bundle, i int, g models.GraphInfo, opts trt.Options, unavailable map[trt.Provider]error, log *slog.Logger) (*stage, error) {
	s := b.Stages[i]
	var inNames []string
	var inVals []onnx.Value
	for _, in := range g.Inputs {
		src := s.Inputs[in.Name]
		var v onnx.Value
		switch {
		case src == models.SourceInput:
			v = e.image
		case src == models.SourceMask:
			v = e.mask
		case strings.HasPrefix(src, "state:"):
			v = e.state[strings.TrimPrefix(src, "state:")]
		default:
			return nil, fmt.Errorf("stage %q: input %q: source %q is not supported", s.Name, in.Name, src)
		}
		inNames = append(inNames, in.Name)
		inVals = append(inVals, v)
	}
	outNames := []string{s.Logits}
	outVals := []onnx.Value{e.logits[i]}
	for _, name := range s.State {
		outNames = append(outNames, name)
		outVals = append(outVals, e.state[name])
	}
	key := trt.StageKey{BundleSHA256: b.SHA256, Stage: s.Name}
	var session *onnx.AdvancedSession
	provider, failed, err := trt.Choose(opts.Order, func(p trt.Provider) error {
		if err, known := unavailable[p]; known {
			return err
		}
		so, err := sessionOptions(p, opts, key)
		if err != nil {
			unavailable[p] = err
			log.Warn("execution provider unavailable, trying the next", "provider", p, "reason", err)
			return err
		}
		defer so.Destroy()
		session, err = onnx.NewAdvancedSession(b.StagePath(i), inNames, outNames, inVals, outVals, so)
		return err
	})
	for _, a := range failed {
		if _, known := unavailable[a.Provider]; !known {
			log.Warn("execution provider could not run the stage, trying the next", "stage", s.Name, "provider", a.Provider, "reason", a.Err)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("stage %q (%s): %w", s.Name, b.StagePath(i), err)
	}
	log.Info("stage ready", "stage", s.Name, "provider", provider)
	st := &stage{name: s.Name, session: session, provider: provider}
	if st.run, err = onnx.NewRunOptions(); err != nil {
		session.Destroy()
		return nil, fmt.Errorf("stage %q: run options: %w", s.Name, err)
	}
	return st, nil
}

// sessionOptions builds session options with provider p appended. A provider
// that cannot be appended is an error: ONNX Runtime would otherwise create
// the session and silently run it on the CPU.
func sessionOptions(p trt.Provider, opts trt.Options, key trt.StageKey) (*onnx.SessionOptions, error) {
	so, err := onnx.NewSessionOptions()
	if err != nil {
		return nil, err
	}
	if err := configure(so, p, opts, key); err != nil {
		so.Destroy()
		return nil, err
	}
	return so, nil
}

func configure(so *onnx.SessionOptions, p trt.Provider, opts trt.Options, key trt.StageKey) error {
	if opts.IntraOpThreads > 0 {
		if err := so.SetIntraOpNumThreads(opts.IntraOpThreads); err != nil {
			return err
		}
	}
	switch p {
	case trt.TensorRT:
		po, err := onnx.NewTensorRTProviderOptions()
		if err != nil {
			return err
		}
		defer po.Destroy()
		if err := po.Update(opts.TensorRTOptions(key, nil)); err != nil {
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

// ProviderStatus says whether a provider can be set up here and, if not, the
// library's reason.
type ProviderStatus struct {
	Provider trt.Provider
	Err      error
}

// Probe tries to set up each provider on fresh session options.
func Probe(rt *Runtime, opts trt.Options) []ProviderStatus {
	var out []ProviderStatus
	for _, p := range []trt.Provider{trt.TensorRT, trt.CUDA, trt.CPU} {
		so, err := sessionOptions(p, opts, trt.StageKey{Stage: "probe"})
		if err == nil {
			so.Destroy()
		}
		out = append(out, ProviderStatus{Provider: p, Err: err})
	}
	return out
}

// watchRuns terminates a run whose context ends before it finishes.
func (e *Engine) watchRuns() {
	for req := range e.watch {
		select {
		case <-req.ctx.Done():
			req.opts.Terminate()
			<-e.finished
		case <-e.finished:
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
func (e *Engine) Provider(i int) string { return string(e.stages[i].provider) }

// Run implements engines.Engine. A context that can end arms RunOptions
// termination, so a deadline also stops a stage in flight.
func (e *Engine) Run(ctx context.Context, i int) error {
	s := e.stages[i]
	if ctx.Done() == nil {
		if err := s.session.Run(); err != nil {
			return fmt.Errorf("run stage %q: %w", s.name, err)
		}
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	e.watch <- watchRequest{ctx: ctx, opts: s.run}
	err := s.session.RunWithOptions(s.run)
	e.finished <- struct{}{}
	if ctx.Err() != nil {
		s.run.UnsetTerminate()
		return fmt.Errorf("run stage %q: %w", s.name, ctx.Err())
	}
	if err != nil {
		return fmt.Errorf("run stage %q: %w", s.name, err)
	}
	return nil
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
		errs = append(errs, s.session.Destroy())
	}
	e.stages = nil
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
