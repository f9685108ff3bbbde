package config

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"
)

// pendingState is a commit-confirmed change awaiting Confirm, as kept in
// memory and in pending.json.
type pendingState struct {
	Version        int
	Previous       int
	PreviousSHA256 [32]byte
	Deadline       time.Time
	Applied        time.Time
}

type pendingFile struct {
	Version        int       `json:"version"`
	Previous       int       `json:"previous"`
	PreviousSHA256 string    `json:"previous_sha256"`
	Deadline       time.Time `json:"deadline"`
	Applied        time.Time `json:"applied"`
}

func (p *pendingState) public() Pending {
	return Pending{Version: p.Version, Previous: p.Previous, Deadline: p.Deadline, Applied: p.Applied}
}

// ApplyConfirmed applies data tentatively, like Junos' `commit confirmed`:
// unless Confirm is called within the given time, the store restores the
// version live before it (hash verified), records that as a version of
// kind KindAutoRollback and reports EventRolledBack. The deadline is kept
// on disk: after a restart, Open rolls back at once if it has passed and
// re-arms the timer for what remains otherwise.
//
// Only one change may be pending: a second ApplyConfirmed (or an Apply)
// while one awaits Confirm is refused with ErrPending, because the version
// to go back to would otherwise be ambiguous. Confirm it, or end it with
// Rollback, first. There must be a live version to go back to (ErrEmpty).
// within must be positive and at most MaxConfirmWithin.
func (s *Store) ApplyConfirmed(data []byte, within time.Duration, o ApplyOptions) (Version, error) {
	if within <= 0 || within > MaxConfirmWithin {
		return Version{}, fmt.Errorf("config: confirmation window %v is outside (0, %v]", within, MaxConfirmWithin)
	}
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
	if s.cur == 0 {
		return Version{}, fmt.Errorf("%w: a commit-confirmed change needs a version to go back to; use Apply for the first one", ErrEmpty)
	}
	prev := s.versions[s.cur]
	now := s.opts.Now()
	p := &pendingState{Previous: prev.Number, PreviousSHA256: prev.SHA256,
		Applied: now.Round(0), Deadline: now.Add(within).Round(0)}
	if o.Comment == "" {
		o.Comment = fmt.Sprintf("commit confirmed: rolls back to version %d unless confirmed within %v", prev.Number, within)
	}
	v, err := s.commitLocked(data, KindApplyConfirmed, o, 0, p)
	if err != nil {
		return Version{}, err
	}
	s.pending = p
	s.armLocked(within)
	return v, nil
}

// Confirm makes the pending commit-confirmed change permanent and returns
// it. ErrNoPending when there is none. A Confirm that arrives when the
// deadline has already passed (the timer has not run yet) does not save
// the change: the rollback happens there and then, and the error is
// ErrConfirmTooLate.
func (s *Store) Confirm() (Pending, error) {
	s.mu.Lock()
	if err := s.usableLocked(); err != nil {
		s.mu.Unlock()
		return Pending{}, err
	}
	p := s.pending
	if p == nil {
		s.mu.Unlock()
		return Pending{}, ErrNoPending
	}
	if now := s.opts.Now(); !now.Before(p.Deadline) {
		ev := s.expireLocked("the deadline passed before the confirmation")
		s.mu.Unlock()
		s.emit([]Event{ev})
		return p.public(), fmt.Errorf("%w: version %d was due by %s; %s", ErrConfirmTooLate, p.Version,
			p.Deadline.Format(time.RFC3339), ev.Reason)
	}
	defer s.mu.Unlock()
	if err := s.removePendingLocked(); err != nil {
		return Pending{}, err
	}
	s.stopTimerLocked()
	return p.public(), nil
}

// Pending reports the commit-confirmed change awaiting Confirm, if any.
func (s *Store) Pending() (Pending, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pending == nil {
		return Pending{}, false
	}
	return s.pending.public(), true
}

