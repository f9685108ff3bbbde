//go:build integration

package pool_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/pool-go/pool"
)

// The integration suite runs two real processes on loopback: this test
// binary re-executes itself as the server peer. It is built with the
// "integration" tag and runs without -race (make integration).

const peerEnv = "POOL_INTEGRATION_PEER"

// TestIntegrationPeerProcess is the server half; it runs only when the
// parent sets peerEnv to the client key it must allow.
func TestIntegrationPeerProcess(t *testing.T) {
	allowed := os.Getenv(peerEnv)
	if allowed == "" {
		t.Skip("server half of the two-process integration test; started by TestIntegrationTwoProcesses")
	}
	key, err := pool.ParsePublicKey(allowed)
	if err != nil {
		t.Fatal(err)
	}
	id := newIdentity(t)
	// The peer rekeys on its own every 3 s while the client forces one
	// every 2 s, so rekeys from both sides (and collisions) meet the
	// transfers.
	l, err := pool.Listen("127.0.0.1:0", &pool.Config{Identity: id, RekeyInterval: 3 * time.Second,
		Authorize: func(k pool.PublicKey) bool { return k == key }})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	fmt.Printf("PEER %s %s\n", l.Addr(), id.Public)
	s, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	// Every channel: hash what arrives, answer with the hash.
	for {
		ch, err := s.AcceptChannel(context.Background())
		if err != nil {
			return // the client closed the session
		}
		go func() {
			h := sha256.New()
			io.Copy(h, ch)
			ch.Write(h.Sum(nil))
			ch.CloseWrite()
		}()
	}
}

func TestIntegrationTwoProcesses(t *testing.T) {
	cli := newIdentity(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestIntegrationPeerProcess$", "-test.timeout=10m")
	cmd.Env = append(os.Environ(), peerEnv+"="+cli.Public.String())
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	lines := bufio.NewScanner(out)
	var addr, keyText string
	for lines.Scan() {
		if f := strings.Fields(lines.Text()); len(f) == 3 && f[0] == "PEER" {
			addr, keyText = f[1], f[2]
			break
		}
	}
	go io.Copy(io.Discard, out)
	key, err := pool.ParsePublicKey(keyText)
	if err != nil {
		t.Fatalf("peer process did not report its key: %v", err)
	}
	start := time.Now()
	s, err := pool.Dial(context.Background(), addr, key, &pool.Config{Identity: cli})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("handshake with the peer process: %v", time.Since(start))
	stopRekeys := make(chan struct{})
	rekeysDone := make(chan struct{})
	go func() { // a forced rekey every 2 seconds (issue: living session)
		defer close(rekeysDone)
		tick := time.NewTicker(2 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-tick.C:
				if err := s.Rekey(); err != nil {
					return
				}
			case <-stopRekeys:
				return
			}
		}
	}()

	t.Run("1GiB one channel", func(t *testing.T) {
		const total = 1 << 30
		ch, err := s.OpenChannel(0)
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		buf := make([]byte, 1<<20)
		rng := rand.NewChaCha8([32]byte{1})
		start := time.Now()
		for sent := 0; sent < total; sent += len(buf) {
			rng.Read(buf)
			h.Write(buf)
			if _, err := ch.Write(buf); err != nil {
				t.Fatal(err)
			}
		}
		ch.CloseWrite()
		got, err := io.ReadAll(ch)
		if err != nil {
			t.Fatal(err)
		}
		el := time.Since(start)
		if hex.EncodeToString(got) != hex.EncodeToString(h.Sum(nil)) {
			t.Fatalf("SHA-256 mismatch after 1 GiB: peer %x, sent %x", got, h.Sum(nil))
		}
		t.Logf("1 GiB verified in %v (%.0f Mbit/s including hashing and random generation)", el, float64(total)*8/el.Seconds()/1e6)
	})

	t.Run("200 channels x 1000 messages", func(t *testing.T) {
		start := time.Now()
		if err := manyChannelsNoServer(s, 200, 1000); err != nil {
			t.Fatal(err)
		}
		t.Logf("200 x 1000 messages verified in %v", time.Since(start))
	})

	close(stopRekeys)
	<-rekeysDone
	st := s.Stats()
	t.Logf("rekeys during the run: %d (epoch %d)", st.Rekeys, st.Epoch)
	if st.Rekeys < 2 {
		t.Errorf("only %d rekeys during the transfers; want one every 2 s", st.Rekeys)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("peer process: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("peer process did not exit after the session closed")
	}
}
