package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/pool-go/pool/internal/node"
	"github.com/spf13/cobra"
)

func newConfigCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Change the running node's configuration: apply, confirm, rollback, history, diff",
		Long: `config changes the running node's configuration through its control socket,
keeping every version (with its SHA-256) in a history next to the file
(node.toml.history/ beside node.toml).

apply writes a new file atomically and reloads the node from it; with
--confirm-within it is tentative, like Junos' "commit confirmed": unless
"pool config confirm" arrives in time, the node restores the previous
version by itself (hash verified) and reloads it. A change the node cannot
reload (a key that needs a restart, such as control, or a listen address
that cannot be bound) is rolled back at once.

See docs/OPERATIONS.md, CHANGING THE CONFIGURATION.

Examples:

  pool config apply new.toml --confirm-within 2m && pool status   # still reachable?
  pool config confirm
  pool config history
  pool config diff 3 4
  pool config rollback        # to the version before the live one
  pool config rollback 3`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newConfigApplyCmd(), newConfigConfirmCmd(), newConfigRollbackCmd(), newConfigHistoryCmd(), newConfigDiffCmd())
	return cmd
}

// maxApplyFile is the largest file config apply sends: the control
// protocol's request line is at most node.MaxRequest bytes, and the file
// travels in base64.
const maxApplyFile = (node.MaxRequest - 1024) / 4 * 3

func newConfigApplyCmd() *cobra.Command {
	var f ctlFlags
	var within time.Duration
	cmd := &cobra.Command{
		Use:   "apply FILE [--confirm-within 2m] [--control PATH] [--json]",
		Short: "Make FILE the node's configuration (commit-confirmed with --confirm-within)",
		Long: `apply sends FILE to the running node, which checks it (an invalid file is
refused with its line and reason, and nothing changes), records it as a
new version, writes it over its configuration file atomically and reloads.

With --confirm-within DURATION (at most 24h) the change is tentative: unless
"pool config confirm" reaches the node within DURATION, the node restores
the previous version, byte for byte and verified against its SHA-256, and
reloads it, even if it was restarted in between. Use it for changes that
could cut you off (authorized_peers, peers).

If the node cannot run the new file (identity, listen, control,
idle_timeout, selftest_interval, heartbeat_interval, metrics_listen and the
journal keys need a restart), the change is rolled back at once and the
command exits with status 1 saying why. Exit status 2: bad command line.

` + ctlHelp + `

Examples:

  pool config apply /tmp/node.toml
  pool config apply /tmp/node.toml --confirm-within 2m
  pool config confirm`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if cmd.Flags().Changed("confirm-within") && (within <= 0 || within > node.MaxConfirmWithin) {
				return usagef("--confirm-within %v: want a duration above 0 and at most %v, like 2m", within, node.MaxConfirmWithin)
			}
			data, err := readApplyFile(args[0])
			if err != nil {
				return err
			}
			var raw json.RawMessage
			req := node.Request{Method: "config.apply", Config: data, ConfirmWithin: within.Seconds(), Author: os.Getenv("USER")}
			if err := ctlRequest(cmd.Context(), &f, req, &raw); err != nil {
				return err
			}
			return printConfigResult(cmd.OutOrStdout(), &f, raw, "applied")
		},
	}
	cmd.Flags().DurationVar(&within, "confirm-within", 0, "roll back by itself unless `pool config confirm` arrives within this time (e.g. 2m)")
	f.add(cmd)
	return cmd
}

func readApplyFile(path string) ([]byte, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config apply: %v", err)
	}
	defer fh.Close()
	data, err := io.ReadAll(io.LimitReader(fh, maxApplyFile+1))
	if err != nil {
		return nil, fmt.Errorf("config apply: reading %s: %v", path, err)
	}
	if len(data) > maxApplyFile {
		return nil, fmt.Errorf("config apply: %s is larger than %d bytes, the most the control protocol carries", path, maxApplyFile)
	}
	return data, nil
}

func printConfigResult(w io.Writer, f *ctlFlags, raw json.RawMessage, verb string) error {
	if f.json {
		return ctlPrintJSON(w, raw)
	}
	var res node.ConfigResult
	if err := json.Unmarshal(raw, &res); err != nil {
		return fmt.Errorf("the node's config result: %v", err)
	}
	v := res.Version
	fmt.Fprintf(w, "%s: version %d (sha256 %s)", verb, v.Version, shortSHA(v.SHA256))
	if res.Previous != 0 {
		fmt.Fprintf(w, ", was version %d", res.Previous)
	}
	fmt.Fprintln(w)
	for _, c := range res.Changes {
		fmt.Fprintf(w, "  %s\n", c)
	}
	if p := res.Pending; p != nil {
		fmt.Fprintf(w, "tentative: run \"pool config confirm\" before %s (in %s), or version %d comes back by itself\n",
			p.Deadline.Local().Format(time.RFC3339), ctlDuration(time.Until(p.Deadline)), p.Previous)
	}
	return nil
}

