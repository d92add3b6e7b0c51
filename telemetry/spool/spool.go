package spool

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Defaults for Options.
const (
	DefaultMaxBytes = 64 << 20
	DefaultMaxAge   = 7 * 24 * time.Hour
)

const (
	segSuffix     = ".seg"
	ackName       = "acks.log"
	lockName      = "LOCK"
	ackRecordSize = 12
	ackCompactAt  = 4 << 20
)

// Options bound and tune a spool. The zero value is usable.
type Options struct {
	// MaxBytes bounds the segment files on disk; when an append would go
	// over it, the oldest segment is dropped. Default DefaultMaxBytes.
	MaxBytes int64
	// MaxAge drops records older than this (see Expire). Default
	// DefaultMaxAge.
	MaxAge time.Duration
	// SegmentBytes is the size at which the active segment is closed and a
	// new one started. Default MaxBytes/16, clamped to [4 KiB, 8 MiB].
	SegmentBytes int64
	// Log receives warnings about damaged records. Default slog.Default().
	Log *slog.Logger
	// Now is the clock. Default time.Now.
	Now func() time.Time

	// openFile opens segment files; tests substitute files whose writes
	// fail. Default os.OpenFile.
	openFile func(path string, flag int, perm os.FileMode) (segmentFile, error)
}

// segmentFile is what the spool needs of an open segment file.
type segmentFile interface {
	io.ReaderAt
	io.Writer
	Sync() error
	Truncate(size int64) error
	Stat() (os.FileInfo, error)
	Close() error
}

func openOSFile(path string, flag int, perm os.FileMode) (segmentFile, error) {
	return os.OpenFile(path, flag, perm)
}

// Stats describes a spool's content.
type Stats struct {
	// Records is the number of records not yet acknowledged or dropped.
	Records int
	// Bytes is the size of the segment files, buffered appends included.
	Bytes int64
	// Dropped counts records removed unacknowledged since Open, whatever
	// the reason: the size or age bound, a failed write (WriteLost) or
	// damage found when reading (Damaged).
	Dropped uint64
	// WriteLost counts the records of Dropped that never reached the disk
	// because a write to it failed (disk full, short write, I/O error).
	WriteLost uint64
	// Damaged counts the records of Dropped that Read found damaged
	// (CRC mismatch, torn or unreadable) and never handed out.
	Damaged uint64
	// Corrupt counts damaged regions skipped since Open: those found when
	// the spool was opened and the records counted in Damaged.
	Corrupt uint64
	// Oldest is the append time of the oldest pending record (zero when
	// there is none).
	Oldest time.Time
}

type segment struct {
	first uint64
	path  string
	f     segmentFile
	size  int64
	live  int
}

type entry struct {
	id        uint64
	seg       *segment
	off       int64
	size      int64
	t         int64
	done      bool
	recovered bool
}

// Spool is a durable, bounded FIFO of records. See the package comment.
type Spool struct {
	dir  string
	opts Options
	log  *slog.Logger
	lock *os.File

	writeMu sync.Mutex // serialises Append/Sync (file writes)

	mu      sync.Mutex
	segs    []*segment
	active  *segment
	buf     []byte // encoded, not yet written to active
	ents    []entry
	head    int
	nextID  uint64
	written uint64 // highest id written to its segment (visible to Read)
	sealed  bool   // the active segment's tail is unknown: start a new one
	ackF    *os.File
	ackSize int64
	ackBuf  []byte
	bytes   int64
	pending int
	dropped uint64
	lost    uint64
	damaged uint64
	corrupt uint64
	closed  bool
}

