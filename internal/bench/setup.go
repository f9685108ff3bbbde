package bench

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"time"

	"github.com/pool-go/pool"
)

// poolNet is a POOL listener on 127.0.0.1 and a client identity it allows.
type poolNet struct {
	l   *pool.Listener
	srv *pool.Identity
	cli *pool.Identity
	cfg pool.Config
}

// newPoolNet starts a listener with the defaults of pool.Config, changed
// only by tweak (each suite says which knob it turns, and why).
func newPoolNet(tweak func(*pool.Config)) (*poolNet, error) {
	srv, err := pool.GenerateIdentity()
	if err != nil {
		return nil, err
	}
	cli, err := pool.GenerateIdentity()
	if err != nil {
		return nil, err
	}
	cfg := pool.Config{Identity: srv, Authorize: func(k pool.PublicKey) bool { return k == cli.Public }}
	if tweak != nil {
		tweak(&cfg)
	}
	l, err := pool.Listen("127.0.0.1:0", &cfg)
	if err != nil {
		return nil, err
	}
	return &poolNet{l: l, srv: srv, cli: cli, cfg: cfg}, nil
}

func (n *poolNet) Close() { n.l.Close() }

// dial opens a session from the client identity.
func (n *poolNet) dial(ctx context.Context) (*pool.Session, error) {
	return pool.Dial(ctx, n.l.Addr().String(), n.srv.Public, &pool.Config{Identity: n.cli})
}

// pair dials one session and accepts its server end.
func (n *poolNet) pair(ctx context.Context) (cli, srv *pool.Session, err error) {
	cli, err = n.dial(ctx)
	if err != nil {
		return nil, nil, err
	}
	srv, err = n.l.AcceptContext(ctx)
	if err != nil {
		cli.Close()
		return nil, nil, err
	}
	return cli, srv, nil
}

// tcpPair returns both ends of one loopback TCP connection.
func tcpPair(ctx context.Context) (client, server *net.TCPConn, err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	defer ln.Close()
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() { c, err := ln.Accept(); ch <- res{c, err} }()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", ln.Addr().String())
	if err != nil {
		return nil, nil, err
	}
	r := <-ch
	if r.err != nil {
		c.Close()
		return nil, nil, r.err
	}
	return c.(*net.TCPConn), r.c.(*net.TCPConn), nil
}

// tlsKind selects the TLS configuration a comparison runs.
type tlsKind int

const (
	tls13Default tlsKind = iota // TLS 1.3, Go's default suites and groups
	tls12ChaCha                 // TLS 1.2 forced to ECDHE-ECDSA-ChaCha20-Poly1305
)

// tlsConfigs returns matching server and client configurations around a
// fresh self-signed ECDSA P-256 certificate (the cheapest common
// signature for a server; no resumption, so every handshake is full).
func tlsConfigs(kind tlsKind) (srv, cli *tls.Config, err error) {
	key, der, cert, err := selfSigned()
	if err != nil {
		return nil, nil, err
	}
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	srv = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}},
		SessionTicketsDisabled: true}
	cli = &tls.Config{RootCAs: roots, ServerName: certName}
	switch kind {
	case tls13Default:
		srv.MinVersion, cli.MinVersion = tls.VersionTLS13, tls.VersionTLS13
	case tls12ChaCha:
		srv.MaxVersion, cli.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
		suites := []uint16{tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256}
		srv.CipherSuites, cli.CipherSuites = suites, suites
	}
	return srv, cli, nil
}

// certName is the DNS name of the bench's self-signed certificates.
const certName = "pool-bench"

// selfSigned makes a fresh self-signed ECDSA P-256 server certificate for
// certName, valid for a day.
func selfSigned() (*ecdsa.PrivateKey, []byte, *x509.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: certName},
		DNSNames: []string{certName}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, nil, err
	}
	return key, der, cert, nil
}

// tlsPair runs a TLS handshake over a fresh loopback TCP connection.
func tlsPair(ctx context.Context, kind tlsKind) (client, server *tls.Conn, err error) {
	sc, cc, err := tlsConfigs(kind)
	if err != nil {
		return nil, nil, err
	}
	c, s, err := tcpPair(ctx)
	if err != nil {
		return nil, nil, err
	}
	client, server = tls.Client(c, cc), tls.Server(s, sc)
	errc := make(chan error, 1)
	go func() { errc <- server.HandshakeContext(ctx) }()
	cerr := client.HandshakeContext(ctx)
	serr := <-errc
	if err := errors.Join(cerr, serr); err != nil {
		c.Close()
		s.Close()
		return nil, nil, fmt.Errorf("TLS handshake: %w", err)
	}
	return client, server, nil
}

// suiteName names the negotiated cipher suite.
func suiteName(c *tls.Conn) string { return tls.CipherSuiteName(c.ConnectionState().CipherSuite) }
