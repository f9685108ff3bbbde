package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"

	"github.com/pool-go/pool"
	"github.com/pool-go/pool/internal/bridge"
	"github.com/pool-go/pool/internal/node"
	"github.com/spf13/cobra"
)

// bridgeStatusMethod is the control method that returns a bridge's
// per-route counters ([]bridge.RouteStats); the standalone bridge commands
// answer it on their --control socket.
const bridgeStatusMethod = "bridge.status"

func newBridgeCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bridge",
		Short: "Carry ordinary TCP connections over POOL (tcp2pool, pool2tcp, status)",
		Long: `bridge carries unmodified TCP programs over POOL, with nothing to change at
either end (draft §13.1, phase 1):

  client ──TCP──▶ pool bridge tcp2pool ══POOL══▶ pool bridge pool2tcp ──TCP──▶ server

tcp2pool listens for TCP connections and carries each over its own channel
of a long-lived session to the peer (no handshake per connection); pool2tcp
accepts sessions from authorized clients and connects each channel to its
target. Half-close, backpressure and resets pass through; a target that
refuses or dies resets the client's connection at once.

Stopping the bridge is the rollback: point the clients back at the server
(or stop tcp2pool and let them connect directly); nothing else changed.

docs/OPERATIONS.md ("Bridging TCP") explains routes and policy.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newTCP2PoolCmd(), newPool2TCPCmd(), newBridgeStatusCmd())
	return cmd
}

// bridgeLogger logs to stderr; every bridged connection is one line.
func bridgeLogger(w io.Writer, quiet bool) *slog.Logger {
	level := slog.LevelInfo
	if quiet {
		level = slog.LevelWarn
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

// logConn writes one line per bridged connection: the per-connection
// record (a node writes it to its journal).
func logConn(log *slog.Logger) func(bridge.ConnEvent) {
	return func(e bridge.ConnEvent) {
		attrs := []any{"route", e.Route, "client", e.Client, "target", e.Target.String(),
			"up", e.Up, "down", e.Down, "duration", e.Duration.Round(1e6)}
		switch {
		case e.Status != bridge.StatusOK:
			log.Warn("bridge: connection refused", append(attrs, "status", e.Status.String(), "err", errText(e.Err))...)
		case e.Err != nil:
			log.Warn("bridge: connection reset", append(attrs, "err", e.Err.Error())...)
		default:
			log.Info("bridge: connection closed", attrs...)
		}
	}
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// serveBridgeControl answers bridge.status on path (if given).
func serveBridgeControl(path, side string, stats func() []bridge.RouteStats, log *slog.Logger) (func(), error) {
	if path == "" {
		return func() {}, nil
	}
	return node.ServeControl(path, func(r node.Request) (any, error) {
		if r.Method != bridgeStatusMethod {
			return nil, fmt.Errorf("this is a standalone bridge: it answers only %q", bridgeStatusMethod)
		}
		out := []node.BridgeRoute{}
		for _, st := range stats() {
			out = append(out, node.BridgeRoute{Side: side, RouteStats: st})
		}
		return out, nil
	}, log)
}

func newTCP2PoolCmd() *cobra.Command {
	var (
		identity, listen, peer, dest, control string
		maxSessions                           int
		quiet                                 bool
	)
	cmd := &cobra.Command{
		Use:   "tcp2pool --identity FILE --listen HOST:PORT --peer KEY|ADDRESS HOST[:9253]",
		Short: "Accept TCP connections and carry each over POOL to a pool2tcp peer",
		Long: `tcp2pool listens for TCP connections on --listen and carries each one over
its own channel of a shared POOL session to the peer at HOST (port 9253 by
default), whose "pool bridge pool2tcp" connects it to its target. A second
session is opened only when 255 connections already share the first; a
lost session is redialled with backoff (and at once when a connection
needs it).

--peer pins the peer's public key (or, weaker, its pool:... address: the
key the first session proves is then pinned). --destination asks the peer
for a particular HOST:PORT, which the peer's --allow must permit; without
it the peer's --target is used.

A connection the peer cannot complete (target refused, unreachable, not
allowed) is reset at once, the way a refused connect looks to the client.
Each connection is logged on stderr when it ends. With --control PATH,
"pool bridge status --control PATH" shows the counters.

Stopping tcp2pool is the rollback (§13.1): clients connect to the server
directly again.

