package frag

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"
	"unsafe"
)

// P04 limits (draft §15.4). Config may ask for less, never for more.
const (
	// MaxSlots is the number of messages one peer may have in reassembly at
	// once: "a maximum of 16 concurrent fragment reassembly slots per peer".
	MaxSlots = 16
	// MaxTimeout is how long a message may stay incomplete, counted from its
	// first fragment: "a maximum 5-second timeout per incomplete fragment
	// sequence".
	MaxTimeout = 5 * time.Second
	// BufferMTUs is the per-peer cap on buffered message bytes, in MTUs:
	// "total fragment buffer memory capped at 16 times the MTU per peer".
	BufferMTUs = 16
)

// MaxPieces bounds the disjoint byte ranges held for one message. A
// conforming sender never comes near it: a message of at most 16 × MTU
// bytes in fragments of MTU − 104 bytes (80-byte header, 16-byte tag,
// 8-byte fragment header) has at most 64 fragments for any MTU ≥ 138, so
// even fully reversed delivery fits.
const MaxPieces = 64

// PieceCost is the size of one entry of a message's list of pieces. The
// lists grow by doubling up to MaxPieces entries, and their capacity is
// charged (Stats.Overhead), so that one-byte fragments with holes between
// them cannot pin memory in bookkeeping while holding almost no data.
const PieceCost = int(unsafe.Sizeof(piece{}))

// Headroom is what the piece lists may add to the cap on message bytes:
// message bytes ≤ 16 × MTU, and message bytes + lists ≤ 16 × MTU + Headroom.
// It is one full list, so a single message of exactly MaxMessage bytes
// still fits alone in up to MaxPieces pieces.
const Headroom = MaxPieces * PieceCost

// MaxMTU is the largest MTU a Reassembler accepts; it keeps 16 × MTU far from
// the 32-bit lengths of the fragment header. A TCP-overlay packet is at most
// 80 + 65535 bytes.
const MaxMTU = 1 << 20

// retiredLen is how many recently finished message ids a Reassembler
// remembers, so that a late or repeated fragment of a finished message is
// refused instead of opening a ghost slot that would evict a live message
// and later time out as a spurious FRAG_TIMEOUT. It assumes a sender does
// not reuse a message id within 32 messages (a per-session counter never
// does).
const retiredLen = 2 * MaxSlots

// Errors returned by Add, always wrapped with the message id and offsets.
// Each refused fragment is also counted in Stats.
var (
	// ErrMalformed: the fragment contradicts itself — total 0, no data,
	// bytes beyond the total, LAST_FRAG set on a fragment that does not end
	// the message or missing on one that does. Nothing else changes.
	ErrMalformed = errors.New("frag: malformed fragment")
	// ErrTooLarge: the declared total exceeds MaxMessage (16 × MTU), so the
	// message could never be reassembled within the cap; it is refused at
	// once, before any memory is reserved for it. Nothing else changes.
	ErrTooLarge = errors.New("frag: message larger than the reassembly cap")
	// ErrTotalMismatch: the total differs from the one in the message's
	// earlier fragments. The message is dropped (we cannot know which total
	// is true).
	ErrTotalMismatch = errors.New("frag: total length differs from earlier fragments")
	// ErrDuplicate: every byte of the fragment is already held with the
	// same content, or the message was already delivered. Harmless; the
	// fragment is ignored.
	ErrDuplicate = errors.New("frag: duplicate fragment")
	// ErrConflict: the fragment overlaps bytes already held with different
	// content. The whole message is dropped: delivering either version
	// could splice two different messages (the rule of RFC 5722 for IPv6).
	ErrConflict = errors.New("frag: fragment overlaps held bytes with different content")
	// ErrTooFragmented: storing the fragment would need more than MaxPieces
	// disjoint ranges for one message. The fragment is ignored.
	ErrTooFragmented = errors.New("frag: message in too many disjoint pieces")
	// ErrTimeout: the fragment belongs to a message whose deadline has
	// passed; the message is dropped now and counts as expired, so the
	// caller reports FRAG_TIMEOUT (CLOSE code 0x04) for it.
	ErrTimeout = errors.New("frag: reassembly timed out")
	// ErrLate: the fragment belongs to a message already dropped (expired,
	// evicted or aborted). It is ignored rather than allowed to start the
	// message again.
	ErrLate = errors.New("frag: fragment of a message already dropped")
)