// armLocked starts the deadline timer.
func (s *Store) armLocked(d time.Duration) {
	s.stopTimerLocked()
	s.gen++
	gen := s.gen
	s.timer = s.opts.AfterFunc(d, func() { s.deadline(gen) })
}

func (s *Store) stopTimerLocked() {
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
	s.gen++
}

// deadline runs when the confirmation window of timer generation gen ends.
func (s *Store) deadline(gen uint64) {
	s.mu.Lock()
	if s.closed || s.gen != gen || s.pending == nil {
		s.mu.Unlock()
		return
	}
	s.timer = nil
	ev := s.expireLocked("not confirmed before the deadline")
	s.mu.Unlock()
	s.emit([]Event{ev})
}

// expireLocked rolls the pending change back to the version before it,
// verified both against its own metadata and against the hash pending.json
// recorded when the change was applied.
func (s *Store) expireLocked(why string) Event {
	p := s.pending
	s.stopTimerLocked()
	fail := func(err error) Event {
		// The tentative version stays live and pending: an operator must
		// Confirm it or Rollback explicitly.
		return Event{Kind: EventRollbackFailed, Version: s.versions[s.cur], Pending: p.public(),
			Reason: fmt.Sprintf("version %d %s, but version %d cannot be restored", p.Version, why, p.Previous), Err: err}
	}
	data, err := s.readVerifiedLocked(p.Previous)
	if err != nil {
		return fail(err)
	}
	if v := s.versions[p.Previous]; v.SHA256 != p.PreviousSHA256 {
		return fail(&IntegrityError{File: s.metaPath(p.Previous), Version: p.Previous, Want: p.PreviousSHA256, Got: v.SHA256,
			Reason: "its hash differs from the one " + s.pendingPath() + " recorded when version " + fmt.Sprint(p.Version) + " was applied"})
	}
	reason := fmt.Sprintf("version %d %s (%s); restored version %d", p.Version, why, p.Deadline.Format(time.RFC3339), p.Previous)
	v, err := s.commitLocked(data, KindAutoRollback,
		ApplyOptions{Author: "config (commit confirmed)", Comment: reason}, p.Previous, nil)
	if err != nil {
		return fail(err)
	}
	if err := s.removePendingLocked(); err != nil {
		// The rollback is live; a stale pending.json is dropped by the
		// next Open, since its tentative version is no longer live.
		return Event{Kind: EventRolledBack, Version: v, Pending: p.public(), Reason: reason, Err: err}
	}
	return Event{Kind: EventRolledBack, Version: v, Pending: p.public(), Reason: reason}
}

func (s *Store) writePendingLocked(p *pendingState) error {
	f := pendingFile{Version: p.Version, Previous: p.Previous, PreviousSHA256: hex.EncodeToString(p.PreviousSHA256[:]),
		Deadline: p.Deadline, Applied: p.Applied}
	data, err := json.MarshalIndent(&f, "", "  ")
	if err != nil {
		return err
	}
	if err := s.writeAtomic(s.pendingPath(), append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("config: recording the confirmation deadline: %w", err)
	}
	return nil
}

func (s *Store) removePendingLocked() error {
	if err := os.Remove(s.pendingPath()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("config: clearing the pending change: %w", err)
	}
	s.pending = nil
	return syncDir(s.hist)
}

func (s *Store) readPending() (*pendingState, error) {
	path := s.pendingPath()
	data, err := readLimited(path, 1<<16)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("config: %s: %w", path, err)
	}
	var f pendingFile
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("config: %s: %v", path, err)
	}
	if f.Version <= 0 || f.Previous <= 0 || f.Deadline.IsZero() {
		return nil, fmt.Errorf("config: %s: incomplete record (version %d, previous %d, deadline %v)", path, f.Version, f.Previous, f.Deadline)
	}
	p := &pendingState{Version: f.Version, Previous: f.Previous, Deadline: f.Deadline, Applied: f.Applied}
	if err := decodeHash(&p.PreviousSHA256, f.PreviousSHA256); err != nil {
		return nil, fmt.Errorf("config: %s: previous_sha256: %v", path, err)
	}
	return p, nil
}
