package source

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/anytime-edge/edge/source/sourcetest"
)

const imageDir = "../testdata/images"

func TestImagesDirectoryInNameOrderWithBadFrames(t *testing.T) {
	s, err := Open(context.Background(), imageDir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var names []string
	var bad int
	for {
		f, err := s.Next(context.Background())
		if errors.Is(err, io.EOF) {
			break
		}
		var fe *FrameError
		if errors.As(err, &fe) {
			bad++
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if f.Captured.IsZero() || f.Image == nil {
			t.Errorf("frame %d has no capture time or image", f.ID)
		}
		names = append(names, filepath.Base(f.Source))
	}
	want := []string{"deep16.png", "grey.png", "street.png"}
	if strings.Join(names, ",") != strings.Join(want, ",") || bad != 2 {
		t.Errorf("got %v and %d bad frames, want %v and 2", names, bad, want)
	}
}

func TestGlobLoopAndFileURI(t *testing.T) {
	s, err := Open(context.Background(), "file://"+imageDir+"/st*.png", Options{Loop: true})
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		f, err := s.Next(context.Background())
		if err != nil || f.ID != uint64(i) || filepath.Base(f.Source) != "street.png" {
			t.Fatalf("frame %d: got %v %v", i, f.ID, err)
		}
	}
}

func TestOpenErrors(t *testing.T) {
	tests := []struct{ uri, want string }{
		{"gopher://x", "unsupported source"},
		{imageDir + "/nothing-*.png", "no file matches"},
		{"csi://x", "csi://N"},
	}
	for _, tt := range tests {
		_, err := Open(context.Background(), tt.uri, Options{})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: got %v, want %q", tt.uri, err, tt.want)
		}
	}
}

func TestMissingFFmpegNamesThePackage(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	_, err := Open(context.Background(), "file://clip.mp4", Options{})
	if err == nil || !strings.Contains(err.Error(), "apt-get install ffmpeg") {
		t.Fatalf("got %v, want an error naming the ffmpeg package", err)
	}
}

// TestVideoFile decodes a short clip made with ffmpeg's test source.
func TestVideoFile(t *testing.T) {
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Skip("ffmpeg not installed (make setup installs it)")
	}
	clip := filepath.Join(t.TempDir(), "clip.mp4")
	out, err := exec.Command("ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=size=96x64:rate=25:duration=0.4",
		"-pix_fmt", "yuv420p", clip).CombinedOutput()
	if err != nil {
		t.Fatalf("make clip: %v: %s", err, out)
	}
	s, err := Open(context.Background(), "file://"+clip, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	n := 0
	for {
		f, err := s.Next(context.Background())
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		n++
		if f.Image.Rect.Dx() != 96 || f.Image.Rect.Dy() != 64 || f.ID != uint64(n) {
			t.Fatalf("frame %d: %v", f.ID, f.Image.Rect)
		}
	}
	if n != 10 {
		t.Errorf("got %d frames, want 10 (0.4 s at 25 fps)", n)
	}
	if _, err := Open(context.Background(), "file://"+filepath.Join(t.TempDir(), "none.mp4"), Options{}); err == nil || !strings.Contains(err.Error(), "cannot open") {
		t.Errorf("missing clip: got %v", err)
	}
	os.Remove(clip)
}

// TestLocalFilesReachFFmpegAsPaths: a file:// URI that wraps a URL is
// refused, and a local video named like an option or a URL reaches ffprobe
// and ffmpeg as a file: path.
func TestLocalFilesReachFFmpegAsPaths(t *testing.T) {
	dir := sourcetest.FakeFFmpeg(t)
	for _, uri := range []string{"file://http://example.com/x.mp4", "file://rtsp://cam/x", "file://example.com/share/x.mp4"} {
		if _, err := Open(context.Background(), uri, Options{}); !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "local path") {
			t.Errorf("%s: got %v, want a refusal", uri, err)
		}
	}
	sourcetest.Steer(t, dir, map[string]string{"then1": "end", "then2": "end"})
	for i, uri := range []string{"-f.mp4", "file://-y.mp4"} {
		s, err := Open(context.Background(), uri, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Next(context.Background()); !errors.Is(err, io.EOF) {
			t.Fatalf("%s: got %v, want io.EOF", uri, err)
		}
		s.Close()
		want := "file:" + strings.TrimPrefix(uri, "file://")
		ffmpeg, _ := os.ReadFile(filepath.Join(dir, fmt.Sprint("ffmpeg.args", i+1)))
		probe, _ := os.ReadFile(filepath.Join(dir, "ffprobe.args"))
		for name, args := range map[string][]byte{"ffmpeg": ffmpeg, "ffprobe": probe} {
			lines := strings.Split(string(args), "\n")
			if !slices.Contains(lines, want) || slices.Contains(lines, strings.TrimPrefix(want, "file:")) {
				t.Errorf("%s: %s was given %q, want the input as %q", uri, name, lines, want)
			}
		}
	}
}

// TestFIFOAsImageDoesNotBlock: a FIFO with no writer given as an image is a
// bad frame, not a hang.
func TestFIFOAsImageDoesNotBlock(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "frame.png")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := Open(context.Background(), fifo, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var fe *FrameError
	if _, err := s.Next(context.Background()); !errors.As(err, &fe) || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("got %v, want a FrameError saying it is not a regular file", err)
	}
}