// Config sets the limits of one Reassembler. Zero fields take the P04
// defaults; values beyond P04 make NewReassembler panic.
type Config struct {
	Slots   int              // concurrent messages; default and maximum MaxSlots
	Timeout time.Duration    // per message from its first fragment; default and maximum MaxTimeout
	MTU     int              // the session's MTU; required, 1..MaxMTU
	Now     func() time.Time // clock; default time.Now (fake inside a synctest bubble)
	// OnDrop, if set, is told the id of every message discarded before
	// completion (timeout, eviction, abort), so the session can report
	// FRAG_TIMEOUT for each (PROTOCOL.md §7.11).
	OnDrop func(msgID uint32)
}

// Stats are the Reassembler's counters. They always add up:
//
//	Fragments = Accepted + Duplicates + Conflicts + Mismatched + Malformed +
//	            Refused + TooFragmented + Late
//	Started   = Completed + Expired + Evicted + EvictedMemory + Aborted + Active
type Stats struct {
	// One per Add call, and each call in exactly one outcome below.
	Fragments     uint64
	Accepted      uint64 // stored, possibly completing its message
	Duplicates    uint64 // ErrDuplicate
	Conflicts     uint64 // ErrConflict
	Mismatched    uint64 // ErrTotalMismatch
	Malformed     uint64 // ErrMalformed
	Refused       uint64 // ErrTooLarge: declared total above MaxMessage
	TooFragmented uint64 // ErrTooFragmented
	Late          uint64 // ErrTimeout or ErrLate

	// One per message whose first fragment was accepted.
	Started       uint64
	Completed     uint64 // delivered by Add
	Expired       uint64 // timed out: by Expire, or found late by Add (ErrTimeout)
	Evicted       uint64 // least recently used, to make room for one more message
	EvictedMemory uint64 // least recently used, to keep within the caps
	Aborted       uint64 // dropped by ErrConflict or ErrTotalMismatch
	Active        int    // in reassembly now

	// Memory held now. Buffered ≤ Limit and Buffered + Overhead ≤ Limit +
	// Headroom, always.
	Buffered     int // message bytes: the capacity of the message buffers
	Overhead     int // piece lists: PieceCost × their capacity
	PeakBuffered int // the largest Buffered ever reached
	Limit        int // the cap on Buffered: BufferMTUs × MTU (P04)
}

// A piece is one run of consecutive message bytes starting at off. The
// pieces of a slot are sorted and disjoint (but may touch). Spare capacity
// beyond len(b) comes only from doubling in grow, bounded by the next piece
// or the total, and is charged like message bytes.
type piece struct {
	off uint32
	b   []byte
}

func (p *piece) end() uint32 { return p.off + uint32(len(p.b)) }

// A slot is one message in reassembly.
type slot struct {
	id       uint32
	total    uint32
	received uint32 // bytes held: the sum of len over pieces
	charged  int    // capacity held: the sum of cap over pieces' bytes
	deadline time.Time
	used     uint64 // Reassembler.tick of the last accepted fragment (LRU)
	pieces   []piece
}

type retiredID struct {
	id        uint32
	delivered bool
}

// Reassembler rebuilds the fragmented messages of one peer within the P04
// limits. It is not safe for concurrent use: it belongs to the session's
// owner goroutine (DESIGN §3), like the rest of the session state.
//
// Memory, whatever arrives: message bytes held never exceed 16 × MTU
// (Stats.Buffered ≤ Stats.Limit), and with the piece lists never exceed
// 16 × MTU + Headroom; a slot's memory grows with the bytes that actually
// arrived, never with the declared total. Beyond that there is only fixed
// overhead: at most 16 slot records and a ring of 32 recent ids.
//
// At the cap the policy is eviction, not refusal: a fragment that needs more
// room than is free first has spare capacity given back (the slack of
// buffers that grew by doubling), then evicts other messages, least recently
// used first (Stats.EvictedMemory), until it fits; it always fits once they
// are gone, because a message's total is at most MaxMessage. Reasons: P04
// already makes LRU the rule under slot pressure and this applies it to
// bytes; the least recently touched message is the one most likely to have
// lost a fragment, while refusing the new fragment would stall every new
// message until the old one times out 5 s later; and every fragment is
// authenticated, so the only messages a peer can evict are its own.
type Reassembler struct {
	maxSlots int
	timeout  time.Duration
	maxMsg   int // MaxMessage(MTU): the cap on buffered
	now      func() time.Time
	onDrop   func(uint32)

	slots    []*slot // oldest first, hence also earliest deadline first
	buffered int     // the sum of charged over slots
	overhead int     // the sum of PieceCost × cap(pieces) over slots
	tick     uint64

	retired  [retiredLen]retiredID
	nRetired int

	st Stats
}

