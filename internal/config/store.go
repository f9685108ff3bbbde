package config

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Defaults of Options.
const (
	DefaultFile       = "node.toml"
	DefaultHistoryDir = "config-history"
	// DefaultKeep is how many versions the history keeps. At the 1 MiB
	// MaxSize that is at most about 100 MiB; a real node file is a few
	// hundred bytes.
	DefaultKeep = 100
	// MinKeep is the smallest Keep: the current version and the one a
	// commit-confirmed change goes back to.
	MinKeep = 2
	// DefaultMaxSize bounds a configuration (the node's own limit).
	DefaultMaxSize = 1 << 20
	// MaxConfirmWithin bounds ApplyConfirmed's window: a forgotten
	// tentative change must not linger for days.
	MaxConfirmWithin = 24 * time.Hour
)

// Kind says how a version came to be.
type Kind string

const (
	KindApply          Kind = "apply"           // Apply
	KindApplyConfirmed Kind = "apply-confirmed" // ApplyConfirmed (tentative until Confirm)
	KindRollback       Kind = "rollback"        // Rollback
	KindAutoRollback   Kind = "auto-rollback"   // a commit-confirmed deadline passed
	KindRecovered      Kind = "recovered"       // Open found a live file the history did not hold
)

// Version is one configuration in the history.
type Version struct {
	Number     int
	SHA256     [32]byte // of the exact bytes
	Prev       [32]byte // SHA256 of version Number-1; zero for the first version
	Time       time.Time
	Kind       Kind
	Author     string
	Comment    string
	Size       int
	RollbackOf int // the version whose bytes a rollback restored; 0 otherwise
}

// ShortHash is the first 12 hex digits of the version's SHA-256.
func (v Version) ShortHash() string { return hex.EncodeToString(v.SHA256[:6]) }

// ApplyOptions describe a change for the history (and the journal).
type ApplyOptions struct {
	Author  string // who made the change (a user, "peer <key>", "node")
	Comment string // why
}

// Timer is what Options.AfterFunc returns; *time.Timer satisfies it.
type Timer interface {
	Stop() bool
}

// Options configure a Store. The zero value is usable.
type Options struct {
	File       string // the live file's name inside dir; DefaultFile when ""
	HistoryDir string // the history directory inside dir; DefaultHistoryDir when ""
	Keep       int    // versions kept; DefaultKeep when 0; at least MinKeep
	MaxSize    int    // largest configuration accepted; DefaultMaxSize when 0

	// Validate checks a new configuration before Apply or ApplyConfirmed
	// touches anything; its error is returned wrapped with ErrInvalid (so
	// errors.As still finds, say, the node's *ConfigError with line and
	// reason). Rollback does not call it: the bytes it restores were live
	// before, and a rollback must not be blocked. Nil accepts anything.
	Validate func([]byte) error

	// OnEvent hears of the changes the store makes by itself: a
	// commit-confirmed deadline that passed (EventRolledBack or
	// EventRollbackFailed) and what Open reconciled (EventRecovered). The
	// node reloads and journals on it. It is called without the store's
	// lock held, from Open (before Open returns) or from the deadline
	// timer's goroutine; it may call the Store.
	OnEvent func(Event)

	// Now and AfterFunc are the clock; time.Now and time.AfterFunc when
	// nil (which testing/synctest fakes).
	Now       func() time.Time
	AfterFunc func(d time.Duration, f func()) Timer
}

// EventKind is what an Event reports.
type EventKind int

const (
	// EventRolledBack: a commit-confirmed change was not confirmed before
	// its deadline and the previous version (hash verified) is live again.
	EventRolledBack EventKind = iota + 1
	// EventRollbackFailed: the deadline passed but the previous version
	// could not be restored (Err says why, e.g. an *IntegrityError); the
	// tentative version stays live and stays pending until Confirm or an
	// explicit Rollback.
	EventRollbackFailed
	// EventRecovered: Open found the live file different from the latest
	// version (or missing) and reconciled: Version is what is live now.
	EventRecovered
)

func (k EventKind) String() string {
	switch k {
	case EventRolledBack:
		return "rolled-back"
	case EventRollbackFailed:
		return "rollback-failed"
	case EventRecovered:
		return "recovered"
	}
	return "EventKind(" + strconv.Itoa(int(k)) + ")"
}

// Event is a change the store made by itself.
type Event struct {
	Kind    EventKind
	Version Version // what is live now
	Pending Pending // the commit-confirmed change concerned (EventRolledBack, EventRollbackFailed)
	Reason  string
	Err     error // EventRollbackFailed
}

