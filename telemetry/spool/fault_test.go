package spool

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// faults makes the segment files of a spool fail on demand.
type faults struct {
	mu sync.Mutex
	// writeAfter, when ≥ 0, makes the next Write write that many bytes
	// and fail with writeErr (nil: a short write without an error).
	writeAfter int
	writeErr   error
	syncErr    error // the next Sync fails with it
	truncErr   error // every Truncate fails with it
}

func newFaults() *faults { return &faults{writeAfter: -1} }

// failNextWrite arms a write failure after n bytes.
func (fs *faults) failNextWrite(n int, err error) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.writeAfter, fs.writeErr = n, err
}

func (fs *faults) failNextSync(err error) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.syncErr = err
}

func (fs *faults) open(path string, flag int, perm os.FileMode) (segmentFile, error) {
	f, err := os.OpenFile(path, flag, perm)
	if err != nil {
		return nil, err
	}
	return &faultyFile{File: f, fs: fs}, nil
}

// faultyFile is a real segment file whose writes, fsyncs and truncations
// fail when its faults say so.
type faultyFile struct {
	*os.File
	fs *faults
}

func (f *faultyFile) Write(p []byte) (int, error) {
	f.fs.mu.Lock()
	n, err := f.fs.writeAfter, f.fs.writeErr
	f.fs.writeAfter, f.fs.writeErr = -1, nil
	f.fs.mu.Unlock()
	if n < 0 || n >= len(p) {
		return f.File.Write(p)
	}
	w, werr := f.File.Write(p[:n])
	if werr != nil {
		return w, werr
	}
	return w, err
}

func (f *faultyFile) Sync() error {
	f.fs.mu.Lock()
	err := f.fs.syncErr
	f.fs.syncErr = nil
	f.fs.mu.Unlock()
	if err != nil {
		return err
	}
	return f.File.Sync()
}

func (f *faultyFile) Truncate(size int64) error {
	f.fs.mu.Lock()
	err := f.fs.truncErr
	f.fs.mu.Unlock()
	if err != nil {
		return err
	}
	return f.File.Truncate(size)
}

// recordSize is the size on disk of appendN's record i.
func recordSize(t *testing.T, i int) int {
	t.Helper()
	b, err := encode(nil, &Record{Topic: "t/" + strconv.Itoa(i), Payload: []byte(fmt.Sprintf(`{"seq":%d}`, i))})
	if err != nil {
		t.Fatal(err)
	}
	return len(b)
}

// appendOnly appends appendN's records from..to-1 without syncing.
func appendOnly(t *testing.T, s *Spool, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		if _, err := s.Append("t/"+strconv.Itoa(i), 1, []byte(fmt.Sprintf(`{"seq":%d}`, i))); err != nil {
			t.Fatalf("Append %d: %v", i, err)
		}
	}
}

func TestFailedWriteLosesOnlyWhatWasNotWritten(t *testing.T) {
	enospc := syscall.ENOSPC
	tests := []struct {
		name     string
		complete int   // records of the failing batch (seq 5..9) written in full
		extra    int   // bytes of the next record written too
		err      error // what the write returns (nil: a short write)
		truncErr error
		wantErr  string
	}{
		{"disk full inside a record", 2, 7, enospc, nil, "no space left on device"},
		{"disk full at a record boundary", 3, 0, enospc, nil, "no space left on device"},
		{"disk full before any byte", 0, 0, enospc, nil, "no space left on device"},
		{"short write without an error", 1, 20, nil, nil, "short write"},
		{"I/O error, cannot cut back", 2, 7, syscall.EIO, syscall.EROFS, "input/output error"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			fs := newFaults()
			fs.truncErr = tc.truncErr
			s, lb := open(t, dir, Options{openFile: fs.open})
			appendN(t, s, 0, 5)
			appendOnly(t, s, 5, 10)
			n := tc.extra
			for i := 5; i < 5+tc.complete; i++ {
				n += recordSize(t, i)
			}
			fs.failNextWrite(n, tc.err)
			err := s.Sync()
			lost := 5 - tc.complete
			if tc.err != nil && !errors.Is(err, tc.err) {
				t.Fatalf("Sync err = %v, does not wrap %v", err, tc.err)
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), fmt.Sprintf("%d records lost", lost)) {
				t.Fatalf("Sync err = %v, want the disk error %q and %d records lost", err, tc.wantErr, lost)
			}
			if strings.Contains(err.Error(), "bound") {
				t.Fatalf("Sync err = %v, reported as a bound", err)
			}
			st := s.Stats()
			if st.Dropped != uint64(lost) || st.WriteLost != uint64(lost) {
				t.Fatalf("Dropped = %d, WriteLost = %d, want %d each", st.Dropped, st.WriteLost, lost)
			}
			// Later appends are delivered, nothing is spliced.
			appendN(t, s, 10, 5)
			w := append(want(0, 5+tc.complete), want(10, 15)...)
			if got := payloads(t, s); !eq(got, w) {
				t.Fatalf("after the failure read %q, want %q", got, w)
			}
			if st := s.Stats(); st.Records != len(w) || st.Damaged != 0 {
				t.Fatalf("Records = %d, Damaged = %d, want %d and 0", st.Records, st.Damaged, len(w))
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			// The files hold exactly the same after a restart.
			s, _ = open(t, dir, Options{})
			defer s.Close()
			if got := payloads(t, s); !eq(got, w) {
				t.Fatalf("after reopening read %q, want %q", got, w)
			}
			if tc.truncErr == nil && s.Stats().Corrupt != 0 {
				t.Fatalf("Corrupt = %d after reopening, want 0: the torn bytes were not cut", s.Stats().Corrupt)
			}
			if strings.Contains(lb.String(), "damaged") {
				t.Fatalf("log mentions damage: %s", lb.String())
			}
		})
	}
}

