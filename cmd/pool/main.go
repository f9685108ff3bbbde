// Command pool is the command-line tool of this POOL implementation.
//
// Run "pool --help" for the list of commands and "pool demo" to watch two
// nodes talk over loopback.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/pool-go/pool/internal/node"
	"github.com/spf13/cobra"
)

// Exit statuses.
const (
	exitOK    = 0
	exitError = 1 // the command failed
	exitUsage = 2 // the command line was wrong
	// exitIntegrity: "pool node" refused to start because a runtime
	// integrity self-test failed (draft §17.3). packaging/pool.service
	// does not restart on it: a node must not come up by retrying until
	// a faulty primitive happens to pass.
	exitIntegrity = 3
)

func main() {
	// SIGTERM as well as ^C: systemd, kill and container runtimes stop a
	// standalone bridge or transfer with SIGTERM, and it deserves the same
	// clean CLOSE to its peers.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes the command line args and returns the exit status. Errors
// are written to stderr as "pool: <message>".
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	root := newRootCmd()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return exitOK
	}
	fmt.Fprintf(stderr, "pool: %s\n", strings.TrimPrefix(err.Error(), "pool: "))
	if errors.Is(err, node.ErrSelftestFailed) {
		return exitIntegrity
	}
	var ue usageError
	if errors.As(err, &ue) {
		if cmd == nil {
			cmd = root
		}
		fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
		return exitUsage
	}
	return exitError
}

// usageError marks an error in the command line itself (exit status 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// usageArgs makes an argument validator's errors usage errors.
func usageArgs(v cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := v(cmd, args); err != nil {
			return usageError{err}
		}
		return nil
	}
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "pool",
		Short: "POOL secure transport: keys, transfers, the node daemon and a demo",
		Long: `pool is the command-line tool of a Go implementation of POOL (Protected
Orchestrated Overlay Link): mutually authenticated, always encrypted sessions
with 256 channels each, carried over TCP (port 9253).

Every node has an identity key pair; its 256-bit address is derived from the
public key. A server accepts only the client keys it allows, and a client
dials with the server's key pinned.

Start with the demo, which runs two nodes in one process over loopback:

  pool demo

Move a file between two machines, netcat-style:

  pool keygen --out server.key          # prints its public key and address
  pool keygen --out client.key
  pool listen --identity server.key --authorized peers > file   # peers: client's key
  pool connect --identity client.key --peer SERVER_KEY host:9253 < file

Run a node that keeps sessions to its peers, and ask it how it is doing:

  pool node --config /etc/pool/node.toml
  pool status; pool sessions; pool telemetry; pool peers   # --json for scripts

docs/OPERATIONS.md covers installation, keys, ports and troubleshooting.`,
		SilenceErrors: true,
		SilenceUsage:  true,
		// Any argument that is not a subcommand is a usage error; without
		// one, print the help.
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return nil
			}
			msg := fmt.Sprintf("unknown command %q", args[0])
			if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
				msg += fmt.Sprintf(" (did you mean %q?)", s[0])
			}
			return usageError{errors.New(msg)}
		},
		RunE: func(cmd *cobra.Command, args []string) error { return cmd.Help() },
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.SuggestionsMinimumDistance = 2
	root.CompletionOptions.DisableDefaultCmd = true
	root.AddCommand(newDemoCmd(), newKeygenCmd(), newAddrCmd(), newBenchCmd())
	root.AddCommand(newListenCmd(), newConnectCmd())
	root.AddCommand(newNodeCmd(), newStatusCmd(), newSessionsCmd(), newTelemetryCmd(), newPeersCmd(), newReloadCmd(), newConfigCmd(), newJournalCmd(), newPeerConfigCmd())
	root.AddCommand(newBridgeCmd())
	return root
}
