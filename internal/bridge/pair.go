package bridge

import (
	"fmt"
	"net"

	"github.com/pool-go/pool"
)

// Pair is a tcp2pool → pool2tcp bridge running in this process on
// loopback: TCP connections to Addr are carried over one POOL session to
// the Server, which connects them to the target. pool bench and the tests
// use it to measure and check the bridge without separate processes.
type Pair struct {
	Addr   string // the tcp2pool listener, "127.0.0.1:PORT"
	Client *Client
	Server *Server

	plis *pool.Listener
	tln  net.Listener
	done chan struct{}
}

// PairOptions tune NewPair; the zero value is the defaults.
type PairOptions struct {
	// Pool settings both sides start from (Identity, AllowList etc. are
	// filled in); nil takes the defaults.
	Pool *pool.Config
	// Server and Client tune the two sides (Default, Pool, Address and
	// Peer are filled in).
	Server ServerConfig
	Client ClientConfig
}

// NewPair starts a bridge on loopback to target ("HOST:PORT"), with fresh
// identities: the server authorizes exactly the client's key.
func NewPair(target string, opt *PairOptions) (*Pair, error) {
	if opt == nil {
		opt = &PairOptions{}
	}
	t, err := ParseTarget(target)
	if err != nil {
		return nil, err
	}
	srvID, err := pool.GenerateIdentity()
	if err != nil {
		return nil, err
	}
	cliID, err := pool.GenerateIdentity()
	if err != nil {
		return nil, err
	}
	var base pool.Config
	if opt.Pool != nil {
		base = *opt.Pool
	}
	scfg := base
	scfg.Identity, scfg.AllowAny, scfg.AllowList = srvID, false, nil
	cli := cliID.Public
	scfg.Authorize = func(k pool.PublicKey) bool { return k == cli }
	plis, err := pool.Listen("127.0.0.1:0", &scfg)
	if err != nil {
		return nil, err
	}
	sc := opt.Server
	sc.Default = t
	srv, err := NewServer(sc)
	if err != nil {
		plis.Close()
		return nil, err
	}
	ccfg := base
	ccfg.Identity = cliID
	cc := opt.Client
	cc.Pool, cc.Address, cc.Peer = &ccfg, plis.Addr().String(), srvID.Public
	c, err := NewClient(cc)
	if err != nil {
		srv.Close()
		plis.Close()
		return nil, err
	}
	tln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		c.Close()
		srv.Close()
		plis.Close()
		return nil, fmt.Errorf("bridge: tcp2pool listener: %w", err)
	}
	p := &Pair{Addr: tln.Addr().String(), Client: c, Server: srv, plis: plis, tln: tln, done: make(chan struct{}, 2)}
	go func() { _ = srv.Serve(plis); p.done <- struct{}{} }()
	go func() { _ = c.Serve(tln, Target{}); p.done <- struct{}{} }()
	return p, nil
}

// Close stops both sides and waits for them.
func (p *Pair) Close() error {
	p.Client.Close()
	p.Server.Close()
	p.plis.Close()
	p.tln.Close()
	<-p.done
	<-p.done
	return nil
}
