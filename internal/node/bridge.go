package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/pool-go/pool"
	"github.com/pool-go/pool/internal/bridge"
	"github.com/pool-go/pool/internal/journal"
	"github.com/pool-go/pool/internal/shimd"
)

// The node's bridges (docs/OPERATIONS.md, BRIDGING TCP): each
// [[bridge.tcp2pool]] is a TCP listener whose connections a bridge.Client
// carries to its peer; [[bridge.pool2tcp]] is a bridge.Server that serves
// the channels of every session (instead of refusing them).

// bridgeSet is the running bridges; fixed from Start to Shutdown.
type bridgeSet struct {
	clients []*tcp2poolRun
	server  *bridge.Server
	// The [shim] section: shimd answers the LD_PRELOAD shim, router
	// carries what it asks for to the peer its route names.
	router *bridge.Router
	shim   *shimd.Server
}

type tcp2poolRun struct {
	cfg     TCP2Pool
	client  *bridge.Client
	ln      net.Listener
	done    chan struct{} // closed when Serve returns
	started bool
}

// BridgeRoute is one row of "bridge.status": a route's counters and which
// side of the bridge it is.
type BridgeRoute struct {
	Side string `json:"side"` // "tcp2pool" or "pool2tcp"
	bridge.RouteStats
}

// startBridges opens the tcp2pool listeners and makes the pool2tcp server.
// On failure nothing is left running.
func (n *Node) startBridges(cfg *Config) error {
	bs := &bridgeSet{}
	if p := cfg.Bridges.Pool2TCP; p != nil {
		srv, err := bridge.NewServer(bridge.ServerConfig{Default: p.Target, Allow: p.Allow,
			Logger: n.log, OnConn: n.bridgeEvent("pool2tcp")})
		if err != nil {
			return err
		}
		bs.server = srv
	}
	if sc := cfg.Shim; sc != nil {
		if err := n.startShim(bs, cfg); err != nil {
			bs.stop()
			return err
		}
	}
	for _, b := range cfg.Bridges.TCP2Pool {
		ln, err := net.Listen("tcp", b.Listen)
		if err == nil {
			var c *bridge.Client
			c, err = bridge.NewClient(bridge.ClientConfig{Name: b.Name, Address: b.PeerAddress, Peer: b.PeerKey,
				Pool: &pool.Config{Identity: cfg.Identity, IdleTimeout: cfg.IdleTimeout, HeartbeatInterval: cfg.HeartbeatInterval,
					Health: n.health, OnIntegrityFailure: n.integrityFailure, Rand: n.rand, JournalHead: n.journalHead, Logger: n.log},
				Logger: n.log, OnConn: n.bridgeEvent("tcp2pool")})
			if err != nil {
				ln.Close()
			} else {
				bs.clients = append(bs.clients, &tcp2poolRun{cfg: b, client: c, ln: ln, done: make(chan struct{})})
			}
		}
		if err != nil {
			bs.stop()
			return fmt.Errorf("bridge %s: cannot listen on %s: %w", b.Name, b.Listen, err)
		}
	}
	for _, r := range bs.clients {
		r.started = true
		go func() {
			defer close(r.done)
			if err := r.client.Serve(r.ln, r.cfg.Destination); err != nil {
				n.log.Error("bridge: the listener failed", "bridge", r.cfg.Name, "listen", r.cfg.Listen, "err", err)
			}
		}()
		n.log.Info("bridge tcp2pool started", "bridge", r.cfg.Name, "listen", r.ln.Addr().String(),
			"peer", r.cfg.PeerAddress, "destination", r.cfg.Destination.String())
	}
	if bs.server != nil {
		n.log.Info("bridge pool2tcp serves the channels of every session", "target", cfg.Bridges.Pool2TCP.Target.String(),
			"allow", fmt.Sprint(cfg.Bridges.Pool2TCP.AllowText))
	}
	n.bridges = bs
	return nil
}

// stop closes every bridge and waits for them.
func (bs *bridgeSet) stop() {
	if bs == nil {
		return
	}
	for _, r := range bs.clients {
		r.client.Close() // closes the listener Serve runs on, too
		r.ln.Close()
	}
	for _, r := range bs.clients {
		if r.started {
			<-r.done
		}
	}
	if bs.server != nil {
		bs.server.Close()
	}
	if bs.shim != nil {
		bs.shim.Close()
	}
	if bs.router != nil {
		bs.router.Close()
	}
}

