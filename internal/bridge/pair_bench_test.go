package bridge

import (
	"io"
	"net"
	"testing"
)

// The benchmarks measure one bulk download through an in-process
// tcp2pool → pool2tcp pair (NewPair), and the same download over plain
// loopback TCP, to compare: go test -run '^$' -bench Download ./internal/bridge

const benchChunk = 64 << 20

// source is a target that sends benchChunk bytes on each connection.
func source(b *testing.B) net.Listener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go func() {
		buf := make([]byte, 256<<10)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				for n := 0; n < benchChunk; n += len(buf) {
					if _, err := c.Write(buf); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln
}

func download(b *testing.B, addr string) {
	buf := make([]byte, 256<<10)
	b.SetBytes(benchChunk)
	b.ResetTimer()
	for b.Loop() {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{c}, buf)
		c.Close()
		if err != nil || n != benchChunk {
			b.Fatalf("%d bytes, %v", n, err)
		}
	}
}

func BenchmarkDownloadDirect(b *testing.B) {
	ln := source(b)
	defer ln.Close()
	download(b, ln.Addr().String())
}

func BenchmarkDownloadBridge(b *testing.B) {
	ln := source(b)
	defer ln.Close()
	p, err := NewPair(ln.Addr().String(), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	download(b, p.Addr)
}
