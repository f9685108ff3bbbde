package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"sync"
	"time"

	"github.com/pool-go/pool"
	"github.com/spf13/cobra"
)

type demoOptions struct {
	size     int64
	channels int
	json     bool
	timeout  time.Duration
}

func newDemoCmd() *cobra.Command {
	opt := demoOptions{size: 16 << 20, channels: 4, timeout: time.Minute}
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run two nodes in this process and move data between them over loopback",
		Long: `demo shows POOL working end to end, in one process, with nothing to set up.

It creates two identities in memory (nothing is written to disk), starts a
server on 127.0.0.1 (a random free port) that allows only the client's
public key, and dials it from a client that pins the server's public key.
The handshake is the real one, over a real TCP socket.

Then the client opens several channels of the one session and sends
pseudo-random data on all of them at once. The server hashes what arrives
on each channel with SHA-256 and sends the digest and byte count back; the
client compares them with what it sent.

It prints both nodes' addresses and keys, the handshake time, each
channel's result, the throughput, and the session's and listener's
counters. The exit status is 0 only if every channel verified.

Examples:

  pool demo                              # 4 channels x 16 MiB
  pool demo --channels 16 --size 1048576 # 16 channels x 1 MiB
  pool demo --json | jq .throughput_mbit_per_s`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if opt.size < 0 {
				return usagef("--size must be at least 0, got %d", opt.size)
			}
			// The client opens channels of its own parity: 128 of the 256.
			if opt.channels < 1 || opt.channels > 128 {
				return usagef("--channels must be between 1 and 128, got %d", opt.channels)
			}
			if opt.timeout <= 0 {
				return usagef("--timeout must be positive, got %v", opt.timeout)
			}
			rep, err := runDemo(cmd.Context(), opt)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if opt.json {
				enc := json.NewEncoder(w)
				enc.SetIndent("", "  ")
				if err := enc.Encode(rep); err != nil {
					return err
				}
			} else {
				rep.print(w)
			}
			if failed := rep.failed(); failed > 0 {
				return fmt.Errorf("demo failed: %d of %d channels did not verify", failed, len(rep.Channels))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.Int64Var(&opt.size, "size", opt.size, "bytes to send on each channel")
	f.IntVar(&opt.channels, "channels", opt.channels, "number of channels to use at once (1-128)")
	f.BoolVar(&opt.json, "json", false, "print one JSON object instead of text")
	f.DurationVar(&opt.timeout, "timeout", opt.timeout, "give up after this long")
	return cmd
}

// demoReport is what the demo measured; it is also the --json output.
type demoReport struct {
	Server      demoNode        `json:"server"`
	Client      demoNode        `json:"client"`
	HandshakeMS float64         `json:"handshake_ms"`
	SessionID   string          `json:"session_id"`
	Channels    []channelResult `json:"channels"`
	TotalBytes  int64           `json:"total_bytes"`
	Seconds     float64         `json:"seconds"`
	MBps        float64         `json:"throughput_mb_per_s"`
	Mbitps      float64         `json:"throughput_mbit_per_s"`
	ClientStats sessionStats    `json:"client_session"`
	ServerStats sessionStats    `json:"server_session"`
	Listener    listenerStats   `json:"listener"`
	Living      livingSession   `json:"living_session"`
	OK          bool            `json:"ok"`
}

// livingSession is what the session did on its own during the demo: the
// heartbeat telemetry, a rekey and an INTEGRITY challenge.
type livingSession struct {
	RekeyMS           float64 `json:"rekey_ms"`
	Epoch             uint32  `json:"epoch"`
	IntegrityVerified bool    `json:"integrity_verified"`
	RTTMicros         int64   `json:"rtt_us"`
	PeerRTTMicros     int64   `json:"peer_reported_rtt_us"`
	HeartbeatsSent    uint64  `json:"heartbeats_sent"`
	HeartbeatsRecv    uint64  `json:"heartbeats_received"`
	DigestChecks      uint64  `json:"state_digests_verified"`
	JournalHead       string  `json:"journal_head"`
	Error             string  `json:"error,omitempty"`
}

type demoNode struct {
	Address   string `json:"address"`
	PublicKey string `json:"public_key"`
	Socket    string `json:"socket"`
}

type channelResult struct {
	ID       int    `json:"id"`
	Sent     int64  `json:"bytes_sent"`
	Received int64  `json:"bytes_received"` // as counted by the server
	SHA256   string `json:"sha256"`         // of the data sent
	Verified bool   `json:"verified"`
	Error    string `json:"error,omitempty"`
}

type sessionStats struct {
	PacketsSent     uint64 `json:"packets_sent"`
	PacketsReceived uint64 `json:"packets_received"`
	BytesSent       uint64 `json:"bytes_sent"`
	BytesReceived   uint64 `json:"bytes_received"`
}

type listenerStats struct {
	Challenges       uint64 `json:"challenges"`
	Accepted         uint64 `json:"accepted"`
	Sessions         uint64 `json:"sessions"`
	FailedHandshakes uint64 `json:"failed_handshakes"`
	RefusedPreAuth   uint64 `json:"refused_pre_auth"`
	DroppedInits     uint64 `json:"dropped_inits"`
	DroppedResponses uint64 `json:"dropped_responses"`
	VersionCloses    uint64 `json:"version_closes"`
	ReplayedAccepts  uint64 `json:"replayed_accepts"`
}

func (r *demoReport) failed() int {
	n := 0
	for _, c := range r.Channels {
		if !c.Verified {
			n++
		}
	}
	return n
}

func (r *demoReport) print(w io.Writer) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	p("Two POOL nodes in this process, over real TCP sockets on loopback.\n\n")
	p("server  %s\n", r.Server.Address)
	p("        key %s\n", r.Server.PublicKey)
	p("        listening on %s, allowing only the client's key\n", r.Server.Socket)
	p("client  %s\n", r.Client.Address)
	p("        key %s\n", r.Client.PublicKey)
	p("        dialing from %s, with the server's key pinned\n\n", r.Client.Socket)
	p("handshake  %.2f ms (INIT, CHALLENGE with puzzle, RESPONSE, ACCEPT)\n", r.HandshakeMS)
	p("session    %s\n\n", r.SessionID)
	p("Sending %s on each of %d channels at once; the server hashes what arrives\n", sizeText(r.sizePerChannel()), len(r.Channels))
	p("and sends back SHA-256 and byte count, which the client checks.\n\n")
	for _, c := range r.Channels {
		status := "verified"
		if !c.Verified {
			status = "FAILED: " + c.Error
		}
		p("  channel %3d  %d bytes sent, %d received  sha256 %.16s…  %s\n", c.ID, c.Sent, c.Received, c.SHA256, status)
	}
	p("\nthroughput  %d bytes in %.3f s = %.1f MB/s (%.1f Mbit/s)\n\n", r.TotalBytes, r.Seconds, r.MBps, r.Mbitps)
	p("session counters  %14s %14s %14s %14s\n", "packets sent", "packets recv", "bytes sent", "bytes recv")
	for _, s := range []struct {
		name string
		st   sessionStats
	}{{"client", r.ClientStats}, {"server", r.ServerStats}} {
		p("  %-16s %14d %14d %14d %14d\n", s.name, s.st.PacketsSent, s.st.PacketsReceived, s.st.BytesSent, s.st.BytesReceived)
	}
	p("  (bytes count channel data; packets include ACKs and FINs)\n\n")
	lv := r.Living
	p("living session (both ends, during the transfer)\n")
	p("  telemetry   %d heartbeats sent, %d received, %d state digests verified\n", lv.HeartbeatsSent, lv.HeartbeatsRecv, lv.DigestChecks)
	p("  RTT         %.3f ms measured by the client; %.3f ms as the server reports it\n",
		float64(lv.RTTMicros)/1000, float64(lv.PeerRTTMicros)/1000)
	p("  rekey       to epoch %d in %.2f ms (REKEY_INIT / REKEY_ACK, keys switched by seq)\n", lv.Epoch, lv.RekeyMS)
	if lv.IntegrityVerified {
		p("  integrity   the server proved its crypto path (INTEGRITY challenge answered)\n")
	} else {
		p("  integrity   NOT verified: %s\n", lv.Error)
	}
	p("  journal     head %s (the demo nodes keep no change journal; heartbeats carry zero)\n\n", lv.JournalHead)
	l := r.Listener
	p("listener  challenges sent %d, handshakes accepted %d, sessions confirmed %d,\n", l.Challenges, l.Accepted, l.Sessions)
	p("          handshakes failed %d, refused over the pre-auth cap %d, INITs dropped %d,\n", l.FailedHandshakes, l.RefusedPreAuth, l.DroppedInits)
	p("          RESPONSEs dropped %d, version CLOSEs %d, replayed ACCEPTs %d\n\n", l.DroppedResponses, l.VersionCloses, l.ReplayedAccepts)
	if f := r.failed(); f == 0 {
		p("ok: all %d channels verified\n", len(r.Channels))
	} else {
		p("FAILED: %d of %d channels did not verify\n", f, len(r.Channels))
	}
}

