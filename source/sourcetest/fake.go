// Package sourcetest fakes the decoders the source package runs: ffmpeg and
// ffprobe scripts that deliver, stall and fail on command, for tests of
// sources and of what runs them.
//
// Its place in the tree, and what it may import: docs/architecture.md.
package sourcetest

import (
	"os"
	"path/filepath"
	"testing"
)

// FakeFFmpeg puts ffmpeg and ffprobe scripts first on PATH and returns the
// directory that steers them: file framesN is how many 4×2 frames run N
// writes, thenN what it does next (hang, fail, end); a file probefail makes
// the next probe fail once. Both quote the input URL in their errors, as
// the real ones do, and record their arguments (ffmpeg.argsN, ffprobe.args).
func FakeFFmpeg(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	input := `url=; prev=; for a in "$@"; do [ "$prev" = -i ] && url=$a; prev=$a; done; [ -z "$url" ] && url=$a
`
	probe := "#!/bin/sh\n" + input + `d=$FAKE_DIR
printf '%s\n' "$@" >> "$d/ffprobe.args"
if [ -e "$d/probefail" ]; then rm "$d/probefail"; echo "$url: Connection refused" >&2; exit 1; fi
echo 4x2
`
	ffmpeg := "#!/bin/sh\n" + input + `d=$FAKE_DIR
n=$(cat "$d/count" 2>/dev/null || echo 0); n=$((n+1)); echo $n > "$d/count"
printf '%s\n' "$@" > "$d/ffmpeg.args$n"
frames=$(cat "$d/frames$n" 2>/dev/null || echo 0)
head -c $((frames*24)) /dev/zero
case $(cat "$d/then$n" 2>/dev/null || echo hang) in
hang) exec sleep 3600 ;;
fail) echo "$url: Invalid data found when processing input" >&2; exit 1 ;;
esac
`
	for name, text := range map[string]string{"ffprobe": probe, "ffmpeg": ffmpeg} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	t.Setenv("FAKE_DIR", dir)
	return dir
}

// Steer writes the files that steer the fakes (see FakeFFmpeg).
func Steer(t testing.TB, dir string, files map[string]string) {
	for name, v := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
