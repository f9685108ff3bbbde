package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/pool-go/pool/internal/journal"
	"github.com/pool-go/pool/internal/node"
	"github.com/spf13/cobra"
)

// defaultNodeConfig is where the packaged node's configuration lives: the
// journal commands read its journal key when given neither FILE nor
// --config.
const defaultNodeConfig = "/etc/pool/node.toml"

// journalFollowEvery is how often "pool journal tail --follow" looks for
// new entries.
const journalFollowEvery = 500 * time.Millisecond

const journalHelp = `The journal commands read the journal file directly, read-only: they work
whether or not the node runs, and need no control socket, only read access
to the file (run them as the node's user: sudo -u pool ...). FILE defaults
to the journal of the node configuration given by --config (default
` + defaultNodeConfig + `): its journal key, or the file next to its identity
(identity.key -> identity.journal).`

func newJournalCmd() *cobra.Command {
	var config string
	cmd := &cobra.Command{
		Use:   "journal show|tail|verify|export [FILE]",
		Short: "Read, follow, verify and export the node's change journal",
		Long: `journal reads the node's change journal (draft section 10): an append-only,
hash-chained file where the node records its start and stop, session
connects and disconnects, handshake failures (aggregated), reloads,
integrity failures and errors. docs/OPERATIONS.md, THE CHANGE JOURNAL, says
what each entry means; docs/JOURNAL.md specifies the file.

` + journalHelp + `

Examples:

  pool journal verify
  pool journal show --since 1h --type disconnect
  pool journal tail --follow --config /etc/pool/node.toml`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.PersistentFlags().StringVarP(&config, "config", "c", "", "the node's configuration, whose journal to read (default "+defaultNodeConfig+")")
	resolve := func(args []string) (string, error) { return journalFile(config, args) }
	cmd.AddCommand(newJournalShowCmd(resolve), newJournalTailCmd(resolve), newJournalVerifyCmd(resolve), newJournalExportCmd(resolve))
	return cmd
}

// journalFile is FILE, or the journal of the configuration.
func journalFile(config string, args []string) (string, error) {
	if len(args) > 0 {
		return args[0], nil
	}
	explicit := config != ""
	if !explicit {
		config = defaultNodeConfig
	}
	path, err := node.JournalPath(config)
	if err != nil {
		if !explicit {
			return "", fmt.Errorf("no journal FILE given, and the default configuration: %v (give FILE or --config)", err)
		}
		return "", err
	}
	if path == "" {
		return "", fmt.Errorf("%s disables the journal (journal = \"\"); give FILE to read another one", config)
	}
	return path, nil
}

// journalJSON is an entry in JSON (show --json, export).
type journalJSON struct {
	Seq          uint64            `json:"seq"`
	Time         time.Time         `json:"time"`
	First        time.Time         `json:"first"`
	Count        uint64            `json:"count"`
	Type         string            `json:"type"`
	ConfigBefore uint64            `json:"config_before"`
	ConfigAfter  uint64            `json:"config_after"`
	Detail       map[string]string `json:"detail"`
	Prev         string            `json:"prev_hash"`
	Hash         string            `json:"hash"`
	Offset       int64             `json:"offset"`
}

func toJSON(e journal.Entry) journalJSON {
	d := e.Detail
	if d == nil {
		d = map[string]string{}
	}
	return journalJSON{Seq: e.Seq, Time: e.Time, First: e.First, Count: e.Count, Type: e.Type.String(),
		ConfigBefore: e.ConfigBefore, ConfigAfter: e.ConfigAfter, Detail: d,
		Prev: hex.EncodeToString(e.Prev[:]), Hash: hex.EncodeToString(e.Hash[:]), Offset: e.Offset}
}

// journalRow prints an entry as a line of the table.
func journalRow(w io.Writer, e journal.Entry) {
	sess := e.Session()
	if len(sess) > 8 {
		sess = sess[:8]
	}
	keys := make([]string, 0, len(e.Detail))
	for k := range e.Detail {
		if k != "session" {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	var d strings.Builder
	for i, k := range keys {
		if i > 0 {
			d.WriteByte(' ')
		}
		v := e.Detail[k]
		if strings.ContainsAny(v, " \"=") || v == "" {
			v = fmt.Sprintf("%q", v)
		}
		d.WriteString(k + "=" + v)
	}
	count := ""
	if e.Count > 1 {
		count = fmt.Sprintf(" x%d since %s", e.Count, e.First.Local().Format(time.TimeOnly))
	}
	fmt.Fprintf(w, "%d\t%s\t%s%s\t%s\t%s\n", e.Seq, e.Time.Local().Format("2006-01-02 15:04:05.000"),
		e.Type, count, ctlDash(sess), ctlDash(d.String()))
}

const journalHeader = "SEQ\tTIME\tTYPE\tSESSION\tDETAIL"

// parseWhen reads --since/--until: RFC 3339, a date, or a duration back
// from now ("1h").
func parseWhen(flag, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		return time.Now().Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.Local); err == nil {
			return t, nil
		}
	}
	return time.Time{}, usagef("--%s %q: want a time (2026-01-02T15:04:05Z, 2026-01-02) or a duration back from now (90m)", flag, s)
}

func newJournalShowCmd(resolve func([]string) (string, error)) *cobra.Command {
	var since, until, session string
	var types []string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "show [--since T] [--until T] [--type T]... [--session ID] [--json] [FILE]",
		Short: "Print the journal's entries, filtered by time, type or session",
		Long: `show prints the journal's entries, oldest first, verifying the chain as it
reads: SEQ, the time the entry was written, its type (with "xN since T" for
an aggregated entry standing for N events from T on), the session (the
first 8 hex digits) and the detail. A corrupt entry stops it with exit
status 1 (use "pool journal verify").

Filters: --since and --until take a time (RFC 3339, or a date) or a
duration back from now (--since 1h); --type, repeatable, one of
` + typeNames() + `; --session a Session ID or its prefix.
--json prints a JSON array of the entries.

` + journalHelp + `

Examples:

  pool journal show --since 1h
  pool journal show --type connect --type disconnect --session 3f2a9c01
  pool journal show --json /var/lib/pool/journal | jq '.[] | .type'`,
		Args: usageArgs(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			var f journal.Filter
			var err error
			if f.Since, err = parseWhen("since", since); err != nil {
				return err
			}
			if f.Until, err = parseWhen("until", until); err != nil {
				return err
			}
			for _, s := range types {
				t, err := journal.ParseType(s)
				if err != nil {
					return usagef("--type %q: want one of %s", s, typeNames())
				}
				f.Types = append(f.Types, t)
			}
			session = strings.ToLower(strings.TrimSpace(session))
			if _, err := hex.DecodeString(session + strings.Repeat("0", len(session)%2)); err != nil {
				return usagef("--session %q: want a Session ID or a prefix of one (hex digits)", session)
			}
			path, err := resolve(args)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			var list []journalJSON
			t := ctlTable(w)
			n := 0
			for e, err := range journal.Entries(path, f) {
				if err != nil {
					if !asJSON {
						t.Flush()
					}
					return journalReadError(path, err)
				}
				if session != "" && !strings.HasPrefix(e.Session(), session) {
					continue
				}
				if asJSON {
					list = append(list, toJSON(e))
					continue
				}
				if n == 0 {
					fmt.Fprintln(t, journalHeader)
				}
				journalRow(t, e)
				n++
			}
			if asJSON {
				if list == nil {
					list = []journalJSON{}
				}
				enc := json.NewEncoder(w)
				enc.SetIndent("", "  ")
				return enc.Encode(list)
			}
			if n == 0 {
				fmt.Fprintln(w, "no entries")
			}
			return t.Flush()
		},
	}
	cmd.Flags().StringVar(&since, "since", "", "entries written at or after this time (RFC 3339, date, or duration ago)")
	cmd.Flags().StringVar(&until, "until", "", "entries that first occurred before this time")
	cmd.Flags().StringArrayVar(&types, "type", nil, "entries of this type (repeatable)")
	cmd.Flags().StringVar(&session, "session", "", "entries of this session (ID or prefix)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a JSON array")
	return cmd
}

