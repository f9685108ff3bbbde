package session

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/pool-go/pool/internal/bufpool"
	"github.com/pool-go/pool/internal/frag"
	"github.com/pool-go/pool/internal/wire"
)

// Fragmentation of control messages (PROTOCOL.md §7.11). DATA never needs
// it (it is segmented to the MTU); CONFIG, ROLLBACK, JOURNAL and the peer
// exchange do, over paths whose MTU is below their size. Reassembly keeps
// to P04: 16 slots, 5 s, LRU eviction, 16 × MTU of memory (internal/frag).
type fragments struct {
	mu      sync.Mutex // the reader adds, a timer expires
	re      *frag.Reassembler
	types   map[uint32]wire.Type // the type each message in reassembly carries
	dropped []uint32             // ids discarded, to report as FRAG_TIMEOUT
	timer   *time.Timer
	nextID  uint32 // sender's msg_id counter, guarded by Session.mu

	// FRAG_TIMEOUT notices: at most 10 per second (§7.11).
	noticeTokens float64
	noticeAt     time.Duration
	notices      uint64
}

// ErrMessageTooLarge: a control message above the 8192 bytes any path
// carries (§7.11).
var ErrMessageTooLarge = fmt.Errorf("pool: control message larger than %d bytes", wire.MaxFragMessage)

func (s *Session) startFragments() {
	f := &s.frags
	f.types = make(map[uint32]wire.Type)
	f.noticeTokens = 10
	f.re = frag.NewReassembler(frag.Config{MTU: max(wire.MinMTU, s.mtu()),
		OnDrop: func(id uint32) {
			delete(f.types, id)
			f.dropped = append(f.dropped, id)
		}})
	f.timer = time.AfterFunc(time.Hour, s.fragExpire)
	f.timer.Stop()
}

// reassemble adds one fragment; it returns the whole message when this
// fragment completed it. Errors that only a broken or hostile sender
// causes are protocol errors; a duplicate or a late fragment is counted.
func (s *Session) reassemble(typ wire.Type, hdr wire.Fragment, last bool, chunk []byte) ([]byte, error) {
	f := &s.frags
	f.mu.Lock()
	if t, ok := f.types[hdr.MsgID]; ok && t != typ {
		f.mu.Unlock()
		return nil, s.protocolError(fmt.Sprintf("fragments of message %d carry types %v and %v", hdr.MsgID, t, typ))
	}
	f.re.SetMTU(max(wire.MinMTU, s.mtu()))
	msg, err := f.re.Add(hdr.MsgID, uint32(hdr.Offset), uint32(hdr.Total), last, chunk)
	switch {
	case msg != nil:
		delete(f.types, hdr.MsgID)
	case err == nil:
		f.types[hdr.MsgID] = typ
	}
	s.armFragTimerLocked()
	dropped := f.dropped
	f.dropped = nil
	f.mu.Unlock()
	s.reportDropped(dropped)
	switch {
	case errors.Is(err, frag.ErrConflict), errors.Is(err, frag.ErrTotalMismatch), errors.Is(err, frag.ErrMalformed):
		return nil, s.protocolError(err.Error())
	case err != nil:
		return nil, nil // counted by the reassembler (duplicate, late, over the cap)
	}
	return msg, nil
}

func (s *Session) armFragTimerLocked() {
	if d, ok := s.frags.re.NextDeadline(); ok {
		s.frags.timer.Reset(time.Until(d))
	}
}

// fragExpire discards messages past their 5 s and reports them.
func (s *Session) fragExpire() {
	f := &s.frags
	f.mu.Lock()
	f.re.Expire()
	s.armFragTimerLocked()
	dropped := f.dropped
	f.dropped = nil
	f.mu.Unlock()
	s.reportDropped(dropped)
}

// reportDropped sends FRAG_TIMEOUT for discarded messages, at most 10 a
// second; the rest are only counted.
func (s *Session) reportDropped(ids []uint32) {
	if len(ids) == 0 {
		return
	}
	now := time.Duration(s.monotonic())
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.out.wake()
	f := &s.frags
	f.noticeTokens = min(10, f.noticeTokens+10*(now-f.noticeAt).Seconds())
	f.noticeAt = now
	for _, id := range ids {
		if f.noticeTokens < 1 || s.err != nil || s.closing {
			return
		}
		f.noticeTokens--
		f.notices++
		buf := bufpool.Get(wire.HeaderLen + wire.NoticeLen + wire.TagLen)
		wire.AppendNotice((*buf)[:wire.HeaderLen], &wire.Notice{Code: wire.CodeFragTimeout, MsgID: id})
		s.out.notices = append(s.out.notices, outPkt{buf: buf, n: wire.NoticeLen, typ: wire.TypeHeartbeat})
	}
}

// SendMessage sends one control message of a type later layers define
// (CONFIG, ROLLBACK, JOURNAL), fragmented when it does not fit the path
// MTU (§7.11). It blocks like Write while the send queue is full.
func (s *Session) SendMessage(typ wire.Type, msg []byte) error {
	switch {
	case typ != wire.TypeConfig && typ != wire.TypeRollback && typ != wire.TypeJournal:
		return fmt.Errorf("pool: SendMessage of type %v", typ)
	case len(msg) > wire.MaxFragMessage:
		return ErrMessageTooLarge
	case len(msg) == 0:
		return errors.New("pool: empty control message")
	}
	if len(msg) <= s.maxPlaintext() {
		buf := bufpool.Get(wire.HeaderLen + len(msg) + wire.TagLen)
		copy((*buf)[wire.HeaderLen:], msg)
		return s.enqueue(outPkt{buf: buf, n: len(msg), typ: typ}, time.Time{})
	}
	// A peer without the layer would refuse fragments (§7.7).
	if err := s.awaitLayer(context.Background()); err != nil {
		return err
	}
	s.mu.Lock()
	id := s.frags.nextID
	s.frags.nextID++
	s.mu.Unlock()
	return frag.Split(msg, wire.FragChunkSize(s.mtu()), func(off, total uint32, last bool, part []byte) error {
		hdr := wire.Fragment{MsgID: id, Offset: uint16(off), Total: uint16(total)}
		n := wire.FragHeaderLen + len(part)
		buf := bufpool.Get(wire.HeaderLen + n + wire.TagLen)
		b := wire.AppendFragmentHeader((*buf)[:wire.HeaderLen], &hdr)
		copy(b[len(b):len(b)+len(part)], part)
		return s.enqueue(outPkt{buf: buf, n: n, typ: typ, flags: wire.FragmentFlags(&hdr, len(part))}, time.Time{})
	})
}

// FragmentStats are the reassembler's counters and the notices sent.
type FragmentStats struct {
	frag.Stats
	TimeoutNotices uint64
}

// Fragments returns the session's reassembly counters.
func (s *Session) Fragments() FragmentStats {
	s.frags.mu.Lock()
	st := s.frags.re.Stats()
	s.frags.mu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	return FragmentStats{Stats: st, TimeoutNotices: s.frags.notices}
}