// Pending is a commit-confirmed change awaiting Confirm.
type Pending struct {
	Version  int       // the tentative version (live now)
	Previous int       // the version restored unless confirmed
	Deadline time.Time // wall-clock
	Applied  time.Time
}

// Errors. Each is wrapped with the detail (files, versions, times).
var (
	ErrEmpty          = errors.New("config: no configuration has been applied yet")
	ErrInvalid        = errors.New("config: configuration refused")
	ErrPending        = errors.New("config: a commit-confirmed change awaits confirmation")
	ErrNoPending      = errors.New("config: no commit-confirmed change awaits confirmation")
	ErrConfirmTooLate = errors.New("config: confirmation came after the deadline")
	ErrNoVersion      = errors.New("config: no such version in the history")
	ErrClosed         = errors.New("config: store closed")
)

// IntegrityError is a stored version whose bytes do not match the hash
// recorded for them: the history was modified, and the version is never
// applied.
type IntegrityError struct {
	File    string
	Version int
	Want    [32]byte // the recorded hash
	Got     [32]byte // the hash of what is there
	Reason  string   // which record disagrees
}

func (e *IntegrityError) Error() string {
	return fmt.Sprintf("config: %s (version %d) fails its integrity check: %s: sha256 %x, recorded %x; the history was modified, refusing to use it",
		e.File, e.Version, e.Reason, e.Got[:8], e.Want[:8])
}

// Store is a versioned configuration directory. See the package comment.
type Store struct {
	dir, live, hist string
	ext             string
	opts            Options

	mu       sync.Mutex
	versions map[int]Version
	first    int // oldest kept version, 0 when empty
	latest   int // 0 when empty
	cur      int // the version whose bytes are live, 0 when empty
	pending  *pendingState
	timer    Timer
	gen      uint64 // tells a stale deadline timer from the armed one
	closed   bool

	// rename is os.Rename; tests make it fail to simulate a crash.
	rename func(oldpath, newpath string) error
}

