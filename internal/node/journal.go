package node

// The node's change journal (draft §10, §11; internal/journal;
// docs/OPERATIONS.md, THE CHANGE JOURNAL): what the node records, how it
// reports JOURNAL_FULL, and where it publishes the chain head.

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/pool-go/pool"
	"github.com/pool-go/pool/internal/journal"
)

// DefaultJournalPublishInterval is how often a changed chain head is
// published to the [journal_publish] sinks.
const DefaultJournalPublishInterval = 10 * time.Second

// maxDetailValue bounds a detail value the node writes (the journal takes
// 1024 bytes; longer texts are cut).
const maxDetailValue = 1000

// JournalPublish is the [journal_publish] table: where the chain head is
// published outside the node. Empty fields are off.
type JournalPublish struct {
	File     string // a file written atomically with "SEQ HEAD"
	Syslog   string // "udp://host:port", "tcp://host:port", "unix:///path", "unixgram:///path" or "/path" (datagram)
	HTTP     string // an http:// or https:// URL the head is POSTed to
	Interval time.Duration
}

func (p JournalPublish) enabled() bool { return p.File != "" || p.Syslog != "" || p.HTTP != "" }

// nodeJournal is the node's open journal and its error accounting.
type nodeJournal struct {
	j           *journal.Journal
	log         *slog.Logger
	full        atomic.Bool   // an Append failed with journal.ErrFull
	fullEvents  atomic.Uint64 // entries lost to JOURNAL_FULL
	writeErrors atomic.Uint64 // entries lost to other errors
	errLogged   atomic.Bool

	pubCancel context.CancelFunc
	pubDone   chan struct{}
	closeOnce sync.Once
}

// JournalPath returns the journal file of the node configuration at path
// without loading its identity or allow-list (for "pool journal", which
// reads the file directly): "" when the configuration disables the journal.
func JournalPath(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", &ConfigError{File: path, Reason: "cannot read: " + unwrapPathError(err)}
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		abs = path
	}
	var raw struct {
		Identity string  `toml:"identity"`
		Journal  *string `toml:"journal"`
	}
	if _, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&raw); err != nil {
		return "", &ConfigError{File: path, Reason: strings.TrimPrefix(err.Error(), "toml: ")}
	}
	return journalPathOf(raw.Journal, raw.Identity, filepath.Dir(abs)), nil
}

// journalPathOf applies the journal key's default: next to the identity
// file, named after it with the extension ".journal".
func journalPathOf(set *string, identity, dir string) string {
	resolve := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(dir, p)
	}
	if set != nil {
		return resolve(strings.TrimSpace(*set))
	}
	if strings.TrimSpace(identity) == "" {
		return ""
	}
	id := resolve(strings.TrimSpace(identity))
	return strings.TrimSuffix(id, filepath.Ext(id)) + ".journal"
}

// openJournal opens the configured journal, creating its directory (mode
// 0700) if missing. A corrupt journal is refused with the first bad entry
// named.
func openJournal(cfg *Config, log *slog.Logger) (*nodeJournal, error) {
	if cfg.Journal == "" {
		return nil, nil
	}
	if err := os.MkdirAll(filepath.Dir(cfg.Journal), 0o700); err != nil {
		return nil, fmt.Errorf("refusing to start: journal %s: cannot create its directory: %v (set journal = \"PATH\" in %s, or journal = \"\" to run without one)",
			cfg.Journal, unwrapPathErr(err), cfg.File)
	}
	j, err := journal.Open(cfg.Journal, journal.Options{MaxBytes: cfg.JournalMaxSize, GroupCommit: true, Logger: log})
	switch {
	case err == nil:
		return &nodeJournal{j: j, log: log}, nil
	case errors.Is(err, journal.ErrCorrupt):
		var ce *journal.CorruptError
		what := err.Error()
		if errors.As(err, &ce) {
			what = fmt.Sprintf("entry %d at byte offset %d is bad: %s", ce.Seq, ce.Offset, ce.Reason)
		}
		return nil, fmt.Errorf("refusing to start: the change journal %s is corrupt: %s; run \"pool journal verify %s\" to inspect it, and see docs/OPERATIONS.md, THE CHANGE JOURNAL, on what to do (keep the file as evidence, move it aside)",
			cfg.Journal, what, cfg.Journal)
	case errors.Is(err, journal.ErrLocked):
		return nil, fmt.Errorf("refusing to start: the change journal %s is in use by another process (another node with the same journal?)", cfg.Journal)
	}
	return nil, fmt.Errorf("refusing to start: the change journal %s: %v", cfg.Journal, unwrapPathErr(err))
}