// Open opens (creating if needed) the spool in dir. Records left by an
// earlier process that were not acknowledged are pending again, marked
// Recovered. Damaged records are skipped with a warning.
func Open(dir string, opts Options) (*Spool, error) {
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = DefaultMaxBytes
	}
	if opts.MaxAge <= 0 {
		opts.MaxAge = DefaultMaxAge
	}
	if opts.SegmentBytes <= 0 {
		opts.SegmentBytes = min(max(opts.MaxBytes/16, 4<<10), 8<<20)
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.openFile == nil {
		opts.openFile = openOSFile
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open spool: %w", err)
	}
	s := &Spool{dir: dir, opts: opts, log: opts.Log.With("component", "spool", "dir", dir)}
	lk, err := os.OpenFile(filepath.Join(dir, lockName), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open spool lock: %w", err)
	}
	if err := syscall.Flock(int(lk.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lk.Close()
		return nil, fmt.Errorf("spool %s is in use by another process: %w", dir, err)
	}
	s.lock = lk
	if err := s.load(); err != nil {
		s.closeFiles()
		return nil, err
	}
	return s, nil
}

func segName(first uint64) string { return fmt.Sprintf("%020d%s", first, segSuffix) }

// load reads the ack log and every segment, then starts a fresh active
// segment and a compacted ack log.
func (s *Spool) load() error {
	acked, ackMax, err := readAcks(filepath.Join(s.dir, ackName), s.log)
	if err != nil {
		return err
	}
	names, err := filepath.Glob(filepath.Join(s.dir, "*"+segSuffix))
	if err != nil {
		return fmt.Errorf("list spool segments: %w", err)
	}
	type segFile struct {
		first uint64
		path  string
	}
	var files []segFile
	for _, p := range names {
		first, err := strconv.ParseUint(strings.TrimSuffix(filepath.Base(p), segSuffix), 10, 64)
		if err != nil {
			s.log.Warn("ignoring file with a bad segment name", "file", p)
			continue
		}
		files = append(files, segFile{first, p})
	}
	sort.Slice(files, func(i, j int) bool { return files[i].first < files[j].first })
	next := ackMax + 1
	for _, sf := range files {
		next = max(next, sf.first)
		data, err := os.ReadFile(sf.path)
		if err != nil {
			return fmt.Errorf("read spool segment: %w", err)
		}
		recs := scan(data, func(off int64, why string) {
			s.corrupt++
			s.log.Warn("skipping damaged spool record", "segment", filepath.Base(sf.path), "offset", off, "reason", why)
		})
		seg := &segment{first: sf.first, path: sf.path, size: int64(len(data))}
		for _, r := range recs {
			next = max(next, r.rec.ID+1)
			if _, ok := acked[r.rec.ID]; ok {
				continue
			}
			if n := len(s.ents); n > 0 && s.ents[n-1].id >= r.rec.ID {
				s.corrupt++
				s.log.Warn("skipping out-of-order spool record", "segment", filepath.Base(sf.path), "offset", r.off, "id", r.rec.ID)
				continue
			}
			s.ents = append(s.ents, entry{id: r.rec.ID, seg: seg, off: r.off, size: r.size, t: r.rec.Time.UnixNano(), recovered: true})
			seg.live++
			s.pending++
		}
		if seg.live == 0 {
			if err := os.Remove(sf.path); err != nil {
				return fmt.Errorf("remove spent spool segment: %w", err)
			}
			continue
		}
		f, err := s.opts.openFile(sf.path, os.O_RDONLY, 0)
		if err != nil {
			return fmt.Errorf("open spool segment: %w", err)
		}
		seg.f = f
		s.segs = append(s.segs, seg)
		s.bytes += seg.size
	}
	s.nextID = max(next, 1)
	if n := len(s.ents); n > 0 {
		s.written = s.ents[n-1].id
	}
	// Compact the ack log: only acks at or above the oldest pending id
	// still matter.
	low := s.nextID
	if len(s.ents) > 0 {
		low = s.ents[0].id
	}
	var keep []byte
	for id := range acked {
		if id >= low {
			keep = appendAck(keep, id)
		}
	}
	if err := s.rewriteAcks(keep); err != nil {
		return err
	}
	if err := s.newActive(); err != nil {
		return err
	}
	return nil
}

func appendAck(dst []byte, id uint64) []byte {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], id)
	dst = append(dst, b[:]...)
	return binary.LittleEndian.AppendUint32(dst, crc32.Checksum(b[:], castagnoli))
}

func readAcks(path string, log *slog.Logger) (map[uint64]struct{}, uint64, error) {
	acked := map[uint64]struct{}{}
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return acked, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("read spool ack log: %w", err)
	}
	var hi uint64
	bad := 0
	for off := 0; off+ackRecordSize <= len(data); off += ackRecordSize {
		b := data[off : off+8]
		if crc32.Checksum(b, castagnoli) != binary.LittleEndian.Uint32(data[off+8:]) {
			bad++
			continue
		}
		id := binary.LittleEndian.Uint64(b)
		acked[id] = struct{}{}
		hi = max(hi, id)
	}
	if bad > 0 || len(data)%ackRecordSize != 0 {
		// A damaged ack only means that record is sent again.
		log.Warn("damaged entries in spool ack log; those records will be sent again", "entries", bad, "torn_bytes", len(data)%ackRecordSize)
	}
	return acked, hi, nil
}

