package node

import (
	"fmt"
	"net"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/pool-go/pool"
	"github.com/pool-go/pool/internal/bridge"
	"github.com/pool-go/pool/internal/transport"
)

// Bridges are the node's bridge sections: TCP listeners carried to a POOL
// peer, and the policy for channels peers open (docs/OPERATIONS.md,
// BRIDGING TCP).
type Bridges struct {
	TCP2Pool []TCP2Pool
	// Pool2TCP serves the channels every session's peer opens; nil means
	// channels are refused.
	Pool2TCP *Pool2TCP
}

// TCP2Pool is one [[bridge.tcp2pool]]: connections accepted on Listen go
// to the peer, which connects them to Destination (its default target
// when zero).
type TCP2Pool struct {
	Name        string
	Listen      string
	PeerAddress string
	PeerKey     pool.PublicKey
	Destination bridge.Target
}

// Pool2TCP is the [[bridge.pool2tcp]] section.
type Pool2TCP struct {
	Target bridge.Target
	Allow  []bridge.Pattern
	// AllowText is Allow as written, to compare configurations.
	AllowText []string
}

type rawTCP2Pool struct {
	Name        string `toml:"name"`
	Listen      string `toml:"listen"`
	Peer        string `toml:"peer"`
	Key         string `toml:"key"`
	Address     string `toml:"address"`
	Destination string `toml:"destination"`
}

type rawPool2TCP struct {
	Target string   `toml:"target"`
	Allow  []string `toml:"allow"`
}

var (
	knownTCP2PoolKeys = []string{"name", "listen", "peer", "key", "address", "destination"}
	knownPool2TCPKeys = []string{"target", "allow"}
)

func knownBridgeKeys(k toml.Key) []string {
	switch {
	case len(k) == 2:
		return []string{"tcp2pool", "pool2tcp"}
	case k[1] == "tcp2pool":
		return knownTCP2PoolKeys
	case k[1] == "pool2tcp":
		return knownPool2TCPKeys
	}
	return nil
}

// parseBridges validates the bridge sections; cfg.Peers is already set.
func parseBridges(raw *rawConfig, cfg *Config, cerr func(key, format string, args ...any) error) error {
	names := map[string]int{}
	listens := map[string]int{}
	for i, rb := range raw.Bridge.TCP2Pool {
		base := fmt.Sprintf("bridge.tcp2pool[%d]", i)
		pk := func(k string) string { return base + "." + k }
		b := TCP2Pool{Name: strings.TrimSpace(rb.Name), Listen: strings.TrimSpace(rb.Listen)}
		if b.Name == "" {
			b.Name = fmt.Sprintf("tcp2pool[%d]", i)
		}
		if j, dup := names[b.Name]; dup {
			return cerr(pk("name"), "duplicate bridge name %q (also bridge.tcp2pool[%d])", b.Name, j)
		}
		names[b.Name] = i
		if b.Listen == "" {
			return cerr(pk("listen"), `required: the TCP address to accept connections on, like "127.0.0.1:8080"`)
		}
		if _, port, err := net.SplitHostPort(b.Listen); err != nil || port == "" {
			return cerr(pk("listen"), "%q is not host:port", b.Listen)
		}
		if j, dup := listens[b.Listen]; dup {
			return cerr(pk("listen"), "the same address as bridge.tcp2pool[%d]", j)
		}
		listens[b.Listen] = i
		var err error
		b.PeerKey, b.PeerAddress, _, err = peerRef(cfg, rb.Peer, rb.Key, rb.Address, "the pool2tcp node", pk, cerr)
		if err != nil {
			return err
		}
		if d := strings.TrimSpace(rb.Destination); d != "" {
			t, err := bridge.ParseTarget(d)
			if err != nil {
				return cerr(pk("destination"), "%v", err)
			}
			b.Destination = t
		}
		cfg.Bridges.TCP2Pool = append(cfg.Bridges.TCP2Pool, b)
	}
	switch len(raw.Bridge.Pool2TCP) {
	case 0:
		return nil
	case 1:
	default:
		return cerr("bridge.pool2tcp[1]", "only one [[bridge.pool2tcp]] section: it serves the channels of every session, so its target and allow list must be one")
	}
	rb := raw.Bridge.Pool2TCP[0]
	b := &Pool2TCP{}
	if t := strings.TrimSpace(rb.Target); t != "" {
		tg, err := bridge.ParseTarget(t)
		if err != nil {
			return cerr("bridge.pool2tcp[0].target", "%v", err)
		}
		b.Target = tg
	}
	for _, a := range rb.Allow {
		p, err := bridge.ParsePattern(strings.TrimSpace(a))
		if err != nil {
			return cerr("bridge.pool2tcp[0].allow", "%v", err)
		}
		b.Allow = append(b.Allow, p)
		b.AllowText = append(b.AllowText, p.String())
	}
	if b.Target.IsDefault() && len(b.Allow) == 0 {
		return cerr("bridge.pool2tcp[0]", `needs target = "HOST:PORT" or allow = ["DEST:PORTS", ...]: otherwise no destination could be reached`)
	}
	cfg.Bridges.Pool2TCP = b
	return nil
}

// equal reports whether two bridge configurations are the same.
func (b Bridges) equal(o Bridges) bool {
	if len(b.TCP2Pool) != len(o.TCP2Pool) || (b.Pool2TCP == nil) != (o.Pool2TCP == nil) {
		return false
	}
	for i := range b.TCP2Pool {
		if b.TCP2Pool[i] != o.TCP2Pool[i] {
			return false
		}
	}
	if b.Pool2TCP != nil {
		if b.Pool2TCP.Target != o.Pool2TCP.Target || strings.Join(b.Pool2TCP.AllowText, " ") != strings.Join(o.Pool2TCP.AllowText, " ") {
			return false
		}
	}
	return true
}

// peerRef resolves a section's reference to the node it leads to: peer,
// the name of a [[peer]] (its key and address), or key and address
// given outright. what names that node in the error. name is the
// [[peer]]'s name when one was used.
func peerRef(cfg *Config, peer, key, address, what string, pk func(string) string,
	cerr func(key, format string, args ...any) error) (k pool.PublicKey, addr, name string, err error) {
	peer, key, address = strings.TrimSpace(peer), strings.TrimSpace(key), strings.TrimSpace(address)
	switch {
	case peer != "" && (key != "" || address != ""):
		return k, "", "", cerr(pk("peer"), "give either peer (the name of a [[peer]]) or key and address, not both")
	case peer != "":
		found := false
		for _, p := range cfg.Peers {
			if p.Name == peer {
				k, addr, found = p.Key, p.Address, true
			}
		}
		if !found {
			return k, "", "", cerr(pk("peer"), "no [[peer]] is named %q", peer)
		}
		name = peer
	case key == "" || address == "":
		return k, "", "", cerr(pk("peer"), "required: peer (the name of a [[peer]]), or key and address of %s", what)
	default:
		var perr error
		if k, perr = pool.ParsePublicKey(key); perr != nil {
			return k, "", "", cerr(pk("key"), "%v", perr)
		}
		if _, perr := transport.NormalizeAddress(address); perr != nil {
			return k, "", "", cerr(pk("address"), "%v", perr)
		}
		addr = address
	}
	if k == cfg.Identity.Public {
		return k, "", "", cerr(pk("peer"), "this is the node's own key (it cannot lead to itself)")
	}
	return k, addr, name, nil
}
