package journal

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// DefaultMaxBytes is the default size cap of a journal file (1 GiB).
const DefaultMaxBytes = 1 << 30

var (
	// ErrFull is wrapped by every error that means the journal cannot take
	// more entries for lack of space: the size cap (Options.MaxBytes), or
	// ENOSPC, EDQUOT or EFBIG from the file system. The node reports it as
	// JOURNAL_FULL (0x08).
	ErrFull = errors.New("journal full")
	// ErrClosed is returned by operations on a closed Journal.
	ErrClosed = errors.New("journal: closed")
	// ErrLocked is returned by Open when another Journal holds the file.
	ErrLocked = errors.New("journal: file in use by another process")
)

// Options configure a Journal. The zero value is usable.
type Options struct {
	// MaxBytes caps the file size; an Append that would pass it fails
	// with ErrFull. 0 means DefaultMaxBytes.
	MaxBytes int64
	// GroupCommit lets concurrent Appends share one fsync: each Append
	// still returns only after an fsync that covers its record, but while
	// one fsync runs, the records written meanwhile wait for the next one
	// together. Off: every Append writes and fsyncs under the journal's
	// lock, one after the other.
	GroupCommit bool
	// AggregateWindow is the window of Note's aggregation; 0 means one
	// minute, a negative value turns aggregation off (Note appends).
	AggregateWindow time.Duration
	// MaxAggregateKeys bounds the distinct (type, versions, detail)
	// buckets open at once; past it events are counted in one overflow
	// bucket per type. 0 means 1024.
	MaxAggregateKeys int
	// Now is the wall clock; nil means time.Now.
	Now func() time.Time
	// Logger receives warnings (repairs, failed aggregate flushes); nil
	// means slog.Default().
	Logger *slog.Logger
}

// file is what the Journal needs of its *os.File (tests inject faults).
type file interface {
	io.Writer
	Sync() error
	Truncate(size int64) error
	Close() error
}

// Journal is an open, writable journal file. Its methods are safe for
// concurrent use.
type Journal struct {
	path string
	opts Options
	now  func() time.Time
	log  *slog.Logger
	osf  *os.File

	mu     sync.Mutex
	f      file
	size   int64    // end of the last record written
	seq    uint64   // last sequence number written
	head   [32]byte // hash of the last entry written
	broken error    // sticky: the file's state is unknown
	closed bool
	buf    []byte

	syncMu     sync.Mutex // serializes fsyncs (group commit)
	synced     int64      // file offset known durable; under syncMu
	durableMu  sync.Mutex
	durableSeq uint64
	durableHd  [32]byte

	agg *aggregator

	recent recentHashes // under mu
}

// Open opens the journal at path, creating it (and fsyncing its directory)
// if it does not exist. It reads and verifies the whole file. A torn last
// record is truncated away with a warning, and a TypeRecovery entry records
// the repair; any other defect makes Open fail with a *CorruptError naming
// the first bad entry (use Verify to inspect such a file).
func Open(path string, opts Options) (*Journal, error) {
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = DefaultMaxBytes
	}
	if opts.AggregateWindow == 0 {
		opts.AggregateWindow = time.Minute
	}
	if opts.MaxAggregateKeys <= 0 {
		opts.MaxAggregateKeys = 1024
	}
	j := &Journal{path: path, opts: opts, now: opts.Now, log: opts.Logger}
	if j.now == nil {
		j.now = time.Now
	}
	if j.log == nil {
		j.log = slog.Default()
	}
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		if err := create(path); err != nil {
			return nil, err
		}
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND, 0)
	if err != nil {
		return nil, err
	}
	if err := lockFile(f); err != nil {
		f.Close()
		return nil, err
	}
	j.osf, j.f = f, f
	repaired, err := j.load()
	if err != nil {
		f.Close()
		return nil, err
	}
	j.synced = j.size
	j.durableSeq, j.durableHd = j.seq, j.head
	if repaired != nil {
		if _, err := j.Append(Entry{Type: TypeRecovery, Detail: map[string]string{
			"reason":          repaired.Reason,
			"offset":          strconv.FormatInt(repaired.Offset, 10),
			"truncated_bytes": strconv.FormatUint(repaired.Found, 10),
		}}); err != nil {
			f.Close()
			return nil, fmt.Errorf("journal: recording the repair: %w", err)
		}
	}
	if opts.AggregateWindow > 0 {
		j.agg = newAggregator(j, opts.AggregateWindow, opts.MaxAggregateKeys)
	}
	return j, nil
}

