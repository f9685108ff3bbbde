package node

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/pool-go/pool/internal/bridge"
	"github.com/pool-go/pool/internal/shimd"
)

// Shim is the [shim] section: the local socket the LD_PRELOAD shim talks
// to, and the routes that say which POOL peer serves which destination
// (docs/OPERATIONS.md, THE LD_PRELOAD SHIM).
type Shim struct {
	KnownPeers  string // the route table file, if any (its routes follow [[shim.route]]'s)
	Socket      string
	Group       string // set: the socket is mode 0660 and owned by it
	DialTimeout time.Duration
	Routes      []bridge.Route
}

type rawShim struct {
	KnownPeers  string         `toml:"known_peers"`
	Socket      string         `toml:"socket"`
	Group       string         `toml:"group"`
	DialTimeout string         `toml:"dial_timeout"`
	Route       []rawShimRoute `toml:"route"`
}

type rawShimRoute struct {
	Name        string `toml:"name"`
	Destination string `toml:"destination"`
	Peer        string `toml:"peer"`
	Key         string `toml:"key"`
	Address     string `toml:"address"`
}

var (
	knownShimKeys      = []string{"socket", "group", "dial_timeout", "route", "known_peers"}
	knownShimRouteKeys = []string{"name", "destination", "peer", "key", "address"}
)

func knownShimKeysOf(k toml.Key) []string {
	if len(k) > 2 && k[1] == "route" {
		return knownShimRouteKeys
	}
	return knownShimKeys
}

// parseShim validates [shim]; cfg.Peers is already set. dir resolves a
// relative known_peers path (the configuration file's directory).
func parseShim(raw *rawShim, cfg *Config, dir string, cerr func(key, format string, args ...any) error) error {
	s := &Shim{Socket: strings.TrimSpace(raw.Socket), Group: strings.TrimSpace(raw.Group), DialTimeout: shimd.DefaultDialTimeout}
	if s.Socket == "" {
		s.Socket = shimd.DefaultPath
	}
	if len(s.Socket) > 103 {
		return cerr("shim.socket", "%d bytes long; a Unix socket path is at most 103", len(s.Socket))
	}
	if d := strings.TrimSpace(raw.DialTimeout); d != "" {
		v, err := time.ParseDuration(d)
		if err != nil || v < time.Second || v > 5*time.Minute {
			return cerr("shim.dial_timeout", `%q: want a duration from "1s" to "5m"`, d)
		}
		s.DialTimeout = v
	}
	if len(raw.Route) == 0 && strings.TrimSpace(raw.KnownPeers) == "" {
		return cerr("shim", `needs routes: [[shim.route]] tables (destination = "DEST:PORTS", peer = "NAME") or a known_peers file; without routes every connection falls back`)
	}
	for i, rr := range raw.Route {
		pk := func(k string) string { return fmt.Sprintf("shim.route[%d].%s", i, k) }
		d := strings.TrimSpace(rr.Destination)
		if d == "" {
			return cerr(pk("destination"), `required: the destinations this route carries, like "10.0.0.0/24:5432" or "db.internal:80,443"`)
		}
		p, err := bridge.ParsePattern(d)
		if err != nil {
			return cerr(pk("destination"), "%v", err)
		}
		rt := bridge.Route{Name: strings.TrimSpace(rr.Name), Match: p}
		var name string
		rt.Peer, rt.Address, name, err = peerRef(cfg, rr.Peer, rr.Key, rr.Address, "the node that serves these destinations", pk, cerr)
		if err != nil {
			return err
		}
		if rt.Name == "" {
			rt.Name = name
		}
		s.Routes = append(s.Routes, rt)
	}
	if kp := strings.TrimSpace(raw.KnownPeers); kp != "" {
		if !filepath.IsAbs(kp) {
			kp = filepath.Join(dir, kp)
		}
		rs, err := readKnownPeers(kp)
		if err != nil {
			return cerr("shim.known_peers", "%v", err)
		}
		for _, rt := range rs {
			if rt.Peer == cfg.Identity.Public {
				return cerr("shim.known_peers", "%s: route %s leads to this node's own key", kp, rt.Match)
			}
		}
		s.KnownPeers = kp
		s.Routes = append(s.Routes, rs...)
	}
	cfg.Shim = s
	return nil
}

// readKnownPeers reads a route table file (docs/OPERATIONS.md, "Bridge
// routes"): DEST:PORTS PEER_KEY PEER_ADDRESS [NAME] per line.
func readKnownPeers(path string) ([]bridge.Route, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	rs, err := bridge.ParseRoutes(io.LimitReader(f, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return rs, nil
}

// equal reports whether two [shim] sections are the same.
func (s *Shim) equal(o *Shim) bool {
	if s == nil || o == nil {
		return s == o
	}
	if s.Socket != o.Socket || s.Group != o.Group || s.DialTimeout != o.DialTimeout || len(s.Routes) != len(o.Routes) {
		return false
	}
	for i := range s.Routes {
		a, b := s.Routes[i], o.Routes[i]
		if a.Name != b.Name || a.Match.String() != b.Match.String() || a.Peer != b.Peer || a.Address != b.Address {
			return false
		}
	}
	return true
}