// Open opens (creating if needed) the store in dir. It reconciles what a
// crash may have left:
//   - temporary files are removed;
//   - a commit-confirmed change whose deadline has passed is rolled back
//     at once (EventRolledBack, before Open returns); one whose deadline is
//     ahead is re-armed for the time that remains;
//   - a pending record whose tentative version is not live is dropped;
//   - a live file that differs from the latest version (edited by hand, or
//     an apply interrupted) is recorded as a new version of kind
//     KindRecovered; a missing live file is restored from the latest
//     version (hash verified); an existing live file with no history
//     becomes version 1. Each reports EventRecovered.
//
// Open fails on a history it cannot read (a metadata file that does not
// parse, or is named for another version), naming the file.
func Open(dir string, opts Options) (*Store, error) {
	if opts.File == "" {
		opts.File = DefaultFile
	}
	if opts.HistoryDir == "" {
		opts.HistoryDir = DefaultHistoryDir
	}
	if opts.File != filepath.Base(opts.File) || opts.File == "." || opts.File == ".." {
		return nil, fmt.Errorf("config: Options.File %q must be a plain file name", opts.File)
	}
	if opts.Keep == 0 {
		opts.Keep = DefaultKeep
	}
	if opts.Keep < MinKeep {
		return nil, fmt.Errorf("config: Options.Keep %d is below the minimum %d", opts.Keep, MinKeep)
	}
	if opts.MaxSize == 0 {
		opts.MaxSize = DefaultMaxSize
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.AfterFunc == nil {
		opts.AfterFunc = func(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }
	}
	s := &Store{
		dir:      dir,
		live:     filepath.Join(dir, opts.File),
		hist:     filepath.Join(dir, opts.HistoryDir),
		ext:      filepath.Ext(opts.File),
		opts:     opts,
		versions: make(map[int]Version),
		rename:   os.Rename,
	}
	if s.ext == "" {
		s.ext = ".conf"
	}
	if err := os.MkdirAll(s.hist, 0o700); err != nil {
		return nil, fmt.Errorf("config: creating the history directory: %w", err)
	}
	removeTemps(s.dir, "."+opts.File+tempMark)
	removeTemps(s.hist, ".")
	if err := s.load(); err != nil {
		return nil, err
	}
	events, err := s.reconcile()
	if err != nil {
		return nil, err
	}
	s.emit(events)
	return s, nil
}

// Dir, LiveFile and HistoryDir are the store's paths.
func (s *Store) Dir() string        { return s.dir }
func (s *Store) LiveFile() string   { return s.live }
func (s *Store) HistoryDir() string { return s.hist }

var metaName = regexp.MustCompile(`^([0-9]{6,})\.json$`)

type metaFile struct {
	Version    int       `json:"version"`
	SHA256     string    `json:"sha256"`
	Prev       string    `json:"prev_sha256"`
	Time       time.Time `json:"time"`
	Kind       Kind      `json:"kind"`
	Author     string    `json:"author,omitempty"`
	Comment    string    `json:"comment,omitempty"`
	Size       int       `json:"size"`
	RollbackOf int       `json:"rollback_of,omitempty"`
}

func (s *Store) metaPath(n int) string { return filepath.Join(s.hist, fmt.Sprintf("%06d.json", n)) }
func (s *Store) bytesPath(n int) string {
	return filepath.Join(s.hist, fmt.Sprintf("%06d%s", n, s.ext))
}
func (s *Store) pendingPath() string { return filepath.Join(s.hist, "pending.json") }

// load reads every version's metadata and the pending record.
func (s *Store) load() error {
	ents, err := os.ReadDir(s.hist)
	if err != nil {
		return fmt.Errorf("config: reading the history: %w", err)
	}
	for _, e := range ents {
		m := metaName.FindStringSubmatch(e.Name())
		if m == nil {
			continue
		}
		n, err := strconv.Atoi(m[1])
		if err != nil || n <= 0 {
			return fmt.Errorf("config: history file %s: not a version number", filepath.Join(s.hist, e.Name()))
		}
		v, err := s.readMeta(n)
		if err != nil {
			return err
		}
		s.versions[n] = v
		if s.first == 0 || n < s.first {
			s.first = n
		}
		s.latest = max(s.latest, n)
	}
	p, err := s.readPending()
	if err != nil {
		return err
	}
	s.pending = p
	return nil
}

func (s *Store) readMeta(n int) (Version, error) {
	path := s.metaPath(n)
	data, err := readLimited(path, 1<<16)
	if err != nil {
		return Version{}, fmt.Errorf("config: history file %s: %w", path, err)
	}
	var m metaFile
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return Version{}, fmt.Errorf("config: history file %s: %v", path, err)
	}
	if m.Version != n {
		return Version{}, fmt.Errorf("config: history file %s: holds version %d, its name says %d", path, m.Version, n)
	}
	v := Version{Number: n, Time: m.Time, Kind: m.Kind, Author: m.Author, Comment: m.Comment, Size: m.Size, RollbackOf: m.RollbackOf}
	if err := decodeHash(&v.SHA256, m.SHA256); err != nil {
		return Version{}, fmt.Errorf("config: history file %s: sha256: %v", path, err)
	}
	if m.Prev != "" {
		if err := decodeHash(&v.Prev, m.Prev); err != nil {
			return Version{}, fmt.Errorf("config: history file %s: prev_sha256: %v", path, err)
		}
	}
	return v, nil
}

func decodeHash(dst *[32]byte, s string) error {
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 32 {
		return fmt.Errorf("%q is not 64 hex digits", s)
	}
	copy(dst[:], b)
	return nil
}