// create makes a journal holding only the file header: written to a
// temporary file, fsynced, renamed into place, and the directory fsynced,
// so that a crash leaves either no journal or a valid empty one.
func create(path string) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write([]byte(Magic))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err == nil {
		err = syncDir(filepath.Dir(path))
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("journal: creating %s: %w", path, err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// load reads the file, sets size/seq/head, and repairs a torn tail. It
// returns the repair (Found = bytes truncated) or nil.
func (j *Journal) load() (*CorruptError, error) {
	if _, err := j.osf.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	r, err := NewReader(j.osf)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", j.path, err)
	}
	var last error
	for {
		var e Entry
		if e, last = r.Next(); last != nil {
			break
		}
		j.recent.push(e.Seq, e.Hash, e.Prev)
	}
	j.size = r.Offset()
	j.seq, j.head = r.Head()
	if last == io.EOF {
		return nil, nil
	}
	var ce *CorruptError
	if !errors.As(last, &ce) || !ce.Torn {
		return nil, fmt.Errorf("%s: %w", j.path, last)
	}
	st, err := j.osf.Stat()
	if err != nil {
		return nil, err
	}
	cut := st.Size() - j.size
	j.log.Warn("journal: truncating a torn last record",
		"path", j.path, "seq", ce.Seq, "offset", ce.Offset, "bytes", cut, "reason", ce.Reason)
	if err := j.osf.Truncate(j.size); err != nil {
		return nil, fmt.Errorf("journal: truncating torn record: %w", err)
	}
	if err := j.osf.Sync(); err != nil {
		return nil, fmt.Errorf("journal: truncating torn record: %w", err)
	}
	rep := *ce
	rep.Found = uint64(cut)
	return &rep, nil
}

// Path is the journal's file name.
func (j *Journal) Path() string { return j.path }

// Append writes e as the next entry and returns it as written (Seq, Time,
// First, Count, Prev and Hash filled in). It returns only after the record
// has been written and fsynced: an entry Append reported survives kill -9
// and power loss. Errors for lack of space wrap ErrFull; after a failed
// write the file is cut back to its previous end and the journal stays
// usable, but after a failed fsync (whose effect on the file cannot be
// known) every later Append fails until the journal is reopened.
func (j *Journal) Append(e Entry) (Entry, error) {
	return j.append(e, time.Time{}, 1)
}

func (j *Journal) append(e Entry, first time.Time, count uint64) (Entry, error) {
	if e.Type == 0 {
		return Entry{}, errors.New("journal: entry type 0")
	}
	j.mu.Lock()
	if j.closed {
		j.mu.Unlock()
		return Entry{}, ErrClosed
	}
	if j.broken != nil {
		err := j.broken
		j.mu.Unlock()
		return Entry{}, fmt.Errorf("journal: unusable after an earlier failure: %w", err)
	}
	e.Time = j.now().UTC()
	e.First = first.UTC()
	if first.IsZero() || e.First.After(e.Time) {
		e.First = e.Time
	}
	e.Count = count
	e.Seq = j.seq + 1
	e.Prev = j.head
	var err error
	j.buf, err = appendRecord(j.buf[:0], &e)
	if err != nil {
		j.mu.Unlock()
		return Entry{}, err
	}
	if j.size+int64(len(j.buf)) > j.opts.MaxBytes {
		j.mu.Unlock()
		return Entry{}, fmt.Errorf("journal: %w: %d of %d bytes used", ErrFull, j.size, j.opts.MaxBytes)
	}
	if _, err := j.f.Write(j.buf); err != nil {
		err = wrapSpace(err)
		if terr := j.f.Truncate(j.size); terr != nil {
			j.broken = err
		}
		j.mu.Unlock()
		return Entry{}, fmt.Errorf("journal: writing entry %d: %w", e.Seq, err)
	}
	e.Offset = j.size
	j.size += int64(len(j.buf))
	j.seq, j.head = e.Seq, e.Hash
	j.recent.push(e.Seq, e.Hash, e.Prev)
	if !j.opts.GroupCommit {
		err := j.f.Sync()
		if err != nil {
			j.broken = wrapSpace(err)
			j.mu.Unlock()
			return Entry{}, fmt.Errorf("journal: fsync after entry %d: %w", e.Seq, j.broken)
		}
		j.setDurable(e.Seq, e.Hash)
		j.mu.Unlock()
		return e, nil
	}
	end := j.size
	j.mu.Unlock()
	if err := j.syncTo(end); err != nil {
		return Entry{}, fmt.Errorf("journal: fsync after entry %d: %w", e.Seq, err)
	}
	return e, nil
}

// syncTo returns once the file is durable up to end: either an fsync that
// started after end was written has finished, or it runs one itself,
// covering every record written so far.
func (j *Journal) syncTo(end int64) error {
	j.syncMu.Lock()
	defer j.syncMu.Unlock()
	if j.synced >= end {
		return nil
	}
	j.mu.Lock()
	if j.broken != nil {
		err := j.broken
		j.mu.Unlock()
		return err
	}
	target, seq, head := j.size, j.seq, j.head
	j.mu.Unlock()
	if err := j.f.Sync(); err != nil {
		err = wrapSpace(err)
		j.mu.Lock()
		j.broken = err
		j.mu.Unlock()
		return err
	}
	j.synced = target
	j.setDurable(seq, head)
	return nil
}

func (j *Journal) setDurable(seq uint64, head [32]byte) {
	j.durableMu.Lock()
	if seq > j.durableSeq {
		j.durableSeq, j.durableHd = seq, head
	}
	j.durableMu.Unlock()
}

func wrapSpace(err error) error {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) || errors.Is(err, syscall.EFBIG) {
		return fmt.Errorf("%w: %w", ErrFull, err)
	}
	return err
}

