package sink

import (
	"image"
	"image/color"

	"github.com/anytime-edge/edge/bundle"
	"github.com/anytime-edge/edge/keypoints"
	"github.com/anytime-edge/edge/telemetry"
)

// limbColors are the skeleton's colours when the bundle gives none.
var limbColors = []color.RGBA{
	{230, 25, 75, 255}, {60, 180, 75, 255}, {255, 225, 25, 255}, {0, 130, 200, 255},
	{245, 130, 48, 255}, {145, 30, 180, 255}, {70, 240, 240, 255}, {240, 50, 230, 255},
}

// pose decodes and draws the keypoints of a keypoints bundle.
type pose struct {
	bundle *bundle.Bundle
	points []keypoints.Point
	colors []color.RGBA
}

func newPose(b *bundle.Bundle) *pose {
	p := &pose{bundle: b, points: make([]keypoints.Point, len(b.Keypoints.Names)), colors: limbColors}
	if len(b.Labels) > 0 {
		p.colors = nil
		for _, l := range b.Labels {
			p.colors = append(p.colors, color.RGBA{l.Color[0], l.Color[1], l.Color[2], 255})
		}
	}
	return p
}

// decode finds every joint in the merged heatmaps, in the coordinates of a
// width×height frame.
func (p *pose) decode(heat []float32, width, height int) []keypoints.Point {
	h, w := p.bundle.OutputSize()
	keypoints.Decode(p.points, heat, h, w, p.bundle.OutputStride)
	keypoints.Scale(p.points, p.bundle.Input.Width(), p.bundle.Input.Height(), width, height)
	return p.points
}

// overlay draws the skeleton over a copy of the frame.
func (p *pose) overlay(frame *image.RGBA) *image.RGBA {
	out := image.NewRGBA(frame.Rect)
	copy(out.Pix, frame.Pix)
	keypoints.Draw(out, p.points, p.bundle.Keypoints.Skeleton, p.colors, keypoints.DefaultStyle)
	return out
}

// message lists the decoded joints for a result message.
func (p *pose) message() []telemetry.Keypoint {
	out := make([]telemetry.Keypoint, len(p.points))
	for j, pt := range p.points {
		out[j] = telemetry.Keypoint{Name: p.bundle.Keypoints.Names[j], X: pt.X, Y: pt.Y, Score: float64(pt.Score)}
	}
	return out
}
