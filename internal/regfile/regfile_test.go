package regfile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/anytime-edge/edge/internal/testkit"
)

func TestReadRefusesWhatIsNotABoundedRegularFile(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	zero := filepath.Join(dir, "zero.json")
	if err := os.Symlink("/dev/zero", zero); err != nil {
		t.Fatal(err)
	}
	big := testkit.WriteFile(t, filepath.Join(dir, "big"), make([]byte, 101))
	ok := testkit.WriteFile(t, filepath.Join(dir, "ok"), []byte("hello"))
	tests := []struct {
		path string
		want error
		text string
	}{
		// A FIFO with no writer would block a plain open forever.
		{fifo, ErrNotRegular, "a FIFO"},
		{zero, ErrNotRegular, "a character device"},
		{dir, ErrNotRegular, "a directory"},
		{big, ErrTooLarge, "101 bytes (limit 100)"},
	}
	for _, tt := range tests {
		t.Run(filepath.Base(tt.path), func(t *testing.T) {
			_, err := Read(tt.path, 100)
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.path) || !strings.Contains(err.Error(), tt.text) {
				t.Fatalf("got %v, want %v naming %s and %q", err, tt.want, tt.path, tt.text)
			}
		})
	}
	got, err := Read(ok, 5)
	if err != nil || string(got) != "hello" {
		t.Fatalf("regular file at the limit: got %q, %v", got, err)
	}
}