func typeNames() string {
	var names []string
	for _, t := range journal.Types() {
		names = append(names, t.String())
	}
	return strings.Join(names, ", ")
}

// journalReadError says what went wrong reading path.
func journalReadError(path string, err error) error {
	var ce *journal.CorruptError
	if errors.As(err, &ce) {
		return fmt.Errorf("journal %s: entry %d at byte offset %d is bad: %s (entries before it verify; see \"pool journal verify\" and docs/OPERATIONS.md, THE CHANGE JOURNAL)",
			path, ce.Seq, ce.Offset, ce.Reason)
	}
	return fmt.Errorf("journal %s: %v", path, strings.TrimPrefix(err.Error(), "journal: "))
}

func newJournalTailCmd(resolve func([]string) (string, error)) *cobra.Command {
	var lines int
	var follow bool
	cmd := &cobra.Command{
		Use:   "tail [-n N] [--follow] [FILE]",
		Short: "Print the journal's last entries, and follow new ones",
		Long: `tail prints the journal's last N entries (10 by default), as "show" does;
with --follow it then prints new entries as the node writes them (it looks
every 500 ms) until interrupted.

` + journalHelp + `

Examples:

  pool journal tail
  pool journal tail -n 50 --follow`,
		Args: usageArgs(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if lines < 0 {
				return usagef("-n must be at least 0, got %d", lines)
			}
			path, err := resolve(args)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			f, err := os.Open(path)
			if err != nil {
				return fmt.Errorf("journal %s: %v", path, err)
			}
			defer f.Close()
			r, err := journal.NewReader(f)
			if err != nil {
				return journalReadError(path, err)
			}
			var last []journal.Entry
			for {
				e, err := r.Next()
				if err == io.EOF || errors.Is(err, journal.ErrTornTail) {
					break // a torn tail is a write in progress
				}
				if err != nil {
					return journalReadError(path, err)
				}
				if lines == 0 {
					continue
				}
				if len(last) == lines {
					last = last[1:]
				}
				last = append(last, e)
			}
			t := ctlTable(w)
			fmt.Fprintln(t, journalHeader)
			for _, e := range last {
				journalRow(t, e)
			}
			if err := t.Flush(); err != nil || !follow {
				return err
			}
			seq, head := r.Head()
			return journalFollow(cmd.Context(), w, path, r.Offset(), seq, head)
		},
	}
	cmd.Flags().IntVarP(&lines, "lines", "n", 10, "how many of the last entries to print")
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "then print new entries as they are written, until interrupted")
	return cmd
}