Example:

  pool bridge tcp2pool --identity client.key --listen 127.0.0.1:8080 \
      --peer 9aB3...Q= gateway.example:9253`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if identity == "" || listen == "" || peer == "" {
				return usagef("tcp2pool needs --identity FILE, --listen HOST:PORT and --peer KEY")
			}
			var target bridge.Target
			if dest != "" {
				var err error
				if target, err = bridge.ParseTarget(dest); err != nil {
					return usagef("--destination: %v", err)
				}
			}
			cc := bridge.ClientConfig{Address: args[0], MaxSessions: maxSessions}
			if strings.HasPrefix(strings.ToLower(strings.TrimSpace(peer)), "pool:") {
				a, err := pool.ParseAddress(peer)
				if err != nil {
					return usagef("--peer: %v", err)
				}
				cc.PeerAddress = &a
			} else {
				k, err := pool.ParsePublicKey(peer)
				if err != nil {
					return usagef("--peer: %v (give the peer's public key, or its pool:... address)", err)
				}
				cc.Peer = k
			}
			id, err := pool.LoadIdentity(identity)
			if err != nil {
				return err
			}
			log := bridgeLogger(cmd.ErrOrStderr(), quiet)
			cc.Pool = &pool.Config{Identity: id}
			cc.Logger = log
			cc.OnConn = logConn(log)
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return fmt.Errorf("cannot listen on %s: %w", listen, err)
			}
			c, err := bridge.NewClient(cc)
			if err != nil {
				ln.Close()
				return err
			}
			defer c.Close()
			stop, err := serveBridgeControl(control, "tcp2pool", func() []bridge.RouteStats { return []bridge.RouteStats{c.Stats()} }, log)
			if err != nil {
				ln.Close()
				return err
			}
			defer stop()
			log.Info("tcp2pool: listening", "listen", ln.Addr().String(), "peer", args[0], "destination", target.String())
			return serveUntilDone(cmd.Context(), func() error { return c.Serve(ln, target) }, func() { ln.Close() })
		},
	}
	f := cmd.Flags()
	f.StringVar(&identity, "identity", "", "this node's identity file (required)")
	f.StringVar(&listen, "listen", "", "TCP address to accept connections on, HOST:PORT (required)")
	f.StringVar(&peer, "peer", "", "the pool2tcp peer's public key, or its pool:... address (trust on first use)")
	f.StringVar(&dest, "destination", "", "HOST:PORT to ask the peer for (default: the peer's --target)")
	f.StringVar(&control, "control", "", "serve \"pool bridge status\" on this Unix socket (mode 0600)")
	f.IntVar(&maxSessions, "max-sessions", bridge.DefaultMaxSessions, "most sessions to the peer (255 connections each)")
	f.BoolVar(&quiet, "quiet", false, "log only warnings and errors (refused and reset connections)")
	return cmd
}

func newPool2TCPCmd() *cobra.Command {
	var (
		identity, listen, target, authorized, control string
		allow                                         []string
		allowAny, quiet                               bool
		maxConns                                      int
	)
	cmd := &cobra.Command{
		Use:   "pool2tcp --identity FILE --listen HOST:9253 --target HOST:PORT (--authorized FILE | --allow-any)",
		Short: "Accept POOL sessions and connect each channel to a TCP target",
		Long: `pool2tcp accepts POOL sessions from the clients in --authorized (or any
with --allow-any) and connects every channel they open to --target, the
far end of "pool bridge tcp2pool". A channel may instead name its own
destination (tcp2pool --destination, or the socket shim): it is served
only if an --allow pattern matches it:

  --allow 10.0.0.0/8:80,443     --allow 192.0.2.7:5432
  --allow '[2001:db8::/32]:*'   --allow db.internal:5432

A destination that refuses, cannot be reached or is not allowed is
reported to the client side at once, with a status (docs/PROTOCOL.md §14),
and its connection is reset there. Each connection is logged on stderr
when it ends. With --control PATH, "pool bridge status --control PATH"
shows the counters.