// reconcile brings the in-memory state, the history and the live file in
// line after load (see Open).
func (s *Store) reconcile() ([]Event, error) {
	var events []Event
	live, err := readLimited(s.live, int64(s.opts.MaxSize))
	liveMissing := errors.Is(err, fs.ErrNotExist)
	if err != nil && !liveMissing {
		return nil, fmt.Errorf("config: reading the live file %s: %w", s.live, err)
	}
	liveSum := sha256.Sum256(live)

	if p := s.pending; p != nil {
		tv, ok := s.versions[p.Version]
		if !liveMissing && ok && tv.SHA256 == liveSum {
			// The tentative version is still live: honour its deadline.
			s.cur = p.Version
			now := s.opts.Now()
			if !now.Before(p.Deadline) {
				events = append(events, s.expireLocked("the deadline passed while the node was not running"))
			} else {
				s.armLocked(p.Deadline.Sub(now))
			}
			return events, nil
		}
		// The tentative version is not live (the apply or the rollback
		// was interrupted): nothing is pending any more.
		if err := s.removePendingLocked(); err != nil {
			return nil, err
		}
	}

	switch {
	case s.latest == 0 && liveMissing:
		// An empty store.
	case s.latest != 0 && !liveMissing && s.versions[s.latest].SHA256 == liveSum:
		s.cur = s.latest
	case s.latest != 0 && liveMissing:
		data, err := s.readVerifiedLocked(s.latest)
		if err != nil {
			return nil, fmt.Errorf("config: the live file %s is missing and the latest version cannot be restored: %w", s.live, err)
		}
		if err := s.writeLiveLocked(data); err != nil {
			return nil, err
		}
		s.cur = s.latest
		events = append(events, Event{Kind: EventRecovered, Version: s.versions[s.latest],
			Reason: fmt.Sprintf("the live file %s was missing; restored version %d", s.live, s.latest)})
	default:
		reason := fmt.Sprintf("the live file %s existed before the history; recorded as the first version", s.live)
		if s.latest != 0 {
			reason = fmt.Sprintf("the live file %s did not match version %d (edited outside the store, or an apply was interrupted); recorded as a new version",
				s.live, s.latest)
		}
		v, err := s.recordLocked(live, KindRecovered, ApplyOptions{Author: "config.Open", Comment: reason}, 0)
		if err != nil {
			return nil, err
		}
		s.cur = v.Number
		s.pruneLocked()
		events = append(events, Event{Kind: EventRecovered, Version: v, Reason: reason})
	}
	return events, nil
}

// Close stops the deadline timer. A pending commit-confirmed change stays
// on disk and is honoured by the next Open.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
	s.gen++
	s.closed = true
	return nil
}

// Apply validates data, records it as a new version and makes it the live
// file atomically. Invalid data (ErrInvalid) touches nothing. It is
// refused (ErrPending) while a commit-confirmed change awaits Confirm:
// confirm or roll back that one first.
func (s *Store) Apply(data []byte, o ApplyOptions) (Version, error) {
	if err := s.validate(data); err != nil {
		return Version{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usableLocked(); err != nil {
		return Version{}, err
	}
	if err := s.notPendingLocked(); err != nil {
		return Version{}, err
	}
	return s.commitLocked(data, KindApply, o, 0, nil)
}

func (s *Store) validate(data []byte) error {
	if len(data) > s.opts.MaxSize {
		return fmt.Errorf("%w: %d bytes is larger than the %d-byte limit", ErrInvalid, len(data), s.opts.MaxSize)
	}
	if s.opts.Validate != nil {
		if err := s.opts.Validate(data); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalid, err)
		}
	}
	return nil
}

func (s *Store) usableLocked() error {
	if s.closed {
		return ErrClosed
	}
	return nil
}

func (s *Store) notPendingLocked() error {
	if p := s.pending; p != nil {
		return fmt.Errorf("%w: version %d (applied %s) rolls back to version %d at %s unless confirmed",
			ErrPending, p.Version, p.Applied.Format(time.RFC3339), p.Previous, p.Deadline.Format(time.RFC3339))
	}
	return nil
}

// commitLocked records data as version latest+1, writes pending.json when
// p is not nil, and makes data the live file. If any step fails, what was
// written for the new version is removed again and the live file is the
// old one.
func (s *Store) commitLocked(data []byte, kind Kind, o ApplyOptions, rollbackOf int, p *pendingState) (Version, error) {
	v, err := s.recordLocked(data, kind, o, rollbackOf)
	if err != nil {
		return Version{}, err
	}
	undo := func() {
		os.Remove(s.metaPath(v.Number))
		os.Remove(s.bytesPath(v.Number))
		delete(s.versions, v.Number)
		s.latest = v.Number - 1
		if s.first == v.Number {
			s.first = 0
		}
	}
	if p != nil {
		p.Version = v.Number
		if err := s.writePendingLocked(p); err != nil {
			undo()
			return Version{}, err
		}
	}
	if err := s.writeLiveLocked(data); err != nil {
		if p != nil {
			os.Remove(s.pendingPath())
		}
		undo()
		return Version{}, err
	}
	s.cur = v.Number
	s.pruneLocked()
	return v, nil
}