func (r *demoReport) sizePerChannel() int64 {
	if len(r.Channels) == 0 {
		return 0
	}
	return r.Channels[0].Sent
}

// sizeText writes n bytes the way people say it when it is a round number.
func sizeText(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

// digestLen is the server's reply on each channel: SHA-256 and the byte
// count as a big-endian uint64.
const digestLen = sha256.Size + 8

// runDemo runs both nodes and returns what happened. An error means the
// demo could not run at all; channels that ran but did not verify are
// reported in the result.
func runDemo(ctx context.Context, opt demoOptions) (*demoReport, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, opt.timeout)
	defer cancel()

	srvID, err := pool.GenerateIdentity()
	if err != nil {
		return nil, err
	}
	cliID, err := pool.GenerateIdentity()
	if err != nil {
		return nil, err
	}
	// Heartbeats every 50 ms instead of 5 s, so a short demo shows them.
	l, err := pool.Listen("127.0.0.1:0", &pool.Config{Identity: srvID, HeartbeatInterval: demoHeartbeat,
		Authorize: func(k pool.PublicKey) bool { return k == cliID.Public }})
	if err != nil {
		return nil, err
	}
	defer l.Close()

	start := time.Now()
	cs, err := pool.Dial(ctx, l.Addr().String(), srvID.Public, &pool.Config{Identity: cliID, HeartbeatInterval: demoHeartbeat})
	if err != nil {
		return nil, err
	}
	handshake := time.Since(start)
	defer cs.Close()
	ss, err := l.AcceptContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("server did not get the session: %w", err)
	}
	defer ss.Close()
	// On timeout or interrupt, end both sessions so that every blocked
	// read and write returns.
	stop := context.AfterFunc(ctx, func() {
		go ss.Close()
		go cs.Close()
	})
	defer stop()
	if cs.ID() != ss.ID() {
		return nil, fmt.Errorf("the two ends disagree on the session ID (%x, %x)", cs.ID(), ss.ID())
	}
	if cs.Peer() != srvID.Public || ss.Peer() != cliID.Public {
		return nil, errors.New("a session reports the wrong peer key")
	}

	rep := &demoReport{
		Server: demoNode{Address: pool.NewAddress(srvID.Public, 0, 0).String(),
			PublicKey: srvID.Public.String(), Socket: l.Addr().String()},
		Client: demoNode{Address: pool.NewAddress(cliID.Public, 0, 0).String(),
			PublicKey: cliID.Public.String()},
		HandshakeMS: float64(handshake.Microseconds()) / 1000,
		SessionID:   hex.EncodeToString(func() []byte { id := cs.ID(); return id[:] }()),
		Channels:    make([]channelResult, opt.channels),
	}
	if p := cs.Path(); p.Client.IsValid() {
		rep.Client.Socket = netip.AddrPortFrom(p.Client.Addr().Unmap(), p.Client.Port()).String()
	}

	// Server: hash each channel to its end and answer with the digest.
	received := make(map[int]int64)
	var recvMu sync.Mutex
	var srvWG sync.WaitGroup
	srvWG.Add(1)
	go func() {
		defer srvWG.Done()
		for range opt.channels {
			ch, err := ss.AcceptChannel(ctx)
			if err != nil {
				return
			}
			srvWG.Add(1)
			go func() {
				defer srvWG.Done()
				defer ch.Close()
				h := sha256.New()
				n, err := io.Copy(h, ch)
				recvMu.Lock()
				received[ch.ID()] = n
				recvMu.Unlock()
				if err != nil {
					return // the client sees the channel fail
				}
				reply := binary.BigEndian.AppendUint64(h.Sum(nil), uint64(n))
				if _, err := ch.Write(reply); err == nil {
					ch.CloseWrite()
				}
			}()
		}
	}()

	// Client: send on all channels at once, then check the replies.
	start = time.Now()
	var wg sync.WaitGroup
	for i := range rep.Channels {
		res := &rep.Channels[i]
		ch, err := cs.OpenChannel(-1)
		if err != nil {
			return nil, fmt.Errorf("opening channel %d of %d: %w", i+1, opt.channels, err)
		}
		res.ID = ch.ID()
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer ch.Close()
			sum, err := sendChannel(ch, opt.size, uint64(i))
			res.Sent = opt.size
			res.SHA256 = hex.EncodeToString(sum)
			if err != nil {
				res.Error = err.Error()
				return
			}
			reply, err := io.ReadAll(io.LimitReader(ch, digestLen+1))
			switch {
			case err != nil:
				res.Error = "reading the server's digest: " + err.Error()
			case len(reply) != digestLen:
				res.Error = fmt.Sprintf("server's reply is %d bytes, want %d", len(reply), digestLen)
			case binary.BigEndian.Uint64(reply[sha256.Size:]) != uint64(opt.size):
				res.Error = fmt.Sprintf("server received %d bytes, want %d", binary.BigEndian.Uint64(reply[sha256.Size:]), opt.size)
			case !bytes.Equal(reply[:sha256.Size], sum):
				res.Error = "server's SHA-256 differs from what was sent"
			default:
				res.Verified = true
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := ctx.Err(); err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return nil, fmt.Errorf("demo did not finish within %v (see --timeout)", opt.timeout)
		}
		return nil, fmt.Errorf("demo interrupted: %w", err)
	}
	// The server's side is normally finished once every reply arrived;
	// after a failure, don't wait long for it.
	srvDone := make(chan struct{})
	go func() { srvWG.Wait(); close(srvDone) }()
	select {
	case <-srvDone:
	case <-time.After(2 * time.Second):
	}
	recvMu.Lock()
	for i := range rep.Channels {
		rep.Channels[i].Received = received[rep.Channels[i].ID]
	}
	recvMu.Unlock()

	rep.TotalBytes = opt.size * int64(opt.channels)
	rep.Seconds = elapsed.Seconds()
	if rep.Seconds > 0 {
		rep.MBps = float64(rep.TotalBytes) / 1e6 / rep.Seconds
		rep.Mbitps = rep.MBps * 8
	}
	rep.ClientStats = statsOf(cs)
	rep.ServerStats = statsOf(ss)
	ls := l.Stats()
	rep.Listener = listenerStats{
		Challenges: ls.Handshake.Challenges, Accepted: ls.Handshake.Accepted, Sessions: ls.Sessions,
		FailedHandshakes: ls.FailedHandshakes, RefusedPreAuth: ls.RefusedPreAuth,
		DroppedInits: ls.Handshake.DroppedInits, DroppedResponses: ls.Handshake.DroppedResponses,
		VersionCloses: ls.Handshake.VersionCloses, ReplayedAccepts: ls.Handshake.ReplayedAccepts,
	}
	rep.Living = liveChecks(ctx, cs, ss)
	rep.OK = rep.failed() == 0 && rep.Living.IntegrityVerified

	// Close gracefully: the client's CLOSE reaches the server.
	cs.Close()
	select {
	case <-ss.Done():
	case <-ctx.Done():
	}
	return rep, nil
}