Example:

  pool bridge pool2tcp --identity gateway.key --listen :9253 \
      --target 127.0.0.1:80 --authorized clients`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if identity == "" {
				return usagef("pool2tcp needs --identity FILE")
			}
			if (authorized != "") == allowAny {
				return usagef("pool2tcp needs exactly one of --authorized FILE (the client keys to accept) or --allow-any")
			}
			if target == "" && len(allow) == 0 {
				return usagef("pool2tcp needs --target HOST:PORT or at least one --allow DEST:PORTS")
			}
			sc := bridge.ServerConfig{MaxConns: maxConns}
			if target != "" {
				t, err := bridge.ParseTarget(target)
				if err != nil {
					return usagef("--target: %v", err)
				}
				sc.Default = t
			}
			for _, a := range allow {
				p, err := bridge.ParsePattern(a)
				if err != nil {
					return usagef("--allow: %v", err)
				}
				sc.Allow = append(sc.Allow, p)
			}
			id, err := pool.LoadIdentity(identity)
			if err != nil {
				return err
			}
			log := bridgeLogger(cmd.ErrOrStderr(), quiet)
			pc := &pool.Config{Identity: id, AllowAny: allowAny, Logger: nil,
				OnHandshakeError: func(remote netip.AddrPort, err error) {
					log.Warn("pool2tcp: handshake refused", "remote", remote.String(), "err", err.Error())
				}}
			if authorized != "" {
				if pc.AllowList, err = pool.LoadAllowList(authorized); err != nil {
					return fmt.Errorf("--authorized: %w", err)
				}
				if pc.AllowList.Len() == 0 {
					log.Warn("pool2tcp: the authorized file lists no keys: every client will be refused", "file", authorized)
				}
			}
			sc.Logger = log
			sc.OnConn = logConn(log)
			srv, err := bridge.NewServer(sc)
			if err != nil {
				return err
			}
			defer srv.Close()
			l, err := pool.Listen(listen, pc)
			if err != nil {
				return fmt.Errorf("cannot listen on %s: %w", listen, err)
			}
			defer l.Close()
			stop, err := serveBridgeControl(control, "pool2tcp", srv.Stats, log)
			if err != nil {
				return err
			}
			defer stop()
			log.Info("pool2tcp: listening", "listen", l.Addr().String(), "key", id.Public.String(), "target", sc.Default.String(), "allow", strings.Join(allow, " "))
			return serveUntilDone(cmd.Context(), func() error { return srv.Serve(l) }, func() { srv.Close() })
		},
	}
	f := cmd.Flags()
	f.StringVar(&identity, "identity", "", "this node's identity file (required)")
	f.StringVar(&listen, "listen", ":9253", "address to accept POOL sessions on")
	f.StringVar(&target, "target", "", "HOST:PORT every channel connects to unless it names another destination")
	f.StringArrayVar(&allow, "allow", nil, "DEST:PORTS a channel may name (CIDR, IP or host name; repeatable)")
	f.StringVar(&authorized, "authorized", "", "file of client public keys to accept, one per line")
	f.BoolVar(&allowAny, "allow-any", false, "accept any client key (anyone who can reach the port)")
	f.StringVar(&control, "control", "", "serve \"pool bridge status\" on this Unix socket (mode 0600)")
	f.IntVar(&maxConns, "max-connections", bridge.DefaultMaxConns, "most connections carried at once; more are refused as BUSY")
	f.BoolVar(&quiet, "quiet", false, "log only warnings and errors (refused and reset connections)")
	return cmd
}

// serveUntilDone runs serve until it returns or ctx ends (then stop makes
// it return).
func serveUntilDone(ctx context.Context, serve func() error, stop func()) error {
	errc := make(chan error, 1)
	go func() { errc <- serve() }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		stop()
		<-errc
		return nil
	}
}

func newBridgeStatusCmd() *cobra.Command {
	var f ctlFlags
	cmd := &cobra.Command{
		Use:   "status [--control PATH] [--json]",
		Short: "Show a running bridge's connections, bytes and errors per route",
		Long: `status asks a running bridge for its counters, one row per route:
connections carried so far, open now, refused (the far side's policy or
target said no), errors (reset mid-transfer or the peer unreachable), bytes
each way, and, on the tcp2pool side, the live sessions to the peer.

It asks a node that runs [[bridge.*]] sections (its control socket:
--control, or $POOL_CONTROL, default /run/pool/control.sock), or a
standalone bridge started with "pool bridge tcp2pool|pool2tcp --control
PATH". The socket has mode 0600: run this as the bridge's user.

Examples:

  pool bridge status
  pool bridge status --control /run/pool/bridge.sock
  pool bridge status --control /run/pool/bridge.sock --json`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var raw json.RawMessage
			if err := ctlCall(cmd.Context(), &f, bridgeStatusMethod, &raw); err != nil {
				var re *node.RemoteError
				if errors.As(err, &re) && strings.Contains(re.Msg, "unknown") {
					return fmt.Errorf("%v (is this a bridge's control socket?)", err)
				}
				return err
			}
			w := cmd.OutOrStdout()
			if f.json {
				return ctlPrintJSON(w, raw)
			}
			// A node's rows name their side; a standalone bridge's do not.
			var rs []node.BridgeRoute
			if err := json.Unmarshal(raw, &rs); err != nil {
				return fmt.Errorf("the bridge's status: %v", err)
			}
			t := ctlTable(w)
			fmt.Fprintln(t, "SIDE\tROUTE\tPEER\tSESSIONS\tCONNS\tOPEN\tREFUSED\tERRORS\tUP\tDOWN")
			for _, r := range rs {
				sessions := "-"
				if r.Peer != "" {
					sessions = fmt.Sprint(r.Sessions)
				}
				fmt.Fprintf(t, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%s\t%s\n", ctlDash(r.Side), r.Route, ctlDash(r.Peer), sessions,
					r.Conns, r.Active, r.Refused, r.Errors, ctlBytes(r.BytesUp), ctlBytes(r.BytesDown))
			}
			return t.Flush()
		},
	}
	f.add(cmd)
	return cmd
}