// startPublisher publishes the chain head to the configured sinks until
// stopPublisher.
func (nj *nodeJournal) startPublisher(p JournalPublish, node string) {
	var sinks []journal.Sink
	if p.File != "" {
		sinks = append(sinks, &journal.FileSink{Path: p.File})
	}
	if p.Syslog != "" {
		network, addr := syslogTarget(p.Syslog)
		sinks = append(sinks, &journal.SyslogSink{Network: network, Addr: addr})
	}
	if p.HTTP != "" {
		sinks = append(sinks, &journal.HTTPSink{URL: p.HTTP, Node: node})
	}
	if len(sinks) == 0 {
		return
	}
	every := p.Interval
	if every <= 0 {
		every = DefaultJournalPublishInterval
	}
	ctx, cancel := context.WithCancel(context.Background())
	nj.pubCancel, nj.pubDone = cancel, make(chan struct{})
	go func() {
		defer close(nj.pubDone)
		nj.j.RunPublisher(ctx, every, sinks...)
		for _, s := range sinks {
			if c, ok := s.(io.Closer); ok {
				_ = c.Close()
			}
		}
	}()
}

// close publishes the last head, stops the publisher and closes the file.
func (nj *nodeJournal) close() {
	if nj == nil {
		return
	}
	nj.closeOnce.Do(func() {
		if nj.pubCancel != nil {
			nj.pubCancel()
			<-nj.pubDone
		}
		if err := nj.j.Close(); err != nil && !errors.Is(err, journal.ErrClosed) {
			nj.log.Error("journal: closing", "path", nj.j.Path(), "err", err)
		}
	})
}

// syslogTarget parses the syslog key (validated by parseConfig).
func syslogTarget(s string) (network, addr string) {
	if strings.HasPrefix(s, "/") {
		return "unixgram", s
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", s
	}
	switch u.Scheme {
	case "unix", "unixgram":
		return u.Scheme, u.Path
	}
	return u.Scheme, u.Host
}

// checkSyslog validates the syslog key.
func checkSyslog(s string) error {
	if strings.HasPrefix(s, "/") {
		return nil
	}
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("bad URL %q", s)
	}
	switch u.Scheme {
	case "udp", "tcp":
		if u.Host == "" || u.Port() == "" {
			return fmt.Errorf("%q needs host:port, e.g. \"udp://127.0.0.1:514\"", s)
		}
		return nil
	case "unix", "unixgram":
		if u.Path == "" {
			return fmt.Errorf("%q needs a socket path, e.g. \"unixgram:///dev/log\"", s)
		}
		return nil
	}
	return fmt.Errorf("%q: want udp://HOST:PORT, tcp://HOST:PORT, unix:///PATH, unixgram:///PATH or an absolute path (a datagram socket such as /dev/log)", s)
}

// checkHTTP validates the http key.
func checkHTTP(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q: want an http:// or https:// URL", s)
	}
	return nil
}

// record appends an entry to the journal, if there is one. A full
// journal (JOURNAL_FULL) is logged once and counted; other failures are
// logged once and counted. Nothing here stops the node.
func (n *Node) record(t journal.Type, detail map[string]string) {
	nj := n.journal
	if nj == nil {
		return
	}
	_, err := nj.j.Append(journal.Entry{Type: t, Detail: clip(detail)})
	nj.failed(t, err)
}

// note records an event that can come in floods through the journal's
// aggregation (one entry per kind per window, with a count).
func (n *Node) note(t journal.Type, detail map[string]string) { n.noteCount(t, detail, 1) }

