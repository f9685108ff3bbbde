// Package bench measures POOL against plain TCP and Go's crypto/tls on
// loopback, in one process: bulk throughput, handshake cost, small-message
// latency, memory per idle session, the server under an INIT flood (DESIGN
// §5, docs/PERFORMANCE.md), and the TCP bridge against plain TCP and
// stunnel (issue 7). It backs "pool bench".
package bench

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"
	"time"
)

// Suites, in the order they run.
var Suites = []string{"bulk", "handshake", "latency", "memory", "flood", "bridge"}

// Options choose what runs and how long. The zero value of a field takes
// its default (Defaults); Quick shrinks everything so a test can run every
// suite in seconds.
type Options struct {
	Suites []string
	// Size is the bulk transfer per measurement in bytes (1 GiB), and the
	// bridge suite's download.
	Size int64
	// Duration bounds the timed loops: the crypto ceiling, the handshake
	// and latency loops (each runs at least this long, or its count).
	Duration time.Duration
	// Handshakes is how many handshakes each handshake measurement runs.
	Handshakes int
	// RoundTrips is the number of 64-byte round trips per latency series
	// (and per bridge route, in a row and again spread over 50 parallel
	// connections).
	RoundTrips int
	// Sessions is the number of idle session objects held by the memory
	// suite (both ends of each loopback session live in this process).
	Sessions int
	// FloodInits is the number of INITs the flood sends; FloodConns the
	// TCP connections they are pipelined over.
	FloodInits int
	FloodConns int
	// Progress, if set, receives a line per step and, during long steps,
	// a line every couple of seconds (stderr for the command).
	Progress io.Writer
}

// Defaults are the figures of the issue: 1 GiB per transfer, 10,000 idle
// sessions, 1,000,000 INITs over 64 connections.
func Defaults() Options {
	return Options{Suites: Suites, Size: 1 << 30, Duration: 3 * time.Second, Handshakes: 1000,
		RoundTrips: 20000, Sessions: 10000, FloodInits: 1_000_000, FloodConns: 64}
}

// Quick is the smoke-test scale: every suite, a few seconds in all.
func Quick() Options {
	return Options{Suites: Suites, Size: 4 << 20, Duration: 50 * time.Millisecond, Handshakes: 5,
		RoundTrips: 50, Sessions: 20, FloodInits: 5000, FloodConns: 8}
}

func (o *Options) fill() {
	d := Defaults()
	if len(o.Suites) == 0 {
		o.Suites = d.Suites
	}
	if o.Size <= 0 {
		o.Size = d.Size
	}
	if o.Duration <= 0 {
		o.Duration = d.Duration
	}
	if o.Handshakes <= 0 {
		o.Handshakes = d.Handshakes
	}
	if o.RoundTrips <= 0 {
		o.RoundTrips = d.RoundTrips
	}
	if o.Sessions <= 0 {
		o.Sessions = d.Sessions
	}
	if o.FloodInits <= 0 {
		o.FloodInits = d.FloodInits
	}
	if o.FloodConns <= 0 {
		o.FloodConns = d.FloodConns
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
}

// ParseSuites reads a comma-separated list of suite names.
func ParseSuites(s string) ([]string, error) {
	if strings.TrimSpace(s) == "" || s == "all" {
		return Suites, nil
	}
	var out []string
	for _, name := range strings.Split(s, ",") {
		name = strings.TrimSpace(name)
		if !slices.Contains(Suites, name) {
			return nil, fmt.Errorf("unknown suite %q (suites: %s)", name, strings.Join(Suites, ", "))
		}
		if !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	return out, nil
}

// Run runs the chosen suites in order and returns their figures.
func Run(ctx context.Context, o Options) (*Report, error) {
	o.fill()
	r := &Report{Machine: machineInfo()}
	p := progress{w: o.Progress}
	for _, name := range Suites {
		if !slices.Contains(o.Suites, name) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return r, err
		}
		start := time.Now()
		p.printf("%s: starting", name)
		var err error
		switch name {
		case "bulk":
			r.Bulk, err = runBulk(ctx, &o, p.sub(name))
		case "handshake":
			r.Handshake, err = runHandshake(ctx, &o, p.sub(name))
		case "latency":
			r.Latency, err = runLatency(ctx, &o, p.sub(name))
		case "memory":
			r.Memory, err = runMemory(ctx, &o, p.sub(name))
		case "flood":
			r.Flood, err = runFlood(ctx, &o, p.sub(name))
		case "bridge":
			r.Bridge, err = runBridge(ctx, &o, p.sub(name))
		}
		if err != nil {
			if ctx.Err() != nil {
				return r, fmt.Errorf("interrupted during the %s suite", name)
			}
			return r, fmt.Errorf("%s suite: %w", name, err)
		}
		p.printf("%s: done in %v", name, time.Since(start).Round(100*time.Millisecond))
		runtime.GC()
	}
	return r, nil
}

func machineInfo() Machine {
	return Machine{Cores: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0), Go: runtime.Version(),
		OS: runtime.GOOS, Arch: runtime.GOARCH, CPU: cpuModel(), Date: time.Now().UTC().Format(time.RFC3339)}
}

// progress writes "bench: <suite>: ..." lines.
type progress struct {
	w      io.Writer
	prefix string
}

func (p progress) printf(format string, args ...any) {
	fmt.Fprintf(p.w, "bench: "+p.prefix+format+"\n", args...)
}

func (p progress) sub(name string) progress { return progress{w: p.w, prefix: p.prefix + name + ": "} }

// ticker prints what during a long step every 2 s until stop is called.
func (p progress) ticker(what func() string) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(2 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				p.printf("%s", what())
			}
		}
	}()
	return func() { close(done); <-finished }
}
