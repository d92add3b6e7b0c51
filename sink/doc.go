// Package sink is where a frame's outcome goes once the pipeline has it:
// results and label maps over MQTT (through telemetry), files under --out,
// the live view, and the metrics server. `edge run` and `edge infer` use
// the same sinks; cmd/edge only builds them from its Config and hands
// them to the pipeline.
//
// Every sink receives each exit (pipeline.ExitSink) and each frame
// (pipeline.Sink) on the pipeline's goroutine and must return quickly:
// publishing is queued by telemetry, the live view encodes off the frame
// loop, files are small PNG and JSON writes.
package sink