// NewReassembler returns an empty Reassembler. It panics if cfg asks for
// more than P04 allows or has no valid MTU: that is a programming error.
func NewReassembler(cfg Config) *Reassembler {
	if cfg.Slots == 0 {
		cfg.Slots = MaxSlots
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = MaxTimeout
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Slots < 0 || cfg.Slots > MaxSlots {
		panic(fmt.Sprintf("frag: %d slots; P04 allows 1 to %d", cfg.Slots, MaxSlots))
	}
	if cfg.Timeout < 0 || cfg.Timeout > MaxTimeout {
		panic(fmt.Sprintf("frag: timeout %v; P04 allows at most %v", cfg.Timeout, MaxTimeout))
	}
	r := &Reassembler{maxSlots: cfg.Slots, timeout: cfg.Timeout, now: cfg.Now, onDrop: cfg.OnDrop}
	r.setMTU(cfg.MTU)
	return r
}

func (r *Reassembler) setMTU(mtu int) {
	if mtu < 1 || mtu > MaxMTU {
		panic(fmt.Sprintf("frag: MTU %d outside 1..%d", mtu, MaxMTU))
	}
	r.maxMsg = MaxMessage(mtu)
}

// MaxMessage is the largest message a receiver whose MTU is mtu will
// reassemble: BufferMTUs × mtu (P04's cap, in message bytes). A sender must
// not fragment a longer one.
func MaxMessage(mtu int) int { return BufferMTUs * mtu }

// SetMTU changes the MTU after path MTU discovery (draft §7), and with it
// MaxMessage and the cap. If they shrink, messages whose total is now above
// MaxMessage are dropped, and others are evicted, least recently used first,
// until what is held fits; both count as EvictedMemory. It panics on an MTU
// outside 1..MaxMTU.
func (r *Reassembler) SetMTU(mtu int) {
	r.setMTU(mtu)
	for i := 0; i < len(r.slots); {
		if s := r.slots[i]; int64(s.total) > int64(r.maxMsg) {
			r.drop(s, &r.st.EvictedMemory)
			continue
		}
		i++
	}
	r.reserve(0, 0, nil)
}

// Add stores one fragment of message msgID: data holds message bytes
// [offset, offset+len(data)) of a message of total bytes, and last is the
// fragment's LAST_FRAG bit, which must be set exactly when the fragment ends
// the message. When the fragment supplies the message's last missing byte,
// Add returns the whole message, which the caller then owns; otherwise it
// returns nil. A refused fragment returns an error wrapping one of the Err
// values of this package and leaves the peer's other messages alone. Add
// copies what it keeps from data, so the caller may reuse data at once.
//
// An accepted fragment makes its message the most recently used (for LRU
// eviction); a refused one, a duplicate included, does not. The deadline is
// never moved: it is the first fragment's arrival plus Timeout.
func (r *Reassembler) Add(msgID, offset, total uint32, last bool, data []byte) ([]byte, error) {
	r.st.Fragments++
	if err := r.validate(msgID, offset, total, last, data); err != nil {
		return nil, err
	}
	now := r.now()
	s := r.find(msgID)
	if s == nil {
		return r.start(now, msgID, offset, total, data)
	}
	if !now.Before(s.deadline) {
		// The timer has not run Expire yet; the 5 s bound holds anyway.
		r.drop(s, &r.st.Expired)
		r.st.Late++
		return nil, fmt.Errorf("%w: message %d incomplete %v after its first fragment; dropped",
			ErrTimeout, msgID, r.timeout)
	}
	if total != s.total {
		r.drop(s, &r.st.Aborted)
		r.st.Mismatched++
		return nil, fmt.Errorf("%w: message %d: fragment at %d says %d bytes, earlier fragments %d; message dropped",
			ErrTotalMismatch, msgID, offset, total, s.total)
	}
	return r.insert(s, offset, data)
}

// validate refuses what is wrong whatever the state: the fragment's own
// fields, then a total that the cap could never hold.
func (r *Reassembler) validate(msgID, offset, total uint32, last bool, data []byte) error {
	n := uint64(len(data))
	end := uint64(offset) + n
	var why string
	switch {
	case total == 0:
		why = "total length 0"
	case n == 0:
		why = fmt.Sprintf("empty fragment at offset %d", offset)
	case end > uint64(total):
		why = fmt.Sprintf("bytes %d-%d lie beyond the total %d", offset, end, total)
	case last && end != uint64(total):
		why = fmt.Sprintf("LAST_FRAG on bytes %d-%d, but the total is %d", offset, end, total)
	case !last && end == uint64(total):
		why = fmt.Sprintf("bytes %d-%d end the message, but LAST_FRAG is not set", offset, end)
	}
	if why != "" {
		r.st.Malformed++
		return fmt.Errorf("%w: message %d: %s", ErrMalformed, msgID, why)
	}
	if int64(total) > int64(r.maxMsg) {
		r.st.Refused++
		return fmt.Errorf("%w: message %d declares %d bytes, at most %d (%d × MTU) are reassembled",
			ErrTooLarge, msgID, total, r.maxMsg, BufferMTUs)
	}
	return nil
}

// start handles the first fragment of a message that has no slot.
func (r *Reassembler) start(now time.Time, msgID, offset, total uint32, data []byte) ([]byte, error) {
	if delivered, ok := r.wasRetired(msgID); ok {
		if delivered {
			r.st.Duplicates++
			return nil, fmt.Errorf("%w: message %d was already delivered", ErrDuplicate, msgID)
		}
		r.st.Late++
		return nil, fmt.Errorf("%w: message %d was expired, evicted or aborted", ErrLate, msgID)
	}
	r.st.Accepted++
	r.st.Started++
	if offset == 0 && uint64(len(data)) == uint64(total) {
		// A message in a single fragment: complete without a slot.
		r.st.Completed++
		r.retire(msgID, true)
		return clone(data), nil
	}
	if len(r.slots) >= r.maxSlots {
		r.drop(r.lru(nil), &r.st.Evicted)
	}
	s := &slot{id: msgID, total: total, deadline: now.Add(r.timeout)}
	r.slots = append(r.slots, s)
	r.touch(s)
	r.addPiece(s, 0, offset, data)
	s.received = uint32(len(data))
	return nil, nil
}

// insert adds the bytes of [off, off+len(data)) that s does not hold yet,
// after checking that the bytes it does hold are the same.
func (r *Reassembler) insert(s *slot, off uint32, data []byte) ([]byte, error) {
	end := off + uint32(len(data)) // ≤ s.total: validated
	ps := s.pieces
	i := sort.Search(len(ps), func(k int) bool { return ps[k].end() > off })

	var covered uint32
	for k := i; k < len(ps) && ps[k].off < end; k++ {
		lo, hi := max(off, ps[k].off), min(end, ps[k].end())
		if string(data[lo-off:hi-off]) != string(ps[k].b[lo-ps[k].off:hi-ps[k].off]) {
			r.drop(s, &r.st.Aborted)
			r.st.Conflicts++
			return nil, fmt.Errorf("%w: message %d bytes %d-%d differ from those held; message dropped",
				ErrConflict, s.id, lo, hi)
		}
		covered += hi - lo
	}
	if covered == uint32(len(data)) {
		r.st.Duplicates++
		return nil, fmt.Errorf("%w: message %d bytes %d-%d are already held", ErrDuplicate, s.id, off, end)
	}
	// Only the first gap can need a new piece: every later gap starts where
	// a held piece ends, and is appended to it.
	needNew := (i == len(ps) || ps[i].off > off) && (i == 0 || ps[i-1].end() != off)
	if needNew && len(ps) >= MaxPieces {
		r.st.TooFragmented++
		return nil, fmt.Errorf("%w: message %d already has %d disjoint pieces; bytes %d-%d ignored",
			ErrTooFragmented, s.id, len(ps), off, end)
	}

	r.st.Accepted++
	r.touch(s)
	s.received += uint32(len(data)) - covered
	for pos, k := off, i; pos < end; {
		if k < len(s.pieces) && s.pieces[k].off <= pos {
			pos = s.pieces[k].end() // held, and checked above
			k++
			continue
		}
		gapEnd := end
		if k < len(s.pieces) && s.pieces[k].off < end {
			gapEnd = s.pieces[k].off
		}
		chunk := data[pos-off : gapEnd-off]
		if k == 0 || s.pieces[k-1].end() != pos {
			r.addPiece(s, k, pos, chunk)
			k++
			pos = gapEnd
			continue
		}
		p := k - 1
		if k < len(s.pieces) && s.pieces[k].off == gapEnd {
			// The gap closes a hole: join the next piece too, if that
			// fits without evicting anyone (else keep two pieces).
			need := len(s.pieces[p].b) + len(chunk) + len(s.pieces[k].b)
			if r.grow(s, p, need, room(s, p, k+1), false) {
				next := s.pieces[k].b
				s.pieces[p].b = append(append(s.pieces[p].b, chunk...), next...)
				s.pieces = slices.Delete(s.pieces, k, k+1)
				r.charge(s, -cap(next))
				pos = s.pieces[p].end()
				continue
			}
		}
		r.grow(s, p, len(s.pieces[p].b)+len(chunk), room(s, p, k), true)
		s.pieces[p].b = append(s.pieces[p].b, chunk...)
		pos = gapEnd
	}

	if s.received < s.total {
		return nil, nil
	}
	var msg []byte
	if len(s.pieces) == 1 {
		msg = s.pieces[0].b // [0, total) exactly
	} else {
		msg = make([]byte, s.total)
		for _, p := range s.pieces {
			copy(msg[p.off:], p.b)
		}
	}
	r.remove(s)
	r.retire(s.id, true)
	r.st.Completed++
	return msg, nil
}

// addPiece inserts a copy of b as piece k of s, at message offset off,
// growing the piece list by doubling (at most to MaxPieces entries) when it
// is full.
func (r *Reassembler) addPiece(s *slot, k int, off uint32, b []byte) {
	n := cap(s.pieces)
	if len(s.pieces) == n {
		n = min(max(2*n, 1), MaxPieces)
	}
	extra := PieceCost * (n - cap(s.pieces))
	r.reserve(len(b), extra, s)
	if n != cap(s.pieces) {
		ps := make([]piece, len(s.pieces), n)
		copy(ps, s.pieces)
		s.pieces = ps
		r.overhead += extra
	}
	s.pieces = slices.Insert(s.pieces, k, piece{off: off, b: clone(b)})
	r.charge(s, len(b))
}

// room is how far piece p may extend its capacity: to the start of piece
// next, or to the end of the message if there is no such piece.
func room(s *slot, p, next int) int {
	if next < len(s.pieces) {
		return int(s.pieces[next].off - s.pieces[p].off)
	}
	return int(s.total - s.pieces[p].off)
}

// grow makes piece k of s able to hold need bytes without reallocating. It
// doubles the capacity when that fits within room and the free budget, so
// in-order fragments are copied a bounded number of times, and otherwise
// takes exactly need. With evict false it reports false rather than make
// room.
func (r *Reassembler) grow(s *slot, k, need, room int, evict bool) bool {
	p := &s.pieces[k]
	if need <= cap(p.b) {
		return true
	}
	c := min(max(need, 2*cap(p.b)), room)
	if !r.fits(c-cap(p.b), 0) {
		c = need
	}
	for !r.fits(c-cap(p.b), 0) {
		if !evict || !r.makeRoom(s) {
			break // unreachable with evict: see reserve
		}
	}
	if !r.fits(c-cap(p.b), 0) {
		return false
	}
	b := make([]byte, len(p.b), c)
	copy(b, p.b)
	r.charge(s, c-cap(p.b))
	p.b = b
	return true
}

// fits reports whether bytes more message bytes and lists more bytes of
// piece lists stay within the caps.
func (r *Reassembler) fits(bytes, lists int) bool {
	return r.buffered+bytes <= r.maxMsg && r.buffered+bytes+r.overhead+lists <= r.maxMsg+Headroom
}

// reserve makes room (see makeRoom) until bytes more message bytes and lists
// more bytes of piece lists fit. Once keep is trimmed and alone, what keep
// needs always fits: it then holds exactly the bytes received, which with
// the new ones are disjoint parts of a total of at most MaxMessage, and its
// list never has more than MaxPieces entries, which is Headroom.
func (r *Reassembler) reserve(bytes, lists int, keep *slot) {
	for !r.fits(bytes, lists) && r.makeRoom(keep) {
	}
}

// makeRoom frees some budget: spare capacity first, keep's and then any
// other message's (a copy each), and only then the least recently used
// message other than keep (an eviction). It reports false when there is
// nothing left to free.
func (r *Reassembler) makeRoom(keep *slot) bool {
	if keep != nil && r.trim(keep) {
		return true
	}
	for _, s := range r.slots {
		if r.trim(s) {
			return true
		}
	}
	v := r.lru(keep)
	if v == nil {
		return false
	}
	r.drop(v, &r.st.EvictedMemory)
	return true
}

// trim gives back the spare capacity of s's pieces, and reports whether
// there was any.
func (r *Reassembler) trim(s *slot) bool {
	trimmed := false
	for i := range s.pieces {
		if p := &s.pieces[i]; cap(p.b) > len(p.b) {
			r.charge(s, len(p.b)-cap(p.b))
			p.b = clone(p.b)
			trimmed = true
		}
	}
	return trimmed
}

func (r *Reassembler) charge(s *slot, n int) {
	s.charged += n
	r.buffered += n
	r.st.PeakBuffered = max(r.st.PeakBuffered, r.buffered)
}

func (r *Reassembler) touch(s *slot) {
	r.tick++
	s.used = r.tick
}

func (r *Reassembler) find(id uint32) *slot {
	for _, s := range r.slots {
		if s.id == id {
			return s
		}
	}
	return nil
}

// lru returns the least recently used slot other than keep, or nil.
func (r *Reassembler) lru(keep *slot) *slot {
	var v *slot
	for _, s := range r.slots {
		if s != keep && (v == nil || s.used < v.used) {
			v = s
		}
	}
	return v
}

// drop discards an incomplete message and counts why in *counter.
func (r *Reassembler) drop(s *slot, counter *uint64) {
	r.remove(s)
	r.retire(s.id, false)
	*counter++
	if r.onDrop != nil {
		r.onDrop(s.id)
	}
}

func (r *Reassembler) remove(s *slot) {
	r.buffered -= s.charged
	r.overhead -= PieceCost * cap(s.pieces)
	r.slots = slices.DeleteFunc(r.slots, func(x *slot) bool { return x == s })
	s.pieces = nil
}

func (r *Reassembler) retire(id uint32, delivered bool) {
	r.retired[r.nRetired%retiredLen] = retiredID{id, delivered}
	r.nRetired++
}

// wasRetired reports whether id finished recently, and how (newest first).
func (r *Reassembler) wasRetired(id uint32) (delivered, ok bool) {
	for i := 1; i <= min(r.nRetired, retiredLen); i++ {
		if e := r.retired[(r.nRetired-i)%retiredLen]; e.id == id {
			return e.delivered, true
		}
	}
	return false, false
}

// Expire drops every message whose deadline (first fragment + Timeout) has
// come, and returns their ids, oldest first, for the caller to report as
// FRAG_TIMEOUT (CLOSE code 0x04, draft §11). A message is still accepted
// just before its deadline and expired exactly at it. Call Expire when the
// timer set from NextDeadline fires.
func (r *Reassembler) Expire() []uint32 {
	now := r.now()
	var ids []uint32
	for i := 0; i < len(r.slots); {
		if s := r.slots[i]; !now.Before(s.deadline) {
			ids = append(ids, s.id)
			r.drop(s, &r.st.Expired)
			continue
		}
		i++
	}
	return ids
}

// NextDeadline returns the earliest deadline of the messages in reassembly,
// and false if there are none.
func (r *Reassembler) NextDeadline() (time.Time, bool) {
	var d time.Time
	for _, s := range r.slots {
		if d.IsZero() || s.deadline.Before(d) {
			d = s.deadline
		}
	}
	return d, len(r.slots) > 0
}

// Stats returns the counters.
func (r *Reassembler) Stats() Stats {
	st := r.st
	st.Active = len(r.slots)
	st.Buffered = r.buffered
	st.Overhead = r.overhead
	st.Limit = r.maxMsg
	return st
}

// clone copies b into a new slice whose capacity is exactly len(b), so that
// what is charged against the cap is what is allocated (append would round
// the capacity up to a size class).
func clone(b []byte) []byte {
	c := make([]byte, len(b))
	copy(c, b)
	return c
}