// serveChannels hands the channels of s to the pool2tcp bridge, or
// refuses them when there is none.
func (n *Node) serveChannels(ctx context.Context, s *pool.Session) {
	if n.bridges != nil && n.bridges.server != nil {
		n.bridges.server.ServeChannels(ctx, s)
		return
	}
	n.refuseChannels(ctx, s)
}

// bridgeEvent records each bridged connection when it ends, in the change
// journal (a disconnect entry with bridge = SIDE) and the log.
func (n *Node) bridgeEvent(side string) func(bridge.ConnEvent) {
	return func(e bridge.ConnEvent) {
		d := map[string]string{"bridge": side, "route": e.Route, "client": e.Client, "target": e.Target.String(),
			"up": strconv.FormatUint(e.Up, 10), "down": strconv.FormatUint(e.Down, 10),
			"lived": e.Duration.Round(time.Millisecond).String(), "status": e.Status.String()}
		attrs := []any{"bridge", side, "route", e.Route, "client", e.Client, "target", e.Target.String(),
			"up", e.Up, "down", e.Down, "lived", e.Duration.Round(time.Millisecond)}
		switch {
		case e.Status != bridge.StatusOK:
			d["reason"] = errText(e.Err)
			n.log.Warn("bridge: connection refused", append(attrs, "status", e.Status.String(), "err", errText(e.Err))...)
		case e.Err != nil:
			d["reason"] = e.Err.Error()
			n.log.Warn("bridge: connection reset", append(attrs, "err", e.Err.Error())...)
		default:
			d["reason"] = "closed"
			n.log.Debug("bridge: connection closed", attrs...)
		}
		n.record(journal.TypeDisconnect, d)
	}
}

// BridgeStatus returns the counters of every route of every bridge.
func (n *Node) BridgeStatus() []BridgeRoute {
	out := []BridgeRoute{}
	bs := n.bridges
	if bs == nil {
		return out
	}
	for _, r := range bs.clients {
		out = append(out, BridgeRoute{Side: "tcp2pool", RouteStats: r.client.Stats()})
	}
	if bs.server != nil {
		for _, st := range bs.server.Stats() {
			out = append(out, BridgeRoute{Side: "pool2tcp", RouteStats: st})
		}
	}
	if bs.router != nil {
		for _, st := range bs.router.Stats() {
			out = append(out, BridgeRoute{Side: "shim", RouteStats: st})
		}
	}
	return out
}

// errNoBridges explains an empty bridge.status.
var errNoBridges = errors.New("this node runs no bridge: add [[bridge.tcp2pool]] or [[bridge.pool2tcp]] sections, or a [shim] section, to its configuration")

// startShim starts the [shim] section: the route table's Router (one
// shared session per peer, as tcp2pool) and the socket the LD_PRELOAD
// shim connects to. A destination no route matches is answered "no
// POOL route", and the shim falls back as POOL_SHIM_FALLBACK says.
func (n *Node) startShim(bs *bridgeSet, cfg *Config) error {
	sc := cfg.Shim
	r, err := bridge.NewRouter(bridge.RouterConfig{Routes: sc.Routes,
		Pool: &pool.Config{Identity: cfg.Identity, IdleTimeout: cfg.IdleTimeout, HeartbeatInterval: cfg.HeartbeatInterval,
			Health: n.health, OnIntegrityFailure: n.integrityFailure, Rand: n.rand, JournalHead: n.journalHead, Logger: n.log},
		Client: bridge.ClientConfig{Logger: n.log, OnConn: n.bridgeEvent("shim")}})
	if err != nil {
		return fmt.Errorf("shim: %w", err)
	}
	bs.router = r
	mode := shimd.DefaultMode
	if sc.Group != "" {
		mode = 0o660
	}
	srv, err := shimd.Listen(shimd.Config{Path: sc.Socket, Mode: mode, Group: sc.Group, Dialer: r,
		IsNoRoute: func(err error) bool { return errors.Is(err, bridge.ErrNoRoute) }, DialTimeout: sc.DialTimeout, Log: n.log})
	if err != nil {
		return fmt.Errorf("shim: %w", err)
	}
	bs.shim = srv
	n.log.Info("shim socket ready", "socket", sc.Socket, "routes", len(sc.Routes), "group", sc.Group)
	return nil
}
