package bridge

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"

	"github.com/pool-go/pool"
)

// ErrNoRoute is wrapped by the error of a Router.DialDestination for a
// destination no route sends to a POOL peer: the caller (the shim) then
// connects over plain TCP or refuses, as its fallback says.
var ErrNoRoute = errors.New("bridge: no POOL peer serves this destination")

// Route sends the destinations Match describes to a POOL peer, whose
// pool2tcp side connects to them (if its own policy allows).
type Route struct {
	Name    string         // for stats; "DEST:PORTS" when empty
	Match   Pattern        // the destinations
	Peer    pool.PublicKey // the peer's pinned key
	Address string         // the peer's HOST[:PORT] (9253 by default)
}

// ParseRoutes reads a route table, one route per line:
//
//	DEST:PORTS  PEER_KEY  PEER_HOST[:PORT]  [NAME]
//
// '#' starts a comment. The first route that matches a destination wins,
// like the rules of a firewall (docs/OPERATIONS.md, "Bridge routes").
func ParseRoutes(r io.Reader) ([]Route, error) {
	var routes []Route
	sc := bufio.NewScanner(r)
	line := 0
	for sc.Scan() {
		line++
		text, _, _ := strings.Cut(sc.Text(), "#")
		f := strings.Fields(text)
		if len(f) == 0 {
			continue
		}
		if len(f) < 3 || len(f) > 4 {
			return nil, fmt.Errorf("line %d: want DEST:PORTS PEER_KEY PEER_HOST[:PORT] [NAME], got %d fields", line, len(f))
		}
		rt, err := NewRoute(f[0], f[1], f[2])
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		if len(f) == 4 {
			rt.Name = f[3]
		}
		routes = append(routes, rt)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return routes, nil
}

// NewRoute builds a route from its three textual parts.
func NewRoute(dest, peerKey, address string) (Route, error) {
	p, err := ParsePattern(dest)
	if err != nil {
		return Route{}, err
	}
	k, err := pool.ParsePublicKey(peerKey)
	if err != nil {
		return Route{}, fmt.Errorf("peer key %q: %w", peerKey, err)
	}
	if address == "" {
		return Route{}, errors.New("the route needs the peer's address")
	}
	return Route{Match: p, Peer: k, Address: address}, nil
}

// RouterConfig configures a Router.
type RouterConfig struct {
	Pool   *pool.Config // this node's identity for dialing
	Routes []Route
	// Client tunes the Client made for each peer (Pool, Address, Peer
	// and Name are filled in per route).
	Client ClientConfig
}

// Router sends connections to the POOL peer the route table names for
// their destination. One Client (shared sessions) serves each distinct
// peer key and address; counters are kept per route.
type Router struct {
	routes   []Route
	clients  []*Client // per route; routes to the same peer share one
	counters []Counters

	mu     sync.Mutex
	closed bool
}

// NewRouter starts a Router (and a Client per distinct peer).
func NewRouter(cfg RouterConfig) (*Router, error) {
	if cfg.Pool == nil || cfg.Pool.Identity == nil {
		return nil, errors.New("bridge: the router needs an identity")
	}
	r := &Router{routes: cfg.Routes, clients: make([]*Client, len(cfg.Routes)), counters: make([]Counters, len(cfg.Routes))}
	byPeer := map[string]*Client{}
	for i := range r.routes {
		rt := &r.routes[i]
		if rt.Name == "" {
			rt.Name = rt.Match.String()
		}
		key := rt.Peer.String() + " " + rt.Address
		c := byPeer[key]
		if c == nil {
			cc := cfg.Client
			cc.Pool, cc.Address, cc.Peer, cc.Name = cfg.Pool, rt.Address, rt.Peer, rt.Name
			var err error
			if c, err = NewClient(cc); err != nil {
				r.Close()
				return nil, err
			}
			byPeer[key] = c
		}
		r.clients[i] = c
	}
	return r, nil
}

// Lookup returns the index of the first route for dst, or -1.
func (r *Router) lookup(t Target) int {
	for i, rt := range r.routes {
		if rt.Match.Match(t) {
			return i
		}
	}
	return -1
}

// DialDestination carries a connection to dst over the POOL peer its
// route names; the far side connects to dst itself. It returns an error
// wrapping ErrNoRoute when no route matches, and a *StatusError when the
// far side refuses or cannot reach dst. This is the method the socket
// shim's daemon calls.
func (r *Router) DialDestination(ctx context.Context, dst netip.AddrPort) (net.Conn, error) {
	t := TargetFromAddrPort(dst)
	i := r.lookup(t)
	if i < 0 {
		return nil, fmt.Errorf("%w: %s", ErrNoRoute, dst)
	}
	c := &r.counters[i]
	c.conns.Add(1)
	ch, err := r.clients[i].open(ctx, t)
	if err != nil {
		var se *StatusError
		if errors.As(err, &se) {
			c.refused.Add(1)
		} else {
			c.errors.Add(1)
		}
		return nil, err
	}
	c.active.Add(1)
	return &countedConn{Channel: ch, c: c}, nil
}

// Stats returns each route's counters, with its peer's live sessions.
func (r *Router) Stats() []RouteStats {
	out := make([]RouteStats, len(r.routes))
	for i, rt := range r.routes {
		out[i] = r.counters[i].snapshot(rt.Name)
		out[i].Peer = rt.Address
		out[i].Sessions = r.clients[i].Stats().Sessions
	}
	return out
}

// Close closes every peer's Client.
func (r *Router) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	r.closed = true
	seen := map[*Client]bool{}
	for _, c := range r.clients {
		if c != nil && !seen[c] {
			seen[c] = true
			c.Close()
		}
	}
	return nil
}