// sendChannel writes size bytes of a pseudo-random stream on ch, then a FIN,
// and returns the stream's SHA-256.
func sendChannel(ch *pool.Channel, size int64, seed uint64) ([]byte, error) {
	var key [32]byte
	binary.BigEndian.PutUint64(key[:], seed)
	rng := rand.NewChaCha8(key)
	h := sha256.New()
	buf := make([]byte, 64<<10)
	for left := size; left > 0; {
		b := buf[:min(left, int64(len(buf)))]
		rng.Read(b)
		h.Write(b)
		if _, err := ch.Write(b); err != nil {
			return h.Sum(nil), fmt.Errorf("sending: %w", err)
		}
		left -= int64(len(b))
	}
	if err := ch.CloseWrite(); err != nil {
		return h.Sum(nil), fmt.Errorf("sending FIN: %w", err)
	}
	return h.Sum(nil), nil
}

func statsOf(s *pool.Session) sessionStats {
	st := s.Stats()
	return sessionStats{PacketsSent: st.PacketsSent, PacketsReceived: st.PacketsReceived,
		BytesSent: st.BytesSent, BytesReceived: st.BytesReceived}
}

const demoHeartbeat = 50 * time.Millisecond

// liveChecks shows the living session: it waits (briefly) for heartbeat
// round trips, rekeys and challenges the server's crypto path.
func liveChecks(ctx context.Context, cs, ss *pool.Session) livingSession {
	var lv livingSession
	deadline := time.Now().Add(2 * time.Second)
	for cs.Telemetry().Local.RTTSamples == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	start := time.Now()
	before := cs.Stats().Rekeys
	if err := cs.Rekey(); err != nil {
		lv.Error = err.Error()
		return lv
	}
	for (cs.Stats().Rekeys == before || ss.Stats().Epoch != cs.Stats().Epoch) && time.Now().Before(deadline) {
		time.Sleep(100 * time.Microsecond)
	}
	lv.RekeyMS = float64(time.Since(start).Microseconds()) / 1000
	lv.Epoch = cs.Stats().Epoch
	ictx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := cs.VerifyIntegrity(ictx); err != nil {
		lv.Error = err.Error()
	} else {
		lv.IntegrityVerified = true
	}
	t := cs.Telemetry()
	lv.RTTMicros = t.Local.RTT.Microseconds()
	lv.PeerRTTMicros = t.Peer.RTT.Microseconds()
	lv.HeartbeatsSent, lv.HeartbeatsRecv = t.Local.HeartbeatsSent, t.Local.HeartbeatsRecv
	lv.DigestChecks = t.DigestChecks + ss.Telemetry().DigestChecks
	lv.JournalHead = fmt.Sprintf("%016x", t.Peer.JournalHead)
	return lv
}