func shortSHA(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	return s
}

func newConfigConfirmCmd() *cobra.Command {
	var f ctlFlags
	cmd := &cobra.Command{
		Use:   "confirm [--control PATH] [--json]",
		Short: "Keep the tentative configuration applied with --confirm-within",
		Long: `confirm makes the change "pool config apply --confirm-within" applied
permanent. It exits with status 1 if no change awaits confirmation, or if
the deadline has passed (the previous version is back then).

` + ctlHelp + `

Example:

  pool config confirm`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var raw json.RawMessage
			if err := ctlCall(cmd.Context(), &f, "config.confirm", &raw); err != nil {
				return err
			}
			return printConfigResult(cmd.OutOrStdout(), &f, raw, "confirmed")
		},
	}
	f.add(cmd)
	return cmd
}

func newConfigRollbackCmd() *cobra.Command {
	var f ctlFlags
	cmd := &cobra.Command{
		Use:   "rollback [VERSION] [--control PATH] [--json]",
		Short: "Restore an earlier version of the configuration",
		Long: `rollback restores VERSION (by default the version before the live one),
byte for byte and verified against its recorded SHA-256, as a new version,
and reloads the node from it. It ends a change awaiting confirmation. A
version the node cannot run without a restart is refused and the live one
kept.

` + ctlHelp + `

Examples:

  pool config rollback
  pool config history && pool config rollback 3`,
		Args: usageArgs(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			to := 0
			if len(args) == 1 {
				n, err := strconv.Atoi(args[0])
				if err != nil || n <= 0 {
					return usagef("VERSION %q: want a version number from pool config history", args[0])
				}
				to = n
			}
			var raw json.RawMessage
			req := node.Request{Method: "config.rollback", Version: to, Author: os.Getenv("USER")}
			if err := ctlRequest(cmd.Context(), &f, req, &raw); err != nil {
				return err
			}
			return printConfigResult(cmd.OutOrStdout(), &f, raw, "rolled back")
		},
	}
	f.add(cmd)
	return cmd
}

func newConfigHistoryCmd() *cobra.Command {
	var f ctlFlags
	cmd := &cobra.Command{
		Use:   "history [--control PATH] [--json]",
		Short: "List the configuration's versions",
		Long: `history lists the kept versions of the node's configuration, oldest
first: number, time, kind (apply, apply-confirmed, rollback,
auto-rollback, recovered), SHA-256 and comment. The live one is marked *.

` + ctlHelp + `

Example:

  pool config history`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var raw json.RawMessage
			if err := ctlCall(cmd.Context(), &f, "config.history", &raw); err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if f.json {
				return ctlPrintJSON(w, raw)
			}
			var h node.ConfigHistory
			if err := json.Unmarshal(raw, &h); err != nil {
				return fmt.Errorf("the node's config history: %v", err)
			}
			fmt.Fprintf(w, "%s (history in %s)\n", h.File, h.Dir)
			tw := ctlTable(w)
			fmt.Fprintln(tw, "\tVERSION\tTIME\tKIND\tSHA256\tAUTHOR\tCOMMENT")
			for _, v := range h.Versions {
				mark := ""
				if v.Version == h.Current {
					mark = "*"
				}
				fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\n", mark, v.Version, v.Time.Local().Format(time.DateTime),
					v.Kind, shortSHA(v.SHA256), ctlDash(v.Author), ctlDash(v.Comment))
			}
			tw.Flush()
			if p := h.Pending; p != nil {
				fmt.Fprintf(w, "version %d is tentative: confirm before %s or version %d comes back\n",
					p.Version, p.Deadline.Local().Format(time.RFC3339), p.Previous)
			}
			return nil
		},
	}
	f.add(cmd)
	return cmd
}

func newConfigDiffCmd() *cobra.Command {
	var f ctlFlags
	cmd := &cobra.Command{
		Use:   "diff A B [--control PATH] [--json]",
		Short: "Show what changed from version A to version B",
		Long: `diff prints a unified diff from version A to version B of the node's
configuration (both verified against their SHA-256); nothing when they are
the same.

` + ctlHelp + `

Example:

  pool config diff 3 4`,
		Args: usageArgs(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			var ab [2]int
			for i, s := range args {
				n, err := strconv.Atoi(s)
				if err != nil || n <= 0 {
					return usagef("version %q: want a version number from pool config history", s)
				}
				ab[i] = n
			}
			var raw json.RawMessage
			if err := ctlRequest(cmd.Context(), &f, node.Request{Method: "config.diff", A: ab[0], B: ab[1]}, &raw); err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if f.json {
				return ctlPrintJSON(w, raw)
			}
			var d node.ConfigDiff
			if err := json.Unmarshal(raw, &d); err != nil {
				return fmt.Errorf("the node's config diff: %v", err)
			}
			_, err := io.WriteString(w, d.Diff)
			return err
		},
	}
	f.add(cmd)
	return cmd
}