// recordLocked writes data and its metadata as version latest+1.
func (s *Store) recordLocked(data []byte, kind Kind, o ApplyOptions, rollbackOf int) (Version, error) {
	n := s.latest + 1
	v := Version{
		Number: n, SHA256: sha256.Sum256(data), Time: s.opts.Now().Round(0),
		Kind: kind, Author: o.Author, Comment: o.Comment, Size: len(data), RollbackOf: rollbackOf,
	}
	m := metaFile{Version: n, SHA256: hex.EncodeToString(v.SHA256[:]), Time: v.Time, Kind: kind,
		Author: o.Author, Comment: o.Comment, Size: len(data), RollbackOf: rollbackOf}
	if pv, ok := s.versions[n-1]; ok {
		v.Prev = pv.SHA256
		m.Prev = hex.EncodeToString(v.Prev[:])
	}
	meta, err := json.MarshalIndent(&m, "", "  ")
	if err != nil {
		return Version{}, err
	}
	meta = append(meta, '\n')
	if err := s.writeAtomic(s.bytesPath(n), data, 0o600); err != nil {
		return Version{}, fmt.Errorf("config: recording version %d: %w", n, err)
	}
	if err := s.writeAtomic(s.metaPath(n), meta, 0o600); err != nil {
		os.Remove(s.bytesPath(n))
		return Version{}, fmt.Errorf("config: recording version %d: %w", n, err)
	}
	s.versions[n] = v
	s.latest = n
	if s.first == 0 {
		s.first = n
	}
	return v, nil
}

// writeLiveLocked replaces the live file with data, keeping its mode, and
// reads it back to check its hash.
func (s *Store) writeLiveLocked(data []byte) error {
	perm := os.FileMode(0o600)
	if fi, err := os.Stat(s.live); err == nil {
		perm = fi.Mode().Perm()
	}
	if err := s.writeAtomic(s.live, data, perm); err != nil {
		return fmt.Errorf("config: writing the live file: %w (it is unchanged)", err)
	}
	back, err := readLimited(s.live, int64(s.opts.MaxSize))
	if err != nil {
		return fmt.Errorf("config: reading back the live file %s: %w", s.live, err)
	}
	if want, got := sha256.Sum256(data), sha256.Sum256(back); want != got {
		return &IntegrityError{File: s.live, Want: want, Got: got, Reason: "the live file read back differs from what was written"}
	}
	return nil
}

// pruneLocked deletes the oldest versions beyond Keep, never one still
// needed (the live one, or the one a pending change goes back to).
func (s *Store) pruneLocked() {
	floor := s.cur
	if s.pending != nil {
		floor = min(floor, s.pending.Previous)
	}
	for len(s.versions) > s.opts.Keep && s.first != 0 && s.first < floor {
		n := s.first
		if _, ok := s.versions[n]; ok {
			if err := os.Remove(s.metaPath(n)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return // try again after the next change
			}
			os.Remove(s.bytesPath(n))
			delete(s.versions, n)
		}
		s.first++
		if s.first > s.latest {
			s.first = 0
		}
	}
}

// Rollback restores version to (the version before the current one when
// to is 0) as a new version of kind KindRollback whose bytes are exactly
// those of version to. The stored bytes are checked against their
// recorded hash before anything is written, and the live file is checked
// again after; a tampered version is an *IntegrityError and is never
// applied. A commit-confirmed change awaiting Confirm is superseded: the
// rollback ends it.
func (s *Store) Rollback(to int, o ApplyOptions) (Version, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usableLocked(); err != nil {
		return Version{}, err
	}
	if s.cur == 0 {
		return Version{}, ErrEmpty
	}
	if to == 0 {
		to = s.cur - 1
		if to == 0 {
			return Version{}, fmt.Errorf("config: version %d is the first; there is no previous version to roll back to", s.cur)
		}
	}
	if to == s.cur {
		return Version{}, fmt.Errorf("config: version %d is already the live configuration", to)
	}
	data, err := s.readVerifiedLocked(to)
	if err != nil {
		return Version{}, fmt.Errorf("config: rolling back to version %d: %w", to, err)
	}
	if o.Comment == "" {
		o.Comment = fmt.Sprintf("rollback from version %d to version %d", s.cur, to)
	}
	v, err := s.commitLocked(data, KindRollback, o, to, nil)
	if err != nil {
		return Version{}, err
	}
	if s.pending != nil {
		s.stopTimerLocked()
		if err := s.removePendingLocked(); err != nil {
			return v, err
		}
	}
	return v, nil
}

// Current is the live version.
func (s *Store) Current() (Version, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur == 0 {
		return Version{}, ErrEmpty
	}
	return s.versions[s.cur], nil
}

// History is every kept version, oldest first.
func (s *Store) History() []Version {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Version, 0, len(s.versions))
	for _, v := range s.versions {
		out = append(out, v)
	}
	slices.SortFunc(out, func(a, b Version) int { return a.Number - b.Number })
	return out
}

