package main

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/pool-go/pool/internal/node"
	"github.com/pool-go/pool/internal/session"
	"github.com/pool-go/pool/internal/wire"
	"github.com/spf13/cobra"
)

func newPeerConfigCmd() *cobra.Command {
	var (
		f                   ctlFlags
		heartbeat, rekeyInt time.Duration
		deadline            time.Duration
		rekeyPackets        uint64
		mtuMax              uint16
		rollback            bool
		lock, unlock        bool
	)
	cmd := &cobra.Command{
		Use:   "peer-config SESSION [--heartbeat D] [--rekey-interval D] [--rekey-packets N] [--mtu-max N] [--deadline D] | SESSION --rollback | SESSION --lock|--unlock",
		Short: "Propose new session parameters to a peer, roll them back, or lock this side",
		Long: `peer-config changes the parameters of the peer's side of one live session
of the running node (PROTOCOL.md §7.15): its telemetry heartbeat interval,
how often it rekeys (by age and by packet count) and a cap on its path
MTU. SESSION is the start of the session's ID, as "pool sessions" shows it;
it must name exactly one live session.

Proposing (the default): the peer applies the new parameters at once,
tentatively, and answers; the command prints the new configuration
version and hash. A flag left out is proposed at the protocol's default
(--heartbeat 5s, --rekey-interval 1h, --rekey-packets 268435456, no MTU
cap), not at the peer's current value. Limits: --heartbeat 100ms to 10s,
--rekey-interval 1m to 1h (whole seconds), --rekey-packets 65536 to
268435456, --mtu-max 0 (no cap) or at least 512, --deadline 8s to 1h
(default 1m). One proposal per session at a time.

The deadline works as P07 says: silence at the deadline KEEPS the change.
This node asks the peer to confirm at 1, 3 and 7 s; whether or not those
requests arrive, when the deadline passes the peer keeps the new
parameters for good. The only way back is --rollback BEFORE the deadline:
the peer then restores exactly the previous parameters (checked against
their hash). After the deadline --rollback is refused; propose the old
values again instead. So if you lose the session or your terminal, the
change stays: choose the deadline as the time you need to check it.

--lock freezes THIS node's side of the session: the peer's proposals and
rollbacks are refused (reason "locked") until --unlock. It does not
change the peer's side.

Every step is journaled on both nodes ("config" and "rollback" entries:
pool journal show --type config --session ID). The command exits with
status 1 if the peer refuses (locked, busy, invalid, stale, not
tentative), does not answer within 8 s, or no session matches.

` + ctlHelp + `

Examples:

  # heartbeat every 2 s, rekey every 30 min; 30 s to look before it sticks
  pool peer-config 3f2a --heartbeat 2s --rekey-interval 30m --deadline 30s
  # within those 30 s: something is wrong, restore the previous parameters
  pool peer-config 3f2a --rollback
  # doing nothing for 30 s instead keeps the change (P07)

  # refuse the peer's proposals on this side, then allow them again
  pool peer-config 3f2a --lock
  pool peer-config 3f2a --unlock`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := node.CheckSessionPrefix(args[0]); err != nil {
				return usageError{err}
			}
			fl := cmd.Flags()
			params := fl.Changed("heartbeat") || fl.Changed("rekey-interval") || fl.Changed("rekey-packets") ||
				fl.Changed("mtu-max") || fl.Changed("deadline")
			modes := 0
			for _, b := range []bool{rollback, lock, unlock} {
				if b {
					modes++
				}
			}
			if modes > 1 {
				return usagef("--rollback, --lock and --unlock exclude each other")
			}
			if modes == 1 && params {
				return usagef("--rollback, --lock and --unlock take no parameters: propose and roll back in two commands")
			}
			req := node.Request{Session: args[0]}
			switch {
			case rollback:
				req.Method = "session.config.rollback"
			case lock || unlock:
				req.Method = "session.config.lock"
				req.Locked = &lock
			default:
				req.Method = "session.config.propose"
				if err := checkPeerParams(fl.Changed("heartbeat"), heartbeat, fl.Changed("rekey-interval"), rekeyInt,
					fl.Changed("rekey-packets"), rekeyPackets, mtuMax, fl.Changed("deadline"), deadline); err != nil {
					return usageError{err}
				}
				req.HeartbeatMs = uint32(heartbeat / time.Millisecond)
				req.RekeyIntervalS = uint32(rekeyInt / time.Second)
				req.RekeyPackets = rekeyPackets
				req.MTUMax = mtuMax
				req.Deadline = deadline.Seconds()
			}
			var raw json.RawMessage
			if err := ctlRequest(cmd.Context(), &f, req, &raw); err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if f.json {
				return ctlPrintJSON(w, raw)
			}
			var res node.PeerConfigResult
			if err := json.Unmarshal(raw, &res); err != nil {
				return fmt.Errorf("the node's answer: %v", err)
			}
			p := res.Params
			shown := fmt.Sprintf("heartbeat %v, rekey interval %v, rekey packets %d, mtu max %s",
				time.Duration(p.HeartbeatMs)*time.Millisecond, time.Duration(p.RekeyIntervalS)*time.Second,
				p.RekeyPackets, mtuText(p.MTUMax))
			switch res.State {
			case "tentative":
				fmt.Fprintf(w, "session %s: the peer applied version %d (was %d), hash %s\n", res.Session, res.Version, res.PrevVersion, res.Hash)
				fmt.Fprintf(w, "  %s\n", shown)
				fmt.Fprintf(w, "  it keeps them after %s unless you run, before then:\n    pool peer-config %s --rollback\n",
					ctlSeconds(res.DeadlineS), res.Session[:8])
			case "rolled-back":
				fmt.Fprintf(w, "session %s: the peer rolled back to version %d (from %d), hash %s\n", res.Session, res.Version, res.PrevVersion, res.Hash)
				fmt.Fprintf(w, "  %s\n", shown)
			default:
				fmt.Fprintf(w, "session %s: this side's configuration (version %d, hash %s) is %s\n", res.Session, res.Version, res.Hash, res.State)
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.DurationVar(&heartbeat, "heartbeat", 0, "the peer's telemetry heartbeat interval, 100ms to 10s (default 5s)")
	fl.DurationVar(&rekeyInt, "rekey-interval", 0, "the peer rekeys when its keys are this old, 1m to 1h (default 1h)")
	fl.Uint64Var(&rekeyPackets, "rekey-packets", 0, "the peer rekeys after this many packets, 65536 to 268435456 (default 268435456)")
	fl.Uint16Var(&mtuMax, "mtu-max", 0, "a cap on the peer's path MTU, at least 512; 0: no cap")
	fl.DurationVar(&deadline, "deadline", 0, "the rollback deadline, 8s to 1h (default 1m): silence at it keeps the change")
	fl.BoolVar(&rollback, "rollback", false, "restore the peer's previous parameters (only before the deadline)")
	fl.BoolVar(&lock, "lock", false, "refuse the peer's proposals for this side of the session")
	fl.BoolVar(&unlock, "unlock", false, "accept the peer's proposals again")
	f.add(cmd)
	return cmd
}

func mtuText(m uint16) string {
	if m == 0 {
		return "none"
	}
	return fmt.Sprint(m)
}

// checkPeerParams checks the flags of a proposal against PROTOCOL.md
// §7.15's limits.
func checkPeerParams(hbSet bool, hb time.Duration, riSet bool, ri time.Duration, rpSet bool, rp uint64,
	mtu uint16, dlSet bool, dl time.Duration) error {
	switch {
	case hbSet && (hb < session.MinConfigHeartbeat || hb > session.MaxConfigHeartbeat || hb%time.Millisecond != 0):
		return fmt.Errorf("--heartbeat %v: want %v to %v, in whole milliseconds", hb, session.MinConfigHeartbeat, session.MaxConfigHeartbeat)
	case riSet && (ri < session.MinConfigRekeyInterval || ri > session.DefaultRekeyInterval || ri%time.Second != 0):
		return fmt.Errorf("--rekey-interval %v: want %v to %v, in whole seconds", ri, session.MinConfigRekeyInterval, session.DefaultRekeyInterval)
	case rpSet && (rp < session.MinConfigRekeyPackets || rp > session.DefaultRekeyPackets):
		return fmt.Errorf("--rekey-packets %d: want %d to %d", rp, session.MinConfigRekeyPackets, uint64(session.DefaultRekeyPackets))
	case mtu != 0 && mtu < wire.MinMTU:
		return fmt.Errorf("--mtu-max %d: want 0 (no cap) or at least %d", mtu, wire.MinMTU)
	case dlSet && (dl < session.MinConfigDeadline || dl > session.MaxConfigDeadline):
		return fmt.Errorf("--deadline %v: want %v to %v", dl, session.MinConfigDeadline, session.MaxConfigDeadline)
	}
	return nil
}