// rewriteAcks replaces the ack log with content, durably.
func (s *Spool) rewriteAcks(content []byte) error {
	path := filepath.Join(s.dir, ackName)
	tmp := path + ".tmp"
	if err := writeFileSync(tmp, content); err != nil {
		return fmt.Errorf("write spool ack log: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("replace spool ack log: %w", err)
	}
	if err := syncDir(s.dir); err != nil {
		return err
	}
	if s.ackF != nil {
		s.ackF.Close()
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("open spool ack log: %w", err)
	}
	s.ackF, s.ackSize = f, int64(len(content))
	return nil
}

func writeFileSync(path string, content []byte) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(content); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync spool directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync spool directory: %w", err)
	}
	return nil
}

// newActive starts a segment named after the next id. Called with mu held
// (or during Open).
func (s *Spool) newActive() error {
	path := filepath.Join(s.dir, segName(s.nextID))
	f, err := s.opts.openFile(path, os.O_CREATE|os.O_RDWR|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("create spool segment: %w", err)
	}
	if err := syncDir(s.dir); err != nil {
		f.Close()
		return err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("stat spool segment: %w", err)
	}
	seg := &segment{first: s.nextID, path: path, f: f, size: fi.Size()}
	s.segs = append(s.segs, seg)
	s.bytes += seg.size
	s.active = seg
	s.sealed = false
	return nil
}

// Append adds a record at the tail and returns its id. The record becomes
// durable, and visible to Read, at the next Sync. An error means the record
// was not stored; one lost to a failed write while starting a new segment
// is counted in Stats.WriteLost. Append and Sync may be
// called from any goroutine; they are serialised.
func (s *Spool) Append(topic string, qos byte, payload []byte) (uint64, error) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, errors.New("spool: append after close")
	}
	now := s.opts.Now()
	r := Record{ID: s.nextID, Time: now, Topic: topic, QoS: qos, Payload: payload}
	before := len(s.buf)
	var err error
	s.buf, err = encode(s.buf, &r)
	if err != nil {
		return 0, fmt.Errorf("spool append: %w", err)
	}
	size := int64(len(s.buf) - before)
	if s.sealed || (s.active.size > 0 && s.active.size+size > s.opts.SegmentBytes) {
		// Rotate: make the old active durable first, then move this
		// record's bytes to the new segment. On failure the record is
		// not stored (its id is not used); it is counted as lost.
		rec := append([]byte(nil), s.buf[before:]...)
		s.buf = s.buf[:before]
		err := s.flushLocked()
		if err == nil {
			if err = s.newActive(); err != nil {
				s.sealed = true
			}
		}
		if err != nil {
			s.dropped++
			s.lost++
			return 0, fmt.Errorf("spool append (record lost): %w", err)
		}
		s.buf = append(s.buf, rec...)
	}
	s.ents = append(s.ents, entry{id: r.ID, seg: s.active, off: s.active.size, size: size, t: now.UnixNano()})
	s.active.size += size
	s.active.live++
	s.pending++
	s.bytes += size
	s.nextID++
	s.enforceBytesLocked()
	return r.ID, nil
}

// flushLocked writes and fsyncs the buffer to the active segment (see
// settleWriteLocked for failures). Called with writeMu and mu held.
func (s *Spool) flushLocked() error {
	buf, seg := s.buf, s.active
	s.buf = nil
	n, werr, serr := writeSync(seg.f, buf)
	return s.settleWriteLocked(seg, buf, n, werr, serr)
}

// writeSync writes buf to f and fsyncs it. n is how much of buf was
// written; werr is set when that is not all of it, serr when the fsync
// failed.
func writeSync(f segmentFile, buf []byte) (n int, werr, serr error) {
	if len(buf) > 0 {
		n, werr = f.Write(buf)
		if werr == nil && n < len(buf) {
			werr = io.ErrShortWrite
		}
		if werr != nil {
			return n, werr, nil
		}
	}
	return n, nil, f.Sync()
}

