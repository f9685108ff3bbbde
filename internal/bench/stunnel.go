package bench

import (
	"bufio"
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The bridge suite's third path is what an operator would otherwise deploy
// to carry TCP securely between two edges: a stunnel client in front of the
// TCP client and a stunnel server in front of the target (Debian's
// stunnel4), two processes on loopback, TLS as stunnel and OpenSSL
// negotiate it by default, the client verifying a self-signed certificate.

// stunnelBinary finds stunnel (Debian installs stunnel4 and a stunnel link).
func stunnelBinary() (string, bool) {
	for _, name := range []string{"stunnel4", "stunnel"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, true
		}
	}
	return "", false
}

// stunnelPair is a running stunnel client → stunnel server pair.
type stunnelPair struct {
	// Addr maps each service to the client's listening address: a TCP
	// connection there comes out of the server towards the service's
	// target.
	Addr    map[string]string
	Version string // "stunnel 5.68, OpenSSL 3.0.19"
	dir     string
	cli     *stunnelProc
	srv     *stunnelProc
}

// startStunnel starts a pair carrying each service name → target
// ("HOST:PORT"). Ports are picked free on 127.0.0.1 and given to stunnel,
// which cannot report a port of its own choosing; should another program
// take one in between, stunnel fails to bind and the pair is started
// again.
func startStunnel(ctx context.Context, bin string, targets map[string]string) (*stunnelPair, error) {
	var err error
	for range 3 {
		var p *stunnelPair
		if p, err = startStunnelOnce(ctx, bin, targets); err == nil {
			return p, nil
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, err
}

func startStunnelOnce(ctx context.Context, bin string, targets map[string]string) (_ *stunnelPair, err error) {
	dir, err := os.MkdirTemp("", "pool-bench-stunnel-")
	if err != nil {
		return nil, err
	}
	p := &stunnelPair{Addr: map[string]string{}, dir: dir}
	defer func() {
		if err != nil {
			p.Close()
		}
	}()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := writeCert(certFile, keyFile); err != nil {
		return nil, err
	}
	names := make([]string, 0, len(targets))
	for name := range targets {
		names = append(names, name)
	}
	sort.Strings(names)
	// foreground: the log goes to stderr, where the TLS version and suite
	// are read; pid = (empty): no pid file; debug = info: the
	// "ciphersuite" line of each connection.
	head := "foreground = yes\npid =\ndebug = info\n"
	srvConf, cliConf := head, head
	for _, name := range names {
		sp, err := freePort()
		if err != nil {
			return nil, err
		}
		cp, err := freePort()
		if err != nil {
			return nil, err
		}
		srvConf += fmt.Sprintf("[%s]\naccept = %s\nconnect = %s\ncert = %s\nkey = %s\n", name, sp, targets[name], certFile, keyFile)
		cliConf += fmt.Sprintf("[%s]\nclient = yes\naccept = %s\nconnect = %s\nsni = %s\nverifyChain = yes\nCAfile = %s\ncheckHost = %s\n",
			name, cp, sp, certName, certFile, certName)
		p.Addr[name] = cp
	}
	if p.srv, err = startStunnelProc(ctx, bin, filepath.Join(dir, "server.conf"), srvConf); err != nil {
		return nil, fmt.Errorf("stunnel server: %w", err)
	}
	if p.cli, err = startStunnelProc(ctx, bin, filepath.Join(dir, "client.conf"), cliConf); err != nil {
		return nil, fmt.Errorf("stunnel client: %w", err)
	}
	p.Version = p.cli.version()
	return p, nil
}

// TLS is the protocol and cipher suite of the client's last connection, as
// stunnel logged it ("TLSv1.3 TLS_AES_256_GCM_SHA384"), or "" if none.
func (p *stunnelPair) TLS() string { return p.cli.tls() }

// CPU is the CPU time both stunnel processes have used so far.
func (p *stunnelPair) CPU() time.Duration { return p.cli.cpu() + p.srv.cpu() }

// Close stops both processes and removes the certificate and
// configuration.
func (p *stunnelPair) Close() {
	if p.cli != nil {
		p.cli.stop()
	}
	if p.srv != nil {
		p.srv.stop()
	}
	os.RemoveAll(p.dir)
}

// writeCert writes a fresh self-signed certificate and its key (PKCS #8)
// as PEM files readable by their owner only.
func writeCert(certFile, keyFile string) error {
	key, der, _, err := selfSigned()
	if err != nil {
		return err
	}
	k, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		return err
	}
	return os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: k}), 0o600)
}

