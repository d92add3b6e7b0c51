// Package source yields frames from what a robot or drone points the runtime
// at, named by URI as Jetson users know them: image files, globs and
// directories; file://clip.mp4; rtsp://host/path and http(s):// streams;
// v4l2:///dev/video0; and csi://0 on a Jetson. Videos and cameras are decoded
// by an ffmpeg (or, for CSI cameras, gst-launch-1.0) subprocess piping raw
// RGB frames. Every frame carries its capture time.
//
// Every blocking call honours its context and Close. A video, stream or
// camera silent for longer than Options.StallAfter is reported through
// Options.OnEvent; a network stream that stalls or ends is reopened with a
// bounded, jittered backoff. Source URIs are shown only through Redact: the
// credentials in rtsp://user:password@host reach the decoder subprocess and
// nothing else.
//
// Its place in the tree, and what it may import: docs/architecture.md.
package source