// settleWriteLocked accounts for writing buf, the buffered records of seg,
// of which n bytes were written. Called with writeMu and mu held.
//
// After a failed write the records written in full stay (and become
// visible); the records not written in full are dropped and counted in
// Dropped and WriteLost, and the segment is cut back to the end of the
// last complete record so that the offsets of later appends stay right.
// When it cannot be cut back, it is sealed: the next append starts a new
// segment. A failed fsync drops nothing (every record was written and is
// readable) but is reported: those records may not survive a crash.
func (s *Spool) settleWriteLocked(seg *segment, buf []byte, n int, werr, serr error) error {
	s.buf = buf[:0]
	if werr == nil {
		s.written = s.nextID - 1
		if serr != nil {
			return fmt.Errorf("fsync spool segment %s: %w (its newest records may not survive a crash)", filepath.Base(seg.path), serr)
		}
		return nil
	}
	base := seg.size - int64(len(buf)) // file size before the write
	end := base + int64(n)
	good := base
	lost := 0
	for i := s.find(s.written + 1); i < len(s.ents); i++ {
		e := &s.ents[i]
		if e.off+e.size <= end {
			good = e.off + e.size
			s.written = e.id
			continue
		}
		if !e.done {
			s.settleLocked(e, true)
			s.lost++
			lost++
		}
	}
	// Every id up to nextID-1 is now written or settled.
	s.written = s.nextID - 1
	err := fmt.Errorf("write spool segment %s: %w (wrote %d of %d bytes; %d records lost)", filepath.Base(seg.path), werr, n, len(buf), lost)
	newSize := good
	if terr := seg.f.Truncate(good); terr != nil {
		s.sealed = true
		newSize = end
		err = errors.Join(err, fmt.Errorf("cut back spool segment %s: %w", filepath.Base(seg.path), terr))
	} else if good > base {
		if serr := seg.f.Sync(); serr != nil {
			err = errors.Join(err, fmt.Errorf("fsync spool segment %s: %w", filepath.Base(seg.path), serr))
		}
	}
	s.bytes += newSize - seg.size
	seg.size = newSize
	return err
}

// enforceBytesLocked drops the oldest segments while over MaxBytes.
func (s *Spool) enforceBytesLocked() {
	for s.bytes > s.opts.MaxBytes && len(s.segs) > 1 {
		seg := s.segs[0]
		if seg == s.active {
			return
		}
		s.dropSegmentLocked(seg)
	}
}

func (s *Spool) dropSegmentLocked(seg *segment) {
	for i := s.head; i < len(s.ents) && s.ents[i].seg == seg; i++ {
		e := &s.ents[i]
		if !e.done {
			s.settleLocked(e, true)
		}
	}
	s.removeSpentLocked()
	if len(s.segs) > 0 && s.segs[0] == seg {
		// Entries of seg are gone from the index but the file was kept
		// because of an index inconsistency; remove it anyway.
		s.removeSegLocked(0)
	}
}

// Sync makes every appended record durable (one write and one fsync) and
// visible to Read. When the write fails (disk full, I/O error) the records
// that did not reach the disk are dropped and counted (Stats.WriteLost),
// the error says how many, and later appends are unaffected; see
// settleWriteLocked.
func (s *Spool) Sync() error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return errors.New("spool: sync after close")
	}
	buf, seg := s.buf, s.active
	s.buf = nil
	s.mu.Unlock()
	// The active segment and the buffer only change under writeMu, so it
	// is safe to write without mu (Read and Ack go on meanwhile).
	n, werr, serr := writeSync(seg.f, buf)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.settleWriteLocked(seg, buf, n, werr, serr)
}

// Read returns up to n pending written records with ids ≥ from, oldest
// first. Each record is read back from its segment and checked (marker,
// length, CRC, id); a record that fails is never returned: it is dropped,
// counted (Stats.Damaged, Dropped and Corrupt) and logged.
func (s *Spool) Read(from uint64, n int) ([]Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errors.New("spool: read after close")
	}
	i := s.find(from)
	var out []Record
	for ; i < len(s.ents) && len(out) < n; i++ {
		e := &s.ents[i]
		if e.id > s.written {
			break
		}
		if e.done {
			continue
		}
		b := make([]byte, e.size)
		got, err := e.seg.f.ReadAt(b, e.off)
		r, size, why := parseRecord(b[:got])
		switch {
		case err != nil && got < len(b):
			why = fmt.Sprintf("read: %v", err)
		case why != "":
		case size != len(b) || r.ID != e.id:
			why = fmt.Sprintf("found record %d of %d bytes where record %d of %d bytes was written", r.ID, size, e.id, len(b))
		}
		if why != "" {
			s.log.Warn("spool record damaged; dropping it", "id", e.id, "segment", filepath.Base(e.seg.path), "offset", e.off, "reason", why)
			s.settleLocked(e, true)
			s.damaged++
			s.corrupt++
			continue
		}
		r.Recovered = e.recovered
		out = append(out, r)
	}
	return out, nil
}