// Head returns the sequence number and hash of the last durable entry:
// the chain head, a commitment to the whole journal (Genesis and 0 when
// empty). Entries being fsynced at this moment are not yet included, so a
// published head is never ahead of the disk.
func (j *Journal) Head() (seq uint64, head [32]byte) {
	j.durableMu.Lock()
	defer j.durableMu.Unlock()
	return j.durableSeq, j.durableHd
}

// HeadTruncated is the first 8 bytes of the chain head read big-endian:
// the journal_head field of heartbeat telemetry (PROTOCOL.md §7.9.1).
func (j *Journal) HeadTruncated() uint64 {
	_, h := j.Head()
	return Truncate(h)
}

// Truncate returns the first 8 bytes of head read big-endian.
func Truncate(head [32]byte) uint64 {
	var v uint64
	for _, b := range head[:8] {
		v = v<<8 | uint64(b)
	}
	return v
}

// Size is the file size in bytes.
func (j *Journal) Size() int64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.size
}

// Flush writes every open aggregation bucket now.
func (j *Journal) Flush() error {
	if j.agg == nil {
		return nil
	}
	return j.agg.flush(time.Time{}, true)
}

// Close writes the open aggregation buckets, then closes the file.
func (j *Journal) Close() error {
	var err error
	if j.agg != nil {
		err = j.agg.stop()
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return ErrClosed
	}
	j.closed = true
	if cerr := j.f.Close(); err == nil {
		err = cerr
	}
	return err
}