// freePort returns a loopback address whose port was free a moment ago.
func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// stunnelProc is one stunnel process and what its log said.
type stunnelProc struct {
	cmd  *exec.Cmd
	logs chan struct{} // closed when stderr reaches EOF

	mu      sync.Mutex
	tail    []string // the last lines, for errors
	ver     []string
	lastTLS string
}

// stunnelReadyTimeout bounds the wait for stunnel to listen.
const stunnelReadyTimeout = 10 * time.Second

// Lines of stunnel's log: "TLSv1.3 ciphersuite: TLS_AES_256_GCM_SHA384
// (256-bit encryption)" for each connection; "stunnel 5.68 on ..." and
// "Running  with OpenSSL 3.0.19 ..." at start.
var (
	tlsLine     = regexp.MustCompile(`(TLSv[0-9.]+) ciphersuite: (\S+)`)
	versionLine = regexp.MustCompile(`(stunnel [0-9.]+) on |Running +with (OpenSSL [0-9][^ ]*)`)
)

func startStunnelProc(ctx context.Context, bin, confFile, conf string) (*stunnelProc, error) {
	if err := os.WriteFile(confFile, []byte(conf), 0o600); err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, confFile)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &stunnelProc{cmd: cmd, logs: make(chan struct{})}
	ready := make(chan struct{})
	go func() {
		defer close(s.logs)
		sc := bufio.NewScanner(stderr)
		once := sync.OnceFunc(func() { close(ready) })
		for sc.Scan() {
			line := sc.Text()
			s.mu.Lock()
			if len(s.tail) == 20 {
				s.tail = s.tail[1:]
			}
			s.tail = append(s.tail, line)
			if m := versionLine.FindStringSubmatch(line); m != nil && len(s.ver) < 2 {
				s.ver = append(s.ver, m[1]+m[2])
			}
			if m := tlsLine.FindStringSubmatch(line); m != nil {
				s.lastTLS = m[1] + " " + m[2]
			}
			s.mu.Unlock()
			if strings.Contains(line, "Accepting new connections") {
				once()
			}
		}
	}()
	t := time.NewTimer(stunnelReadyTimeout)
	defer t.Stop()
	select {
	case <-ready:
		return s, nil
	case <-s.logs:
		err = errors.New("exited before listening")
	case <-t.C:
		err = fmt.Errorf("not listening after %v", stunnelReadyTimeout)
	case <-ctx.Done():
		err = ctx.Err()
	}
	s.stop()
	return nil, fmt.Errorf("%s: %w; its log ends:\n%s", bin, err, s.logTail())
}

func (s *stunnelProc) logTail() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.tail, "\n")
}

func (s *stunnelProc) tls() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastTLS
}

func (s *stunnelProc) version() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.ver, ", ")
}

func (s *stunnelProc) cpu() time.Duration { return childCPU(s.cmd.Process.Pid) }

// stop asks stunnel to end (SIGTERM), kills it if it has not within 5 s,
// and reaps it.
func (s *stunnelProc) stop() {
	s.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(5 * time.Second)
	defer t.Stop()
	select {
	case <-s.logs:
	case <-t.C:
		s.cmd.Process.Kill()
		<-s.logs
	}
	s.cmd.Wait()
}
