package main

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/pool-go/pool/internal/node"
	"github.com/spf13/cobra"
)

func newStatusCmd() *cobra.Command {
	var f ctlFlags
	cmd := &cobra.Command{
		Use:   "status [--control PATH] [--json]",
		Short: "Show the running node's identity, listener, sessions and counters",
		Long: `status shows what the running node is: whether it passes its runtime
integrity self-tests, its public key and address, where it listens, how
long it has run, how many sessions it has and how many of its configured
peers are connected, and its handshake counters.

A node that failed a self-test, or one of whose peers answered an
INTEGRITY challenge with a wrong proof, is COMPROMISED: status says what
failed and when. It refuses every new session until it is restarted;
investigate before restarting (docs/OPERATIONS.md, SELF-TESTS AND THE
COMPROMISED STATE). In scripts: pool status --json | jq -e '.compromised | not'

` + ctlHelp + `

Examples:

  pool status
  pool status --json | jq .sessions
  pool status --control /tmp/node/control.sock`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var raw json.RawMessage
			if err := ctlCall(cmd.Context(), &f, "status", &raw); err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if f.json {
				return ctlPrintJSON(w, raw)
			}
			var st node.Status
			if err := json.Unmarshal(raw, &st); err != nil {
				return fmt.Errorf("the node's status: %v", err)
			}
			listen := st.Listen
			if listen == "" {
				listen = "off (the node does not listen)"
			}
			auth := fmt.Sprintf("%d keys in authorized_peers", st.AuthorizedKeys)
			switch {
			case st.Listen == "":
				auth = "-"
			case st.AllowAny:
				auth = "any key (allow_any)"
			}
			t := ctlTable(w)
			row := func(k, format string, args ...any) { fmt.Fprintf(t, "%s\t"+format+"\n", append([]any{k}, args...)...) }
			in := st.Integrity
			interval := ctlDuration(time.Duration(in.SelftestIntervalS * float64(time.Second)))
			if st.Compromised {
				row("integrity", "COMPROMISED since %s: %s", in.Since.Local().Format(time.RFC3339), in.Reason)
				row("", "new sessions are refused until the node is restarted; investigate first (docs/OPERATIONS.md)")
			} else {
				row("integrity", "ok (self-tests pass; every %s, %d rounds so far)", interval, in.SelftestRuns)
			}
			if in.ProofFailures > 0 {
				row("", "%d session(s) ended by a peer's wrong INTEGRITY proof (see the log)", in.ProofFailures)
			}
			row("identity", "%s", st.Identity)
			row("address", "%s", st.Address)
			row("listen", "%s", listen)
			row("authorized", "%s", auth)
			row("uptime", "%s (since %s, pid %d)", ctlDuration(time.Duration(st.UptimeS*float64(time.Second))),
				st.Started.Local().Format(time.RFC3339), st.PID)
			row("sessions", "%d", st.Sessions)
			row("peers", "%d of %d connected", st.PeersConnected, st.PeersConfigured)
			if st.Listen != "" {
				h := st.Handshakes
				refused := ""
				if st.Compromised || h.RefusedCompromised > 0 {
					refused = fmt.Sprintf(", %d refused while compromised", h.RefusedCompromised)
				}
				row("handshakes", "%d accepted, %d failed, %d challenges sent, %d refused before auth%s",
					h.Accepted, h.Failed, h.Challenges, h.RefusedPreauth, refused)
			}
			if j := st.Journal; !j.Enabled {
				row("journal", "off (journal = \"\": nothing is recorded)")
			} else {
				row("journal", "%s: %d entries, head %s", j.Path, j.Entries, j.Head)
				if j.Full {
					row("", "JOURNAL_FULL: %d entries lost for lack of space (journal_max_size or the disk); archive it (docs/OPERATIONS.md)", j.FullEvents)
				}
				if j.WriteErrors > 0 {
					row("", "%d entries lost to write errors (see the log)", j.WriteErrors)
				}
			}
			row("config", "%s", st.ConfigFile)
			if c := st.Config; !c.Enabled {
				row("", "versioning off: %s", c.Error)
			} else {
				row("", "version %d (sha256 %s), history in %s", c.Version, shortSHA(c.SHA256), c.Dir)
				if p := c.Pending; p != nil {
					row("", "TENTATIVE: pool config confirm before %s (in %s), or version %d comes back",
						p.Deadline.Local().Format(time.RFC3339), ctlDuration(time.Until(p.Deadline)), p.Previous)
				}
			}
			row("control", "%s", st.Control)
			row("log level", "%s", st.LogLevel)
			row("version", "%s", st.Version)
			return t.Flush()
		},
	}
	f.add(cmd)
	return cmd
}
