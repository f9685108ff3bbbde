package main

import (
	"encoding/json"
	"fmt"

	"github.com/pool-go/pool/internal/node"
	"github.com/spf13/cobra"
)

func newReloadCmd() *cobra.Command {
	var f ctlFlags
	cmd := &cobra.Command{
		Use:   "reload [--control PATH] [--json]",
		Short: "Make the running node re-read its configuration",
		Long: `reload makes the running node re-read its configuration file, as SIGHUP
does, and prints what changed.

What changes without dropping any session: peers added (dialed at once)
and removed (their sessions closed), a peer's address or name, the
authorized peers (the file is read again; inbound sessions of keys no
longer authorized are closed), allow_any, log_level, reconnect_min and
reconnect_max.

A file with a mistake, or one that changes identity, listen, control,
idle_timeout, selftest_interval or heartbeat_interval (which need a
restart), is refused as a whole: the node keeps
running with its old configuration, and this command prints why and exits
with status 1.

` + ctlHelp + `

Example:

  sudoedit /etc/pool/node.toml && pool reload`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var raw json.RawMessage
			if err := ctlCall(cmd.Context(), &f, "reload", &raw); err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if f.json {
				return ctlPrintJSON(w, raw)
			}
			var res node.ReloadResult
			if err := json.Unmarshal(raw, &res); err != nil {
				return fmt.Errorf("the node's reload result: %v", err)
			}
			if len(res.Changes) == 0 {
				fmt.Fprintln(w, "reloaded: nothing changed")
				return nil
			}
			fmt.Fprintln(w, "reloaded:")
			for _, c := range res.Changes {
				fmt.Fprintf(w, "  %s\n", c)
			}
			return nil
		},
	}
	f.add(cmd)
	return cmd
}
