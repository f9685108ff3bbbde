package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/pool-go/pool/internal/node"
	"github.com/spf13/cobra"
)

// nodeStopTimeout bounds the shutdown: closing every session and waiting
// for the peers' answers.
const nodeStopTimeout = 15 * time.Second

func newNodeCmd() *cobra.Command {
	var config, logFormat string
	cmd := &cobra.Command{
		Use:   "node --config FILE",
		Short: "Run a node: listen, keep sessions to configured peers, answer pool status",
		Long: `node runs a POOL node until it is stopped: the daemon, meant to run under
systemd (packaging/pool.service) or another supervisor.

The node listens for peers on the TCP overlay (port 9253 by default) and
accepts those whose keys are authorized; it keeps a session to each
[[peer]] of its configuration, dialing again with exponential backoff (1 s
up to 60 s, with jitter) whenever a session ends; and it answers "pool
status", "pool sessions", "pool peers" and "pool reload" on its control
socket (a Unix socket with mode 0600, /run/pool/control.sock by default).

Before anything else the node runs its runtime integrity self-tests (draft
section 17.3): known-answer tests of every cryptographic primitive it uses,
and health tests of its random source. If one fails, it refuses to start,
naming the primitive, and exits with status 3 (the systemd unit does not
restart on it). It repeats them every selftest_interval (1m by default);
a node that fails one while running is compromised for good: it logs an
ERROR, writes a "POOL NODE COMPROMISED" line straight to stderr, refuses
every new session, stops redialing its peers, and reports it in "pool
status" and "pool peers" until it is restarted. It keeps running, so that
it can be inspected; it never recovers by itself.

The configuration is a TOML file; docs/OPERATIONS.md documents every key
and docs/node.example.toml is a commented example. A configuration with a
mistake is refused with its line and the reason, and the command exits
with status 1.

Signals:

  SIGINT, SIGTERM   close every session (the peers receive CLOSE NO_ERROR),
                    remove the control socket and exit with status 0
  SIGHUP            reload the configuration (as "pool reload" does): peers
                    added and removed, authorized peers, log level; a file
                    that is invalid or changes identity, listen, control or
                    idle_timeout is refused and the node keeps running

The log goes to stderr, as text or (--log-format json) one JSON object per
line; its level is the configuration's log_level.

Example:

  pool node --config /etc/pool/node.toml`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if config == "" {
				return usagef("node needs --config FILE (its configuration; see docs/node.example.toml)")
			}
			var level slog.LevelVar
			hopts := &slog.HandlerOptions{Level: &level}
			var h slog.Handler
			switch logFormat {
			case "text":
				h = slog.NewTextHandler(cmd.ErrOrStderr(), hopts)
			case "json":
				h = slog.NewJSONHandler(cmd.ErrOrStderr(), hopts)
			default:
				return usagef("--log-format must be text or json, got %q", logFormat)
			}
			cfg, err := node.LoadConfig(config)
			if err != nil {
				return err
			}
			return runNode(cmd.Context(), cfg, slog.New(h), &level, cmd.ErrOrStderr())
		},
	}
	cmd.Flags().StringVarP(&config, "config", "c", "", "the node's configuration file (TOML; required)")
	cmd.Flags().StringVar(&logFormat, "log-format", "text", "log format on stderr: text or json")
	return cmd
}

// runNode runs the node until ctx ends or a stop signal arrives, reloading
// on SIGHUP.
// alert receives the node's compromised alert (node.Options.Alert): stderr,
// written directly rather than through the log handler.
func runNode(ctx context.Context, cfg *node.Config, log *slog.Logger, level *slog.LevelVar, alert io.Writer) error {
	// Signals are watched before the node starts, so that none is lost
	// and none kills the process with the default action.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)

	n, err := node.Start(cfg, node.Options{Logger: log, Level: level, Alert: alert})
	if err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			log.Info("stopping", "reason", "interrupted")
			return stopNode(n)
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				// Reload logs what changed, or why it refused.
				_, _ = n.Reload()
				continue
			}
			log.Info("stopping", "signal", sig.String())
			return stopNode(n)
		}
	}
}

func stopNode(n *node.Node) error {
	ctx, cancel := context.WithTimeout(context.Background(), nodeStopTimeout)
	defer cancel()
	if err := n.Shutdown(ctx); err != nil {
		return fmt.Errorf("node stopped, but %s", strings.TrimPrefix(err.Error(), "node: "))
	}
	return nil
}
