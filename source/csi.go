package source

import (
	"context"
	"fmt"
	"os/exec"
	"strconv"
)

// openCSI reads a Jetson CSI camera through GStreamer's nvarguscamerasrc,
// converted to RGBA by nvvidconv and then to RGB by videoconvert.
func openCSI(ctx context.Context, uri, sensor string, o Options) (*pipeSource, error) {
	id, err := strconv.Atoi(sensor)
	if err != nil || id < 0 {
		return nil, fmt.Errorf("source %s: want csi://N with a sensor number N ≥ 0", uri)
	}
	if _, err := exec.LookPath("gst-launch-1.0"); err != nil {
		return nil, fmt.Errorf("source %s: gst-launch-1.0 not found: CSI cameras need GStreamer with NVIDIA's nvarguscamerasrc (JetPack's gstreamer1.0-tools)", uri)
	}
	w, h := o.Width, o.Height
	if w <= 0 || h <= 0 {
		w, h = 1280, 720
	}
	pipeline := []string{"-q",
		"nvarguscamerasrc", "sensor-id=" + strconv.Itoa(id), "!",
		fmt.Sprintf("video/x-raw(memory:NVMM),width=%d,height=%d", w, h), "!",
		"nvvidconv", "!", "video/x-raw,format=RGBA", "!",
		"videoconvert", "!", "video/x-raw,format=RGB", "!",
		"fdsink", "fd=1",
	}
	start := func(context.Context) (*decoder, error) {
		d, err := startDecoder("gst-launch-1.0", pipeline, w, h)
		if err != nil {
			return nil, fmt.Errorf("source %s: start gst-launch-1.0: %w", uri, err)
		}
		return d, nil
	}
	return newPipeSource(ctx, uri, nil, start, true, false, o)
}