func TestFailedFsyncKeepsRecordsAndSaysSo(t *testing.T) {
	fs := newFaults()
	s, _ := open(t, t.TempDir(), Options{openFile: fs.open})
	defer s.Close()
	appendOnly(t, s, 0, 5)
	fs.failNextSync(syscall.EIO)
	if err := s.Sync(); err == nil || !strings.Contains(err.Error(), "input/output error") || !strings.Contains(err.Error(), "fsync") {
		t.Fatalf("Sync err = %v, want the fsync error", err)
	}
	appendN(t, s, 5, 3)
	if got := payloads(t, s); !eq(got, want(0, 8)) {
		t.Fatalf("read %q, want seq 0..7", got)
	}
	if d := s.Stats().Dropped; d != 0 {
		t.Fatalf("Dropped = %d, want 0 (every record was written)", d)
	}
}

func TestFailedWriteWhileRotating(t *testing.T) {
	fs := newFaults()
	// Every record is about 40 bytes: the third append of a batch starts a
	// new segment and so writes the two before it.
	s, _ := open(t, t.TempDir(), Options{openFile: fs.open, SegmentBytes: 100})
	defer s.Close()
	appendOnly(t, s, 0, 2)
	fs.failNextWrite(recordSize(t, 0)+3, syscall.ENOSPC)
	_, err := s.Append("t/2", 1, []byte(`{"seq":2}`))
	if err == nil || !strings.Contains(err.Error(), "no space left on device") {
		t.Fatalf("Append err = %v, want the disk error", err)
	}
	// Record 1 and the record being appended are lost, both counted.
	if st := s.Stats(); st.Dropped != 2 || st.WriteLost != 2 {
		t.Fatalf("Dropped = %d, WriteLost = %d, want 2 each", st.Dropped, st.WriteLost)
	}
	appendN(t, s, 3, 3)
	if got, w := payloads(t, s), append(want(0, 1), want(3, 6)...); !eq(got, w) {
		t.Fatalf("read %q, want %q", got, w)
	}
}

func TestReadNeverHandsOutDamagedRecords(t *testing.T) {
	tests := []struct {
		name   string
		damage func(t *testing.T, path string, offs []int)
		lost   int
		reason string
	}{
		{"flipped payload byte", func(t *testing.T, path string, offs []int) {
			f, err := os.OpenFile(path, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			b := make([]byte, 1)
			if _, err := f.ReadAt(b, int64(offs[2]+headerSize+fixedBody+4)); err != nil {
				t.Fatal(err)
			}
			b[0] ^= 0x01
			if _, err := f.WriteAt(b, int64(offs[2]+headerSize+fixedBody+4)); err != nil {
				t.Fatal(err)
			}
		}, 2, "CRC mismatch"},
		{"file cut short", func(t *testing.T, path string, offs []int) {
			if err := os.Truncate(path, int64(offs[4]+5)); err != nil {
				t.Fatal(err)
			}
		}, 4, "read: EOF"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s, lb := open(t, dir, Options{})
			defer s.Close()
			appendN(t, s, 0, 5)
			path := filepath.Join(dir, segName(1))
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			var offs []int
			for _, sc := range scan(data, func(int64, string) {}) {
				offs = append(offs, int(sc.off))
			}
			tc.damage(t, path, offs)
			recs, err := s.Read(0, 100)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, r := range recs {
				got = append(got, string(r.Payload))
			}
			if w := wantExcept(5, tc.lost); !eq(got, w) {
				t.Fatalf("read %q, want %q", got, w)
			}
			st := s.Stats()
			if st.Damaged != 1 || st.Dropped != 1 || st.Corrupt != 1 || st.Records != 4 {
				t.Fatalf("stats = %+v, want 1 damaged, dropped and corrupt, 4 records", st)
			}
			if !strings.Contains(lb.String(), "spool record damaged") || !strings.Contains(lb.String(), tc.reason) {
				t.Fatalf("log = %q, want a warning naming %q", lb.String(), tc.reason)
			}
		})
	}
}

// wantExcept is want(0, n) without seq skip.
func wantExcept(n, skip int) []string {
	var out []string
	for i := 0; i < n; i++ {
		if i != skip {
			out = append(out, fmt.Sprintf(`{"seq":%d}`, i))
		}
	}
	return out
}