// journalFollow prints the entries after seq (which ends at byte off with
// hash head) as they appear, until ctx ends. It reads only what was appended since it last looked, checking
// the chain on from the last entry it verified; a file that shrank, or
// whose new entries do not link to what it read, is reported as
// modified. A torn record at the end is a write in progress: it is read
// again at the next look.
func journalFollow(ctx context.Context, w io.Writer, path string, off int64, seq uint64, head [32]byte) error {
	tick := time.NewTicker(journalFollowEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		fi, err := os.Stat(path)
		if err != nil {
			return fmt.Errorf("journal %s: %v", path, err)
		}
		if fi.Size() < off {
			return fmt.Errorf("journal %s: the file shrank below entry %d (byte %d): it was truncated or replaced", path, seq, off)
		}
		if fi.Size() == off {
			continue
		}
		f, err := os.Open(path)
		if err != nil {
			return fmt.Errorf("journal %s: %v", path, err)
		}
		if _, err := f.Seek(off, io.SeekStart); err != nil {
			f.Close()
			return fmt.Errorf("journal %s: %v", path, err)
		}
		r := journal.ResumeReader(f, off, seq, head)
		t := ctlTable(w)
		for {
			e, err := r.Next()
			if err == io.EOF || errors.Is(err, journal.ErrTornTail) {
				break
			}
			if err != nil {
				t.Flush()
				f.Close()
				return journalReadError(path, err)
			}
			journalRow(t, e)
		}
		f.Close()
		off = r.Offset()
		seq, head = r.Head()
		if err := t.Flush(); err != nil {
			return err
		}
	}
}