// find returns the index of the first entry with id ≥ id.
func (s *Spool) find(id uint64) int {
	return s.head + sort.Search(len(s.ents)-s.head, func(i int) bool { return s.ents[s.head+i].id >= id })
}

// Oldest returns the id of the oldest pending record, or the next id to be
// assigned when there is none.
func (s *Spool) Oldest() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := s.head; i < len(s.ents); i++ {
		if !s.ents[i].done {
			return s.ents[i].id
		}
	}
	return s.nextID
}

// Ack marks records as delivered. Unknown or already settled ids are
// ignored. A segment whose records are all settled is deleted.
func (s *Spool) Ack(ids ...uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.ackBuf = s.ackBuf[:0]
	for _, id := range ids {
		i := s.find(id)
		if i >= len(s.ents) || s.ents[i].id != id || s.ents[i].done {
			continue
		}
		s.settleLocked(&s.ents[i], false)
		s.ackBuf = appendAck(s.ackBuf, id)
	}
	if len(s.ackBuf) > 0 {
		// No fsync: losing an ack only causes a duplicate.
		if _, err := s.ackF.Write(s.ackBuf); err != nil {
			return fmt.Errorf("write spool ack log: %w", err)
		}
		s.ackSize += int64(len(s.ackBuf))
	}
	s.removeSpentLocked()
	if s.ackSize > ackCompactAt {
		low := s.nextID
		for i := s.head; i < len(s.ents); i++ {
			if !s.ents[i].done {
				low = s.ents[i].id
				break
			}
		}
		var keep []byte
		for i := s.find(low); i < len(s.ents); i++ {
			if s.ents[i].done {
				keep = appendAck(keep, s.ents[i].id)
			}
		}
		if err := s.rewriteAcks(keep); err != nil {
			return err
		}
	}
	return nil
}

// Expire drops pending records older than MaxAge and returns how many.
func (s *Spool) Expire() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	limit := s.opts.Now().Add(-s.opts.MaxAge).UnixNano()
	n := 0
	for i := s.head; i < len(s.ents) && s.ents[i].t < limit; i++ {
		e := &s.ents[i]
		if !e.done {
			s.settleLocked(e, true)
			n++
		}
	}
	s.removeSpentLocked()
	return n
}

// removeSpentLocked pops settled entries from the head and deletes spent
// segments other than the active one.
func (s *Spool) removeSpentLocked() {
	for s.head < len(s.ents) && s.ents[s.head].done {
		s.ents[s.head] = entry{}
		s.head++
	}
	if s.head > 1024 && s.head > len(s.ents)/2 {
		n := copy(s.ents, s.ents[s.head:])
		clear(s.ents[n:])
		s.ents = s.ents[:n]
		s.head = 0
	}
	for i := 0; i < len(s.segs); {
		if seg := s.segs[i]; seg != s.active && seg.live <= 0 {
			s.removeSegLocked(i)
			continue
		}
		i++
	}
}

func (s *Spool) removeSegLocked(i int) {
	seg := s.segs[i]
	seg.f.Close()
	if err := os.Remove(seg.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		s.log.Warn("cannot remove spent spool segment", "segment", seg.path, "err", err)
	}
	s.bytes -= seg.size
	s.segs = append(s.segs[:i], s.segs[i+1:]...)
}

// settleLocked marks a pending entry acknowledged or dropped.
func (s *Spool) settleLocked(e *entry, dropped bool) {
	e.done = true
	e.seg.live--
	s.pending--
	if dropped {
		s.dropped++
	}
}

// Stats reports the spool's content.
func (s *Spool) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Stats{Records: s.pending, Bytes: s.bytes, Dropped: s.dropped, WriteLost: s.lost, Damaged: s.damaged, Corrupt: s.corrupt}
	for i := s.head; i < len(s.ents); i++ {
		if !s.ents[i].done {
			st.Oldest = time.Unix(0, s.ents[i].t)
			break
		}
	}
	return st
}

// Close syncs pending appends and releases the files. The spool must not be
// used afterwards.
func (s *Spool) Close() error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	err := s.flushLocked()
	s.closed = true
	s.closeFiles()
	return err
}

func (s *Spool) closeFiles() {
	for _, seg := range s.segs {
		if seg.f != nil {
			seg.f.Close()
		}
	}
	if s.ackF != nil {
		s.ackF.Close()
	}
	if s.lock != nil {
		s.lock.Close()
	}
}
