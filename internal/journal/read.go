package journal

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"iter"
	"os"
	"slices"
	"time"
)

var (
	// ErrCorrupt is wrapped by every *CorruptError.
	ErrCorrupt = errors.New("journal: corrupt")
	// ErrTornTail is wrapped by a *CorruptError whose Torn is set: the
	// file ends in a record that was not completely written (a crash
	// during an append that had not returned). Open repairs it; Verify and
	// readers report it.
	ErrTornTail = errors.New("journal: torn last record")
)

// CorruptError names the first bad entry of a journal file.
type CorruptError struct {
	Seq    uint64 // the sequence number that belongs at Offset (one past the last good entry)
	Found  uint64 // the sequence number found there, when the record could be decoded
	Offset int64  // byte offset of the bad record
	Torn   bool   // a torn last record rather than a modification
	Reason string
}

func (e *CorruptError) Error() string {
	what := "bad entry"
	if e.Torn {
		what = "torn last record"
	}
	return fmt.Sprintf("journal: %s: entry %d at byte offset %d: %s", what, e.Seq, e.Offset, e.Reason)
}

// Is makes errors.Is(err, ErrCorrupt) true, and errors.Is(err, ErrTornTail)
// true for a torn last record.
func (e *CorruptError) Is(target error) bool {
	return target == ErrCorrupt || (e.Torn && target == ErrTornTail)
}

// Reader reads the entries of a journal in order, checking framing, hashes,
// sequence numbers and the chain as it goes. Its first error is final.
type Reader struct {
	br   *bufio.Reader
	off  int64
	next uint64   // sequence number expected next
	prev [32]byte // hash of the last good entry
	err  error
	buf  []byte
}

// NewReader checks the file header and returns a Reader positioned at the
// first entry.
func NewReader(r io.Reader) (*Reader, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	var m [len(Magic)]byte
	n, err := io.ReadFull(br, m[:])
	if err != nil || string(m[:]) != Magic {
		if err == nil || n > 0 {
			return nil, fmt.Errorf("%w: not a version-1 journal (bad file header %q)", ErrCorrupt, m[:n])
		}
		return nil, fmt.Errorf("%w: no file header: %v", ErrCorrupt, err)
	}
	return &Reader{br: br, off: int64(len(Magic)), next: 1, prev: Genesis}, nil
}

// ResumeReader returns a Reader for the entries after a point another
// Reader reached: r is positioned at byte offset off of the file, just
// past entry seq whose hash is head (Reader.Offset and Reader.Head). It
// checks the chain from there on, so following a growing journal costs
// only its new bytes, and a link broken since (the file was rewritten)
// is still found at the first new entry.
func ResumeReader(r io.Reader, off int64, seq uint64, head [32]byte) *Reader {
	return &Reader{br: bufio.NewReaderSize(r, 64<<10), off: off, next: seq + 1, prev: head}
}

// Offset is the byte offset just past the last good entry.
func (r *Reader) Offset() int64 { return r.off }

// Head returns the sequence number and hash of the last good entry
// (0 and Genesis before the first).
func (r *Reader) Head() (seq uint64, head [32]byte) { return r.next - 1, r.prev }

func (r *Reader) fail(torn bool, found uint64, format string, args ...any) error {
	r.err = &CorruptError{Seq: r.next, Found: found, Offset: r.off, Torn: torn, Reason: fmt.Sprintf(format, args...)}
	return r.err
}