func newJournalVerifyCmd(resolve func([]string) (string, error)) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "verify [FILE]",
		Short: "Check the journal's every record, hash and chain link",
		Long: `verify reads the whole journal and checks every record's framing and
checksums, every entry's SHA-256 hash, the sequence numbers and the hash
chain. It prints the number of entries verified and the chain head (its
sequence number and hash: compare them with the last head the node
published, see docs/OPERATIONS.md, "Head publication"), and exits with
status 0; or it names the first bad entry (its sequence number and byte
offset) and exits with status 1. It never modifies the file.

A torn last record (a crash during a write, or a write in progress) is
reported too; the node repairs it when it next starts, with a recovery
entry.

` + journalHelp + `

Example:

  pool journal verify /var/lib/pool/journal`,
		Args: usageArgs(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			path, err := resolve(args)
			if err != nil {
				return err
			}
			f, err := os.Open(path)
			if err != nil {
				return fmt.Errorf("journal %s: %v", path, err)
			}
			defer f.Close()
			r, err := journal.NewReader(f)
			if err != nil {
				return fmt.Errorf("journal %s: %v", path, strings.TrimPrefix(err.Error(), "journal: "))
			}
			for {
				_, err := r.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					seq, _ := r.Head()
					var ce *journal.CorruptError
					if errors.As(err, &ce) && ce.Torn {
						return fmt.Errorf("journal %s: %d entries verified, then a torn last record: entry %d at byte offset %d: %s (a crash during a write, or a write in progress; the node repairs it when it starts)",
							path, seq, ce.Seq, ce.Offset, ce.Reason)
					}
					if errors.As(err, &ce) {
						return fmt.Errorf("journal %s: %d entries verified, then entry %d at byte offset %d is bad: %s; the journal was modified after it was written (docs/OPERATIONS.md, THE CHANGE JOURNAL)",
							path, seq, ce.Seq, ce.Offset, ce.Reason)
					}
					return fmt.Errorf("journal %s: %d entries verified, then: %v", path, seq, err)
				}
			}
			seq, head := r.Head()
			fmt.Fprintf(cmd.OutOrStdout(), "journal %s: %d entries verified\nhead %d %x\n", path, seq, seq, head)
			return nil
		},
	}
	return cmd
}

func newJournalExportCmd(resolve func([]string) (string, error)) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "export [--json] [FILE]",
		Short: "Write every journal entry as JSON lines",
		Long: `export writes every entry of the journal, oldest first, as one JSON object per
line (JSON Lines): seq, time, first, count, type, config_before,
config_after, detail, prev_hash, hash and offset. It verifies as it reads
and stops with exit status 1 at a bad entry. --json is the default and
only format.

` + journalHelp + `

Example:

  pool journal export > journal.jsonl`,
		Args: usageArgs(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			path, err := resolve(args)
			if err != nil {
				return err
			}
			enc := json.NewEncoder(cmd.OutOrStdout())
			for e, err := range journal.Entries(path, journal.Filter{}) {
				if err != nil {
					return journalReadError(path, err)
				}
				if err := enc.Encode(toJSON(e)); err != nil {
					return err
				}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", true, "JSON lines (the only format)")
	return cmd
}
