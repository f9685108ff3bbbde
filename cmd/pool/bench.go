package main

import (
	"fmt"
	"os"
	"runtime/pprof"
	"time"

	"github.com/pool-go/pool/internal/bench"
	"github.com/spf13/cobra"
)

func newBenchCmd() *cobra.Command {
	var (
		suites     string
		size       int64
		duration   time.Duration
		sessions   int
		floodInits int
		jsonOut    bool
		quick      bool
		cpuProfile string
	)
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure POOL against plain TCP, crypto/tls and stunnel on loopback",
		Long: `bench measures, in one process over real loopback sockets, POOL next to
plain TCP and Go's crypto/tls, and the TCP bridge beside stunnel:

  bulk       one-way transfers (--size each, 1 GiB by default): POOL on one
             channel, on 8 channels of one session and on 8 sessions; plain
             TCP; TLS 1.3 (default suite); TLS 1.2 forced to
             ECDHE-ECDSA-ChaCha20-Poly1305; and the crypto ceiling, POOL's
             seal (ChaCha20-Poly1305 + HMAC-SHA256) of full-size packets on
             one core. Prints POOL/TLS and POOL/ceiling ratios.
  handshake  server and client CPU per handshake (puzzle at difficulty 16),
             against a crypto/tls 1.3 server, and handshakes per second
  latency    64-byte request/response round trips, p50 and p99
  memory     heap, stacks and RSS per idle session with --sessions open
  flood      1,000,000 INITs that never complete, pipelined over 64 TCP
             connections: CHALLENGEs per second, heap growth, and a real
             client's handshake time meanwhile; then one INIT per
             connection against a default listener, and a single-/24 flood
             against its rate limits
  bridge     the TCP bridge (tcp2pool → pool2tcp, in this process) beside
             plain TCP and a stunnel client → server pair (Debian's
             stunnel4; its row is skipped, with a note, when it is not
             installed): curl downloads --size bytes from an HTTP server in
             this process (Go's HTTP client when curl is missing; the
             report says which), median of 3, MB/s and CPU per MB of every
             process; then 64-byte round trips, p50/p99 on one connection
             and round trips/s over 50 connections at once

The table goes to stdout, progress to stderr. MB = 10^6 bytes. With --json
stdout is one JSON object with an object per suite (jq .bulk.pool_mbps).
A full run takes a few minutes; docs/PERFORMANCE.md explains the method and
shows a run on this project's 2-core machine.

Examples:

  pool bench
  pool bench --suite bulk,latency --size 268435456
  pool bench --json | jq .handshake
  pool bench --suite bulk --cpuprofile bulk.pprof   # then: go tool pprof`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			list, err := bench.ParseSuites(suites)
			if err != nil {
				return usagef("--suite: %v", err)
			}
			o := bench.Defaults()
			if quick {
				o = bench.Quick()
			}
			o.Suites = list
			if cmd.Flags().Changed("size") {
				if size < 1<<20 {
					return usagef("--size must be at least 1 MiB (1048576), got %d", size)
				}
				o.Size = size
			}
			if cmd.Flags().Changed("duration") {
				if duration <= 0 {
					return usagef("--duration must be positive, got %v", duration)
				}
				o.Duration = duration
			}
			if cmd.Flags().Changed("sessions") {
				if sessions < 2 {
					return usagef("--sessions must be at least 2, got %d", sessions)
				}
				o.Sessions = sessions
			}
			if cmd.Flags().Changed("inits") {
				if floodInits < o.FloodConns {
					return usagef("--inits must be at least %d, got %d", o.FloodConns, floodInits)
				}
				o.FloodInits = floodInits
			}
			o.Progress = cmd.ErrOrStderr()
			if cpuProfile != "" {
				f, err := os.Create(cpuProfile)
				if err != nil {
					return err
				}
				defer f.Close()
				if err := pprof.StartCPUProfile(f); err != nil {
					return err
				}
				defer pprof.StopCPUProfile()
			}
			rep, err := bench.Run(cmd.Context(), o)
			if err != nil {
				return fmt.Errorf("bench: %w", err)
			}
			if jsonOut {
				return rep.WriteJSON(cmd.OutOrStdout())
			}
			return rep.WriteTable(cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringVar(&suites, "suite", "all", "comma-separated suites: bulk, handshake, latency, memory, flood, bridge")
	f.Int64Var(&size, "size", 1<<30, "bytes per bulk transfer and per bridge download")
	f.DurationVar(&duration, "duration", 3*time.Second, "how long each timed loop runs (ceiling, handshakes, single-prefix flood)")
	f.IntVar(&sessions, "sessions", 10000, "idle sessions the memory suite holds")
	f.IntVar(&floodInits, "inits", 1_000_000, "INITs the flood sends")
	f.BoolVar(&jsonOut, "json", false, "print one JSON object instead of the table")
	f.BoolVar(&quick, "quick", false, "tiny sizes: every suite in seconds (a smoke test, not a measurement)")
	f.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of the run to this file (go tool pprof)")
	return cmd
}
