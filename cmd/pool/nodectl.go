package main

// Helpers shared by the commands that ask a running node over its control
// socket: status, sessions, telemetry, peers and reload.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pool-go/pool/internal/node"
	"github.com/spf13/cobra"
)

// ctlTimeout bounds one request to the node.
const ctlTimeout = 10 * time.Second

// ctlEnv names the control socket when --control is not given.
const ctlEnv = "POOL_CONTROL"

// ctlFlags are the flags of the control commands.
type ctlFlags struct {
	control string
	json    bool
}

func (f *ctlFlags) add(cmd *cobra.Command) {
	def := node.DefaultControl
	if env := os.Getenv(ctlEnv); env != "" {
		def = env
	}
	cmd.Flags().StringVar(&f.control, "control", def, "the node's control socket (default from $"+ctlEnv+" when set)")
	cmd.Flags().BoolVar(&f.json, "json", false, "print the node's answer as JSON, for scripts")
}

// ctlHelp is the paragraph every control command's help ends with.
const ctlHelp = `The command asks the node running with "pool node" over its control socket
(--control, or $POOL_CONTROL, default /run/pool/control.sock). The socket
has mode 0600: run the command as the node's user (sudo -u pool ...). It
exits with status 1 if no node answers.`

// ctlCall asks the node and decodes the result into out (a
// *json.RawMessage keeps it as the node sent it).
func ctlCall(ctx context.Context, f *ctlFlags, method string, out any) error {
	return ctlRequest(ctx, f, node.Request{Method: method}, out)
}

// ctlRequest is ctlCall with a whole request.
func ctlRequest(ctx context.Context, f *ctlFlags, req node.Request, out any) error {
	if f.control == "" {
		return usagef("--control needs the path of the node's control socket")
	}
	ctx, cancel := context.WithTimeout(ctx, ctlTimeout)
	defer cancel()
	return node.CallRequest(ctx, f.control, req, out)
}

// ctlPrintJSON prints a result as indented JSON.
func ctlPrintJSON(w io.Writer, raw json.RawMessage) error {
	var b bytes.Buffer
	if err := json.Indent(&b, raw, "", "  "); err != nil {
		return err
	}
	b.WriteByte('\n')
	_, err := w.Write(b.Bytes())
	return err
}

// ctlTable is an aligned table on w; Flush it.
func ctlTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
}

// ctlAge says how long ago t was, in the largest fitting units.
func ctlAge(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return ctlDuration(time.Since(t))
}

// ctlDuration formats d as "3d4h", "2h5m", "4m10s" or "12s".
func ctlDuration(d time.Duration) string {
	d = max(d, 0).Round(time.Second)
	day := 24 * time.Hour
	switch {
	case d >= day:
		return fmt.Sprintf("%dd%dh", d/day, (d%day)/time.Hour)
	case d >= time.Hour:
		return fmt.Sprintf("%dh%dm", d/time.Hour, (d%time.Hour)/time.Minute)
	case d >= time.Minute:
		return fmt.Sprintf("%dm%ds", d/time.Minute, (d%time.Minute)/time.Second)
	}
	return fmt.Sprintf("%ds", d/time.Second)
}

// ctlBytes formats a byte count in binary units.
func ctlBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, i := float64(n)/unit, 0
	for v >= unit && i < 4 {
		v /= unit
		i++
	}
	return fmt.Sprintf("%.1f %ciB", v, "KMGTP"[i])
}

// ctlDash stands in for an empty cell.
func ctlDash(s string) string {
	if strings.TrimSpace(s) == "" {
		return "-"
	}
	return s
}

// ctlShortKey abbreviates a public key for a table cell.
func ctlShortKey(k string) string {
	if len(k) > 12 {
		return k[:12] + "…"
	}
	return k
}

// ctlBits formats a rate in bits/s in decimal units.
func ctlBits(bps uint64) string {
	if bps < 1000 {
		return fmt.Sprintf("%d bit/s", bps)
	}
	v, i := float64(bps)/1000, 0
	for v >= 1000 && i < 4 {
		v /= 1000
		i++
	}
	return fmt.Sprintf("%.1f %cbit/s", v, "kMGTP"[i])
}
