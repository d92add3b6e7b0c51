// Package sink is where a frame's outcome goes once the pipeline has it:
// results and label maps over MQTT (Results, through telemetry), files
// (Files: overlays, per-exit label maps, JSON summaries, dumps), the live
// view (Live), and the fleet link's servers (Fleet: the embedded broker,
// the Publisher and the metrics server, started and stopped together).
// `edge run` and `edge infer` use the same sinks; cmd/edge only builds them
// from its Config and hands a Set to the pipeline.
//
// A Set receives each exit (pipeline.ExitSink) and each frame
// (pipeline.Sink) on the pipeline's goroutine, computes once what its
// outputs share — the exit records (telemetry.Exit, the one record of an
// exit everywhere), label maps or heat peaks, masks, keypoints, the
// overlay — and hands them to each Output. Outputs return quickly:
// publishing is queued by telemetry, the live view encodes off the frame
// loop, files are small PNG and JSON writes.
//
// Control applies the fleet's limit changes to the policy and the
// executor (telemetry.Controller) and holds snapshot requests for Results;
// LiveCommands hands the live view's controls to the same command path as
// MQTT (telemetry.Publisher.Command).
//
// Its place in the tree, and what it may import: docs/architecture.md.
package sink
