package spool

import (
	"bufio"
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/anytime-edge/edge/internal/testkit"
)

func open(t *testing.T, dir string, opts Options) (*Spool, *testkit.Buffer) {
	t.Helper()
	var lb *testkit.Buffer
	opts.Log, lb = testkit.Logger(slog.LevelInfo)
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s, lb
}

func appendN(t *testing.T, s *Spool, from, n int) []uint64 {
	t.Helper()
	var ids []uint64
	for i := from; i < from+n; i++ {
		id, err := s.Append("t/"+strconv.Itoa(i), 1, []byte(fmt.Sprintf(`{"seq":%d}`, i)))
		if err != nil {
			t.Fatalf("Append: %v", err)
		}
		ids = append(ids, id)
	}
	if err := s.Sync(); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	return ids
}

func payloads(t *testing.T, s *Spool) []string {
	t.Helper()
	recs, err := s.Read(0, 1<<30)
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	var out []string
	for _, r := range recs {
		out = append(out, string(r.Payload))
	}
	return out
}

func want(from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf(`{"seq":%d}`, i))
	}
	return out
}

func eq(a, b []string) bool { return strings.Join(a, "\n") == strings.Join(b, "\n") }

func TestAppendReadAckReopen(t *testing.T) {
	dir := t.TempDir()
	s, _ := open(t, dir, Options{SegmentBytes: 200})
	ids := appendN(t, s, 0, 20)
	if got := payloads(t, s); !eq(got, want(0, 20)) {
		t.Fatalf("read = %v, want seq 0..19", got)
	}
	// Unsynced appends are invisible.
	if _, err := s.Append("t", 1, []byte("x")); err != nil {
		t.Fatal(err)
	}
	if got := len(payloads(t, s)); got != 20 {
		t.Fatalf("visible before Sync = %d, want 20", got)
	}
	if err := s.Ack(ids[:10]...); err != nil {
		t.Fatal(err)
	}
	if err := s.Ack(ids[15]); err != nil {
		t.Fatal(err)
	}
	if got, w := s.Stats().Records, 21-11; got != w {
		t.Fatalf("Records = %d, want %d", got, w)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, _ = open(t, dir, Options{SegmentBytes: 200})
	defer s.Close()
	recs, err := s.Read(0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var got []uint64
	for _, r := range recs {
		got = append(got, r.ID)
		if !r.Recovered {
			t.Errorf("record %d: Recovered = false after reopen", r.ID)
		}
	}
	wantIDs := []uint64{11, 12, 13, 14, 15, 17, 18, 19, 20, 21}
	if fmt.Sprint(got) != fmt.Sprint(wantIDs) {
		t.Fatalf("ids after reopen = %v, want %v", got, wantIDs)
	}
	// Ids never go backwards.
	id, err := s.Append("t", 1, []byte("y"))
	if err != nil {
		t.Fatal(err)
	}
	if id != 22 {
		t.Fatalf("next id after reopen = %d, want 22", id)
	}
	// Spent segments are deleted.
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := s.Ack(append(wantIDs, id)...); err != nil {
		t.Fatal(err)
	}
	segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	if len(segs) != 1 {
		t.Fatalf("segments after acking everything = %v, want only the active one", segs)
	}
}

func TestDropOldestExactCount(t *testing.T) {
	tests := []struct {
		name     string
		maxBytes int64
		seg      int64
		n        int
	}{
		{"small segments", 4000, 500, 1000},
		{"one record per segment", 2000, 1, 300},
		{"large", 64 << 10, 8 << 10, 5000},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := open(t, t.TempDir(), Options{MaxBytes: tc.maxBytes, SegmentBytes: tc.seg})
			defer s.Close()
			appendN(t, s, 0, tc.n)
			st := s.Stats()
			if st.Bytes > tc.maxBytes+tc.seg+100 {
				t.Errorf("Bytes = %d, over the bound %d", st.Bytes, tc.maxBytes)
			}
			got := payloads(t, s)
			if len(got) == 0 || len(got) == tc.n {
				t.Fatalf("kept %d of %d records: bound not applied", len(got), tc.n)
			}
			if int(st.Dropped)+len(got) != tc.n {
				t.Fatalf("dropped %d + kept %d != appended %d", st.Dropped, len(got), tc.n)
			}
			if !eq(got, want(tc.n-len(got), tc.n)) {
				t.Fatalf("kept records are not the newest %d", len(got))
			}
		})
	}
}

func TestExpire(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	clock := func() time.Time { return now }
	s, _ := open(t, t.TempDir(), Options{MaxAge: time.Minute, Now: clock})
	defer s.Close()
	appendN(t, s, 0, 5)
	now = now.Add(50 * time.Second)
	appendN(t, s, 5, 5)
	now = now.Add(20 * time.Second)
	if n := s.Expire(); n != 5 {
		t.Fatalf("Expire = %d, want 5", n)
	}
	if got := payloads(t, s); !eq(got, want(5, 10)) {
		t.Fatalf("after expiry = %v", got)
	}
	if d := s.Stats().Dropped; d != 5 {
		t.Fatalf("Dropped = %d, want 5", d)
	}
}