// noteCount is note for count events at once.
func (n *Node) noteCount(t journal.Type, detail map[string]string, count uint64) {
	nj := n.journal
	if nj == nil {
		return
	}
	nj.failed(t, nj.j.Note(journal.Entry{Type: t, Detail: clip(detail), Count: count}))
}

func (nj *nodeJournal) failed(t journal.Type, err error) {
	switch {
	case err == nil, errors.Is(err, journal.ErrClosed):
	case errors.Is(err, journal.ErrFull):
		nj.fullEvents.Add(1)
		if nj.full.CompareAndSwap(false, true) {
			nj.log.Error("JOURNAL_FULL: the change journal is full; later entries are lost (counted in pool status) until it is archived and the node restarted (docs/OPERATIONS.md, THE CHANGE JOURNAL)",
				"path", nj.j.Path(), "type", t.String(), "err", err)
		}
	default:
		nj.writeErrors.Add(1)
		if nj.errLogged.CompareAndSwap(false, true) {
			nj.log.Error("journal: cannot write an entry; later failures are only counted (pool status)",
				"path", nj.j.Path(), "type", t.String(), "err", err)
		}
	}
}

// clip cuts detail values to what the journal takes.
func clip(d map[string]string) map[string]string {
	for k, v := range d {
		if v == "" {
			delete(d, k)
			continue
		}
		if len(v) > maxDetailValue {
			d[k] = strings.ToValidUTF8(v[:maxDetailValue], "") + "…"
		}
	}
	return d
}

// journalHead is pool.Config.JournalHead: what heartbeats carry.
func (n *Node) journalHead() uint64 {
	if n.journal == nil {
		return 0
	}
	return n.journal.j.HeadTruncated()
}

// journalStatus is the "journal" object of "status".
func (n *Node) journalStatus() JournalStatus {
	nj := n.journal
	if nj == nil {
		return JournalStatus{PeerDivergences: n.witness.divergences.Load()}
	}
	seq, head := nj.j.Head()
	return JournalStatus{PeerDivergences: n.witness.divergences.Load(), Enabled: true, Path: nj.j.Path(), Entries: seq, Head: hex.EncodeToString(head[:]),
		SizeBytes: nj.j.Size(), Full: nj.full.Load(), FullEvents: nj.fullEvents.Load(),
		WriteErrors: nj.writeErrors.Load(), Pending: nj.j.Pending()}
}

// sessionDetail describes a session for its connect and disconnect
// entries.
func (n *Node) sessionDetail(e *sessionEntry) map[string]string {
	id := e.s.ID()
	dir := "inbound"
	if !e.inbound {
		dir = "outbound"
	}
	d := map[string]string{"session": hex.EncodeToString(id[:]), "peer": e.s.Peer().String(),
		"direction": dir, "remote": remoteOf(e.s)}
	if name := n.peerName(e.s.Peer()); name != "" {
		d["peer_name"] = name
	}
	return d
}

// peerName is the configured name of a peer's key, or "".
func (n *Node) peerName(k pool.PublicKey) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if d, ok := n.peers[k]; ok {
		return d.peer.Name
	}
	return ""
}

// handshakeReason classifies a handshake failure for its aggregated entry:
// the class only, so that a flood of them is one entry per class and
// source prefix.
func handshakeReason(err error) string {
	switch {
	case errors.Is(err, pool.ErrUnauthorized):
		return "unauthorized"
	case errors.Is(err, pool.ErrClockSkew):
		return "clock_skew"
	case errors.Is(err, pool.ErrWrongServer):
		return "wrong_server"
	case errors.Is(err, pool.ErrSelfConnection):
		return "self_connection"
	case errors.Is(err, pool.ErrCompromised):
		return "compromised"
	case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection_closed"
	}
	return "other"
}

// sourcePrefix is the /24 (IPv4) or /56 (IPv6) of a handshake's source,
// the granularity of the listener's pre-authentication caps.
func sourcePrefix(ap netip.AddrPort) string {
	a := ap.Addr().Unmap()
	bits := 56
	if a.Is4() {
		bits = 24
	}
	p, err := a.Prefix(bits)
	if err != nil {
		return a.String()
	}
	return p.String()
}