// Get returns version n and its bytes, verified against the recorded hash.
func (s *Store) Get(n int) (Version, []byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	data, err := s.readVerifiedLocked(n)
	if err != nil {
		return Version{}, nil, err
	}
	return s.versions[n], data, nil
}

// Verify checks every kept version: its bytes against its hash and the
// chain of previous-version hashes. It returns the first problem, nil when
// none.
func (s *Store) Verify() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.first == 0 {
		return nil
	}
	for n := s.first; n <= s.latest; n++ {
		if _, ok := s.versions[n]; !ok {
			return fmt.Errorf("%w: version %d is missing from %s between %d and %d; the history was modified",
				ErrNoVersion, n, s.hist, s.first, s.latest)
		}
		if _, err := s.readVerifiedLocked(n); err != nil {
			return err
		}
	}
	return nil
}

// readVerifiedLocked reads version n's bytes and checks them against the
// hash in its metadata, and that hash against the previous-version hash
// held by version n+1 (when kept).
func (s *Store) readVerifiedLocked(n int) ([]byte, error) {
	v, ok := s.versions[n]
	if !ok {
		if s.first == 0 {
			return nil, fmt.Errorf("%w: version %d (the history is empty)", ErrNoVersion, n)
		}
		return nil, fmt.Errorf("%w: version %d (kept: %d to %d)", ErrNoVersion, n, s.first, s.latest)
	}
	path := s.bytesPath(n)
	data, err := readLimited(path, int64(s.opts.MaxSize))
	if err != nil {
		return nil, fmt.Errorf("config: reading version %d: %w", n, err)
	}
	got := sha256.Sum256(data)
	if got != v.SHA256 {
		return nil, &IntegrityError{File: path, Version: n, Want: v.SHA256, Got: got,
			Reason: "its bytes differ from the hash in " + filepath.Base(s.metaPath(n))}
	}
	if next, ok := s.versions[n+1]; ok && next.Prev != v.SHA256 {
		return nil, &IntegrityError{File: s.metaPath(n), Version: n, Want: next.Prev, Got: v.SHA256,
			Reason: fmt.Sprintf("its hash differs from the previous-version hash recorded by version %d", n+1)}
	}
	if prev, ok := s.versions[n-1]; ok && v.Prev != prev.SHA256 {
		return nil, &IntegrityError{File: s.metaPath(n), Version: n, Want: prev.SHA256, Got: v.Prev,
			Reason: fmt.Sprintf("its previous-version hash differs from the hash of version %d", n-1)}
	}
	return data, nil
}

// Diff is a unified diff from version a to version b (both verified).
func (s *Store) Diff(a, b int) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	da, err := s.readVerifiedLocked(a)
	if err != nil {
		return "", err
	}
	db, err := s.readVerifiedLocked(b)
	if err != nil {
		return "", err
	}
	va, vb := s.versions[a], s.versions[b]
	return UnifiedDiff(
		fmt.Sprintf("version %d (sha256 %s)", a, va.ShortHash()),
		fmt.Sprintf("version %d (sha256 %s)", b, vb.ShortHash()),
		da, db), nil
}

// emit delivers events to Options.OnEvent; the lock must not be held.
func (s *Store) emit(events []Event) {
	if s.opts.OnEvent == nil {
		return
	}
	for _, e := range events {
		s.opts.OnEvent(e)
	}
}

// writeAtomic replaces path with data: a temporary file in the same
// directory, fsync, rename, fsync of the directory. On error the target is
// untouched and the temporary file removed.
func (s *Store) writeAtomic(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+tempMark+"*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("writing %s: %w", tmp, err)
	}
	if err := f.Chmod(perm); err != nil {
		return fmt.Errorf("chmod %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("closing %s: %w", tmp, err)
	}
	if err := s.rename(tmp, path); err != nil {
		return fmt.Errorf("renaming %s to %s: %w", tmp, path, err)
	}
	ok = true
	return syncDir(dir)
}

const tempMark = ".tmp-"

// removeTemps deletes the temporary files writeAtomic leaves when the
// process dies between creating and renaming them.
func removeTemps(dir, prefix string) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		if n := e.Name(); strings.HasPrefix(n, prefix) && strings.Contains(n, tempMark) && e.Type().IsRegular() {
			os.Remove(filepath.Join(dir, n))
		}
	}
}

func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return data, nil
}