func TestCorruptRecordsSkipped(t *testing.T) {
	tests := []struct {
		name    string
		damage  func(data []byte, offs []int) []byte
		lost    []int // seq numbers that must be gone
		warning string
	}{
		{"flipped payload byte", func(d []byte, o []int) []byte { d[o[3]+20] ^= 0xff; return d }, []int{3}, "CRC mismatch"},
		{"flipped length", func(d []byte, o []int) []byte { d[o[5]+5] ^= 0x40; return d }, []int{5}, "spool record"},
		{"zeroed marker", func(d []byte, o []int) []byte { copy(d[o[7]:], []byte{0, 0, 0, 0}); return d }, []int{7}, "bad record marker"},
		{"torn tail", func(d []byte, o []int) []byte { return d[:o[9]+7] }, []int{9}, "torn record"},
		{"garbage between", func(d []byte, o []int) []byte {
			return append(append(append([]byte{}, d[:o[2]]...), bytes.Repeat([]byte{0xA5}, 37)...), d[o[2]:]...)
		}, nil, "bad record marker"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s, _ := open(t, dir, Options{})
			appendN(t, s, 0, 10)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
			var path string
			var data []byte
			for _, p := range segs {
				if d, _ := os.ReadFile(p); len(d) > 0 {
					path, data = p, d
				}
			}
			var offs []int
			for _, sc := range scan(data, func(int64, string) {}) {
				offs = append(offs, int(sc.off))
			}
			if len(offs) != 10 {
				t.Fatalf("found %d records before damage, want 10", len(offs))
			}
			if err := os.WriteFile(path, tc.damage(data, offs), 0o600); err != nil {
				t.Fatal(err)
			}
			s, lb := open(t, dir, Options{})
			defer s.Close()
			var w []string
			for i := 0; i < 10; i++ {
				if !contains(tc.lost, i) {
					w = append(w, fmt.Sprintf(`{"seq":%d}`, i))
				}
			}
			if got := payloads(t, s); !eq(got, w) {
				t.Fatalf("after damage read %v, want %v", got, w)
			}
			if !strings.Contains(lb.String(), "skipping damaged spool record") || !strings.Contains(lb.String(), tc.warning) {
				t.Fatalf("warning log = %q, want a damaged-record warning mentioning %q", lb.String(), tc.warning)
			}
			if s.Stats().Corrupt == 0 {
				t.Fatal("Corrupt counter not raised")
			}
		})
	}
}

func contains(xs []int, x int) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

func TestSecondOpenRefused(t *testing.T) {
	dir := t.TempDir()
	s, _ := open(t, dir, Options{})
	defer s.Close()
	if _, err := Open(dir, Options{}); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second Open err = %v, want in-use error", err)
	}
}

const childEnv = "SPOOL_TEST_CHILD_DIR"

// TestMain lets the test binary act as a writer process that the kill test
// SIGKILLs.
func TestMain(m *testing.M) {
	if dir := os.Getenv(childEnv); dir != "" {
		childWriter(dir)
		return
	}
	os.Exit(m.Run())
}

// childWriter appends forever, syncing every 7 records and printing the
// highest synced seq after each sync.
func childWriter(dir string) {
	s, err := Open(dir, Options{SegmentBytes: 4096})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	w := bufio.NewWriter(os.Stdout)
	for i := 0; ; i++ {
		if _, err := s.Append("t", 1, []byte(fmt.Sprintf(`{"seq":%d}`, i))); err != nil {
			os.Exit(3)
		}
		if i%7 == 6 {
			if err := s.Sync(); err != nil {
				os.Exit(4)
			}
			fmt.Fprintf(w, "%d\n", i)
			w.Flush()
		}
	}
}

func TestSurvivesKill9(t *testing.T) {
	for round := 0; round < 3; round++ {
		dir := t.TempDir()
		cmd := testkit.Child(childEnv + "=" + dir)
		out := testkit.Start(t, cmd, false)
		sc := bufio.NewScanner(out)
		synced := -1
		stopAt := 200 + round*300
		for sc.Scan() {
			synced, _ = strconv.Atoi(sc.Text())
			if synced >= stopAt {
				break
			}
		}
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		cmd.Wait()
		if synced < stopAt {
			t.Fatalf("child stopped early at %d", synced)
		}
		s, _ := open(t, dir, Options{})
		got := payloads(t, s)
		s.Close()
		if len(got) < synced+1 {
			t.Fatalf("round %d: recovered %d records, want at least the %d synced", round, len(got), synced+1)
		}
		if !eq(got[:synced+1], want(0, synced+1)) {
			t.Fatalf("round %d: recovered records are not seq 0..%d in order", round, synced)
		}
	}
}
