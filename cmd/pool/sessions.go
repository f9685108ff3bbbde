package main

import (
	"encoding/json"
	"fmt"

	"github.com/pool-go/pool/internal/node"
	"github.com/spf13/cobra"
)

func newSessionsCmd() *cobra.Command {
	var f ctlFlags
	cmd := &cobra.Command{
		Use:   "sessions [--control PATH] [--json]",
		Short: "List the running node's sessions",
		Long: `sessions lists the running node's live sessions, oldest first: the Session
ID (the first 8 hex digits; --json has all 32), the peer (its name when it
is a configured peer, otherwise its key), the direction ("inbound": the
peer dialed this node; "outbound": this node dialed a configured peer), the
peer's transport address, the session's age, and its packet and data
counters.

` + ctlHelp + `

Examples:

  pool sessions
  pool sessions --json | jq -r '.[] | .peer_key'`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var raw json.RawMessage
			if err := ctlCall(cmd.Context(), &f, "sessions", &raw); err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if f.json {
				return ctlPrintJSON(w, raw)
			}
			var ss []node.SessionInfo
			if err := json.Unmarshal(raw, &ss); err != nil {
				return fmt.Errorf("the node's sessions: %v", err)
			}
			if len(ss) == 0 {
				fmt.Fprintln(w, "no sessions")
				return nil
			}
			t := ctlTable(w)
			fmt.Fprintln(t, "ID\tPEER\tDIRECTION\tREMOTE\tAGE\tPACKETS OUT/IN\tDATA OUT/IN")
			for _, s := range ss {
				peer := s.PeerKey
				if s.PeerName != "" {
					peer = s.PeerName + " (" + ctlShortKey(s.PeerKey) + ")"
				}
				id := s.ID
				if len(id) > 8 {
					id = id[:8]
				}
				fmt.Fprintf(t, "%s\t%s\t%s\t%s\t%s\t%d/%d\t%s/%s\n", id, peer, s.Direction, s.Remote,
					ctlAge(s.Established), s.PacketsSent, s.PacketsReceived,
					ctlBytes(s.BytesSent), ctlBytes(s.BytesReceived))
			}
			return t.Flush()
		},
	}
	f.add(cmd)
	return cmd
}
