package main

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/pool-go/pool/internal/node"
	"github.com/spf13/cobra"
)

func newPeersCmd() *cobra.Command {
	var f ctlFlags
	cmd := &cobra.Command{
		Use:   "peers [--control PATH] [--json]",
		Short: "List the running node's configured peers and their state",
		Long: `peers lists the [[peer]] entries of the running node's configuration, in
order, with the state of each:

  connected    a session is up (for how long)
  connecting   dialing, or in the handshake
  backoff      the last attempt failed; the next one is in the time shown
  compromised  not dialing: this node failed a runtime integrity self-test,
               or a peer's INTEGRITY proof was wrong, and it refuses new
               sessions until it is restarted (see "pool status")

and the last error: why the last attempt failed, or why the last session
ended (e.g. "closed by peer (NO_ERROR)" when the peer shut down cleanly).
Peers that dial this node but are not configured here are not listed:
"pool sessions" shows every session.

` + ctlHelp + `

Examples:

  pool peers
  pool peers --json | jq -r '.[] | select(.state != "connected") | .name'`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var raw json.RawMessage
			if err := ctlCall(cmd.Context(), &f, "peers", &raw); err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if f.json {
				return ctlPrintJSON(w, raw)
			}
			var ps []node.PeerInfo
			if err := json.Unmarshal(raw, &ps); err != nil {
				return fmt.Errorf("the node's peers: %v", err)
			}
			if len(ps) == 0 {
				fmt.Fprintln(w, "no peers configured")
				return nil
			}
			t := ctlTable(w)
			fmt.Fprintln(t, "NAME\tADDRESS\tSTATE\tFOR\tLAST ERROR")
			for _, p := range ps {
				name := p.Name
				if name == "" {
					name = ctlShortKey(p.Key)
				}
				var detail string
				switch p.State {
				case node.StateConnected:
					detail = ctlAge(p.ConnectedSince)
				case node.StateBackoff:
					if p.RetryInS < 10 {
						detail = fmt.Sprintf("retry in %.1fs", p.RetryInS)
					} else {
						detail = "retry in " + ctlDuration(time.Duration(p.RetryInS*float64(time.Second)))
					}
				default:
					detail = "-"
				}
				fmt.Fprintf(t, "%s\t%s\t%s\t%s\t%s\n", name, p.Address, p.State, detail, ctlDash(p.LastError))
			}
			return t.Flush()
		},
	}
	f.add(cmd)
	return cmd
}
