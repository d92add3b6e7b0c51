// Package source yields frames from what a robot or drone points the runtime
// at, named by URI as Jetson users know them: image files, globs and
// directories; file://clip.mp4; rtsp://host/path; v4l2:///dev/video0; and
// csi://0 on a Jetson. Videos and cameras are decoded by an ffmpeg (or, for
// CSI cameras, gst-launch-1.0) subprocess piping raw RGB frames. Every frame
// carries its capture time.
package source
