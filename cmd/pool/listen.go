package main

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	"github.com/pool-go/pool"
	"github.com/spf13/cobra"
)

func newListenCmd() *cobra.Command {
	var (
		nc         ncFlags
		address    string
		authorized string
		allowAny   bool
	)
	cmd := &cobra.Command{
		Use:   "listen [--listen HOST:PORT] --identity FILE (--authorized FILE | --allow-any)",
		Short: "Wait for one POOL session and connect it to stdin and stdout, like nc -l",
		Long: `listen is netcat's "nc -l" over POOL. It waits for one client, lets it in
only if its public key is listed in the --authorized file (or any key with
--allow-any), and then copies stdin to the client and what the client sends
to stdout, on one channel of the session (0 unless --channel says which;
"pool connect" must name the same).

End of stdin ends this side's stream (the client reads end of file); the
command exits when both directions have ended and the client has confirmed
the end of the session. The exit status is 0 only if everything read from
stdin was delivered and everything the client sent was written to stdout.

When stdin is a terminal (a character device), the command also stops
when the client has sent everything, as nc -l does, so "pool listen > file"
needs no Ctrl-D.

It serves one session, like nc -l: a client whose handshake fails (a key
that is not authorized, a client that pinned another server key) ends the
command with exit status 1 and the reason on stderr, and clients arriving
while the session runs are turned away with CLOSE(OVERLOAD, "busy").

The --authorized file lists one public key per line, as "pool keygen"
prints them; '#' starts a comment. Status lines ("listening on ...",
"session from ...") go to stderr; stdout carries only the data.

Examples:

  pool keygen --out server.key
  pool listen --identity server.key --authorized clients > received.bin
  pool listen --identity server.key --allow-any --listen 127.0.0.1:9000 < file
  pool listen --identity server.key --authorized clients --channel 7 --progress`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := nc.check("listen"); err != nil {
				return err
			}
			if (authorized != "") == allowAny {
				return usagef("listen needs exactly one of --authorized FILE (the client keys to accept) or --allow-any")
			}
			if address == "" {
				return usagef("--listen needs HOST:PORT (\":9253\" for every address)")
			}
			st := &ncStatus{w: cmd.ErrOrStderr(), quiet: nc.quiet}
			id, err := pool.LoadIdentity(nc.identity)
			if err != nil {
				return err
			}
			type hsError struct {
				remote netip.AddrPort
				err    error
			}
			refused := make(chan hsError, 1)
			cfg := &pool.Config{Identity: id, AllowAny: allowAny,
				OnHandshakeError: func(remote netip.AddrPort, err error) {
					select {
					case refused <- hsError{remote, err}:
					default:
					}
				}}
			if authorized != "" {
				if cfg.AllowList, err = pool.LoadAllowList(authorized); err != nil {
					return fmt.Errorf("--authorized: %w", err)
				}
				if cfg.AllowList.Len() == 0 {
					st.warn("%s lists no keys: every client will be refused", authorized)
				}
			}
			l, err := pool.Listen(address, cfg)
			if err != nil {
				return fmt.Errorf("cannot listen on %s: %w", address, err)
			}
			defer l.Close()
			st.info("listening on %s as %s", l.Addr(), id.Public)
			st.info("address %s", pool.NewAddress(id.Public, 0, 0))

			ctx := cmd.Context()
			accepted := make(chan *pool.Session, 1)
			go func() {
				s, _ := l.AcceptContext(ctx) // nil once the listener closes
				accepted <- s
			}()
			var s *pool.Session
			select {
			case s = <-accepted:
			case r := <-refused:
				go func() { // a session that raced the failure is not served
					if s := <-accepted; s != nil {
						s.CloseWithError(ncCodeAbort, "the listener gave up")
					}
				}()
				msg := ncErrText(r.err)
				if errors.Is(r.err, pool.ErrUnauthorized) {
					msg += fmt.Sprintf(" (not in %s)", authorized)
				}
				return fmt.Errorf("refused connection from %s: %s", ncAddrPort(r.remote), msg)
			case <-ctx.Done():
				return errors.New("interrupted")
			}
			if s == nil {
				return errors.New("the listener closed") // not expected: only we close it
			}
			// One session, like nc -l. The listener stays open until we
			// exit, turning later clients away with a CLOSE that says so:
			// closing it now could kill the session just accepted (see
			// ncTurnAway).
			tctx, stopTurnAway := context.WithCancel(ctx)
			defer stopTurnAway()
			go ncTurnAway(tctx, l)
			st.info("session from %s at %s", s.Peer(), ncAddrPort(s.Path().Client))
			return ncServe(ctx, s, nc.channel, cmd.InOrStdin(), cmd.OutOrStdout(), st, nc.progress)
		},
	}
	nc.add(cmd)
	f := cmd.Flags()
	f.StringVar(&address, "listen", ":9253", "address and port to listen on; \":9253\" is every address, IPv4 and IPv6")
	f.StringVar(&authorized, "authorized", "", "file of client public keys to accept, one per line")
	f.BoolVar(&allowAny, "allow-any", false, "accept any client key (anyone who can reach the port)")
	return cmd
}

// ncTurnAway closes every further session of l until ctx ends: "pool
// listen" serves one. It keeps l open rather than closing it after the
// first Accept because Listener.Close can race with the hand-off of the
// session it just accepted and close that session's connection
// (listener.go: serve's AfterFunc on the listener's context stays armed
// until serve returns, after the session went to Accept).
func ncTurnAway(ctx context.Context, l *pool.Listener) {
	for {
		s, err := l.AcceptContext(ctx)
		if err != nil {
			return
		}
		_ = s.CloseWithError(pool.CodeOverload, "busy: this pool listen serves one session")
	}
}
