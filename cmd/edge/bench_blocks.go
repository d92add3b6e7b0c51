package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"text/tabwriter"

	"github.com/anytime-edge/edge/anytime"
	"github.com/anytime-edge/edge/imaging"
	"github.com/anytime-edge/edge/masking"
)

// runBlockFractions reports, for every exit k < K, the fraction of pixels
// stage k+1 computes (a_pix) and the fraction of block×block cells holding
// at least one of them (a_block): the ceiling of what block-sparse execution
// can save, averaged over the frames of --images.
func runBlockFractions(ctx context.Context, cfg Config, log *slog.Logger, out io.Writer) error {
	sizes := cfg.Bench.BlockSizes
	b, engine, err := openBundle(cfg.Engine, cfg.Engine.Bundle, log)
	if err != nil {
		return err
	}
	defer engine.Close()
	h, w := b.OutputSize()
	exits := len(b.Stages) - 1
	pix := make([]float64, exits)
	blk := make([][]float64, exits)
	for k := range blk {
		blk[k] = make([]float64, len(sizes))
	}
	ids := make([]int32, h*w)
	x, err := anytime.New(b, engine, anytime.Config{OnExit: func(e anytime.Exit, _ []float32, mask []uint8) {
		if e.Exit > exits {
			return
		}
		pix[e.Exit-1] += masking.Fraction(mask)
		for i, size := range sizes {
			blk[e.Exit-1][i] += float64(masking.ActiveBlocks(ids, mask, h, w, size)) / float64(masking.Cells(h, w, size))
		}
	}})
	if err != nil {
		return err
	}
	if cfg.Engine.Threshold != nil {
		x.SetThreshold(*cfg.Engine.Threshold)
	}
	images, err := loadFrames(ctx, cfg.Bench.Images)
	if err != nil {
		return err
	}
	frames := 0
	for _, img := range images {
		imaging.Preprocess(x.Image(), img, b.Input)
		// A frame that halts early has frozen everything: the exits it
		// skipped compute nothing, which the sums say by adding zero.
		if _, err := x.Run(context.WithoutCancel(ctx)); err != nil {
			return err
		}
		frames++
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(out, "%s, threshold %g, %d frames, output %dx%d: fraction computed by the next stage\n", b.Name, x.Threshold(), frames, h, w)
	head := "after exit\ta_pix\t"
	for _, size := range sizes {
		head += fmt.Sprintf("a_block(%d)\t", size)
	}
	fmt.Fprintln(tw, head)
	for k := 0; k < exits; k++ {
		row := fmt.Sprintf("%d\t%.3f\t", k+1, pix[k]/float64(frames))
		for i := range sizes {
			row += fmt.Sprintf("%.3f\t", blk[k][i]/float64(frames))
		}
		fmt.Fprintln(tw, row)
	}
	return tw.Flush()
}