// Next returns the next entry, io.EOF at the clean end of the file, or a
// *CorruptError.
func (r *Reader) Next() (Entry, error) {
	if r.err != nil {
		return Entry{}, r.err
	}
	var hdr [8]byte
	n, err := io.ReadFull(r.br, hdr[:])
	switch {
	case err == io.EOF:
		r.err = io.EOF
		return Entry{}, io.EOF
	case err == io.ErrUnexpectedEOF:
		return Entry{}, r.fail(true, 0, "incomplete record header (%d of 8 bytes)", n)
	case err != nil:
		r.err = err
		return Entry{}, err
	}
	length := binary.BigEndian.Uint32(hdr[:])
	if crc32.Checksum(hdr[:4], castagnoli) != binary.BigEndian.Uint32(hdr[4:]) {
		if hdr == [8]byte{} && r.restIsZero() {
			return Entry{}, r.fail(true, 0, "zero-filled tail")
		}
		return Entry{}, r.fail(false, 0, "record header checksum mismatch")
	}
	if length < fixedBody || length > maxBody {
		return Entry{}, r.fail(false, 0, "record length %d out of range", length)
	}
	need := int(length) + 4
	r.buf = slices.Grow(r.buf[:0], need)[:need]
	n, err = io.ReadFull(r.br, r.buf)
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return Entry{}, r.fail(true, 0, "incomplete record (%d of %d bytes)", 8+n, 8+need)
	} else if err != nil {
		r.err = err
		return Entry{}, err
	}
	body := r.buf[:length]
	if crc32.Checksum(body, castagnoli) != binary.BigEndian.Uint32(r.buf[length:]) {
		if _, err := r.br.Peek(1); err == io.EOF {
			return Entry{}, r.fail(true, 0, "last record fails its checksum (incompletely written)")
		}
		return Entry{}, r.fail(false, 0, "record checksum mismatch")
	}
	e, err := parseBody(body)
	if err != nil {
		return Entry{}, r.fail(false, e.Seq, "%v", err)
	}
	if e.Seq != r.next {
		return Entry{}, r.fail(false, e.Seq, "found sequence number %d (entry dropped, inserted or reordered)", e.Seq)
	}
	if e.Prev != r.prev {
		return Entry{}, r.fail(false, e.Seq, "previous-entry hash does not match the chain")
	}
	e.Offset = r.off
	r.off += int64(8 + need)
	r.next++
	r.prev = e.Hash
	return e, nil
}

// restIsZero consumes the rest of the input and reports whether it is all
// zero bytes (a file extended by a crash before its data reached the disk).
func (r *Reader) restIsZero() bool {
	buf := make([]byte, 32<<10)
	for {
		n, err := r.br.Read(buf)
		for _, c := range buf[:n] {
			if c != 0 {
				return false
			}
		}
		if err != nil {
			return err == io.EOF
		}
	}
}

// Verify reads the whole journal at path and checks every record's
// framing and checksum, every entry's hash, the sequence numbers and the
// chain. It returns the number of good entries and, if anything is wrong,
// a *CorruptError naming the first bad entry (sequence number and byte
// offset). A torn last record is reported too (errors.Is ErrTornTail): Open
// repairs it, Verify does not modify the file.
func Verify(path string) (n int, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	r, err := NewReader(f)
	if err != nil {
		return 0, err
	}
	for {
		_, err := r.Next()
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		n++
	}
}

// Filter selects entries. Zero fields select everything.
type Filter struct {
	Since   time.Time // entries written at or after Since
	Until   time.Time // entries whose first occurrence is before Until
	Types   []Type    // any of these types
	Session string    // Detail["session"] equals Session
}

// Match reports whether e passes f.
func (f *Filter) Match(e *Entry) bool {
	if !f.Since.IsZero() && e.Time.Before(f.Since) {
		return false
	}
	if !f.Until.IsZero() && !e.First.Before(f.Until) {
		return false
	}
	if len(f.Types) > 0 && !slices.Contains(f.Types, e.Type) {
		return false
	}
	if f.Session != "" && e.Detail["session"] != f.Session {
		return false
	}
	return true
}

// Entries iterates over the entries of the journal at path that match f,
// verifying as it reads. It stops after yielding the first error (with a
// zero Entry). A torn last record ends the iteration without an error, since
// the node may be writing it at this moment.
func Entries(path string, f Filter) iter.Seq2[Entry, error] {
	return func(yield func(Entry, error) bool) {
		fh, err := os.Open(path)
		if err != nil {
			yield(Entry{}, err)
			return
		}
		defer fh.Close()
		r, err := NewReader(fh)
		if err != nil {
			yield(Entry{}, err)
			return
		}
		for {
			e, err := r.Next()
			if err == io.EOF || errors.Is(err, ErrTornTail) {
				return
			}
			if err != nil {
				yield(Entry{}, err)
				return
			}
			if f.Match(&e) && !yield(e, nil) {
				return
			}
		}
	}
}
