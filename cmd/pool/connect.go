package main

import (
	"errors"
	"strings"
	"time"

	"github.com/pool-go/pool"
	"github.com/spf13/cobra"
)

func newConnectCmd() *cobra.Command {
	var (
		nc      ncFlags
		peer    string
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "connect --identity FILE --peer KEY|ADDRESS HOST[:PORT]",
		Short: "Open a POOL session to a node and connect it to stdin and stdout, like nc",
		Long: `connect is netcat over POOL. It dials the node at HOST:PORT (port 9253 if
omitted), checks that it holds the key given by --peer, and then copies
stdin to it and what it sends to stdout, on one channel of the session (0
unless --channel says which; "pool listen" must name the same).

End of stdin ends this side's stream (the server reads end of file); the
command exits when both directions have ended and the server has confirmed
the end of the session. The exit status is 0 only if everything read from
stdin was delivered and everything the server sent was written to stdout.
When stdin is a terminal (a character device), the command also stops
once the server has sent everything.

--peer is the server's public key, as "pool keygen" printed it (base64 or
hex): the handshake fails unless the server proves it holds that exact key.
It may instead be the server's address (pool:...), but an address only
carries a 64-bit node ID, which is checked instead of the key (trust on
first use): the command warns and prints the key the server presented, so
you can pin that key next time.

A failed handshake says why on stderr and exits with status 1: the server
closed the connection without a CHALLENGE (not the identity --peer names),
refused us after our RESPONSE (our key is not in its authorized list), the
handshake timed out (--timeout), or no common protocol version. Status
lines go to stderr; stdout carries only the data.

Examples:

  pool keygen --out client.key
  pool connect --identity client.key --peer 9aB3...Q= server.example < file
  pool connect --identity client.key --peer 9aB3...Q= 10.0.0.5:9000 > copy
  pool connect --identity client.key --peer pool:00010001-... host --progress < file`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usagef("connect needs exactly one HOST[:PORT] argument (the server to dial), got %d", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := nc.check("connect"); err != nil {
				return err
			}
			if peer == "" {
				return usagef("connect needs --peer KEY (the server's public key, as \"pool keygen\" printed it) or --peer ADDRESS")
			}
			if timeout <= 0 {
				return usagef("--timeout must be positive, got %v", timeout)
			}
			var (
				key    pool.PublicKey
				addr   pool.Address
				byAddr = strings.HasPrefix(strings.TrimSpace(strings.ToLower(peer)), "pool:")
				err    error
			)
			if byAddr {
				if addr, err = pool.ParseAddress(peer); err != nil {
					return usagef("--peer: %v", err)
				}
			} else if key, err = pool.ParsePublicKey(peer); err != nil {
				return usagef("--peer: %v (give the server's public key, or its pool:... address)", err)
			}
			st := &ncStatus{w: cmd.ErrOrStderr(), quiet: nc.quiet}
			id, err := pool.LoadIdentity(nc.identity)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			cfg := &pool.Config{Identity: id, HandshakeTimeout: timeout}
			var s *pool.Session
			if byAddr {
				s, err = pool.DialAddress(ctx, args[0], addr, cfg)
			} else {
				s, err = pool.Dial(ctx, args[0], key, cfg)
			}
			if err != nil {
				if ctx.Err() != nil {
					return errors.New("interrupted")
				}
				return ncDialError(err)
			}
			if byAddr {
				st.warn("--peer is an address: only its 64-bit node ID was checked, not the server's key (trust on first use)")
				st.warn("the server's key is %s; pin it next time with --peer %s", s.Peer(), s.Peer())
			}
			st.info("session with %s at %s", s.Peer(), ncAddrPort(s.Path().Server))
			return ncServe(ctx, s, nc.channel, cmd.InOrStdin(), cmd.OutOrStdout(), st, nc.progress)
		},
	}
	nc.add(cmd)
	f := cmd.Flags()
	f.StringVar(&peer, "peer", "", "the server's public key (base64 or hex), or its pool:... address (weaker: trust on first use)")
	f.DurationVar(&timeout, "timeout", pool.DefaultHandshakeTimeout, "give up if the handshake has not completed within this")
	return cmd
}

// ncDialError says why a dial failed in the words of its cause.
func ncDialError(err error) error {
	msg := ncErrText(err)
	if errors.Is(err, pool.ErrNoChallenge) {
		msg = strings.Replace(msg, "(wrong peer key?)", "(wrong --peer key?)", 1)
	}
	return errors.New(msg)
}
