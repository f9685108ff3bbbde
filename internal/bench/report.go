package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
)

// Report is the outcome of a run. Its JSON form is one object with an
// object per suite, so `jq .bulk.pool_mbps` reads the issue's
// "bulk.pool_mbps". Throughputs are MB/s with MB = 10^6 bytes ("mbps" is
// megabytes, not megabits, per second). A suite that did not run is absent.
type Report struct {
	Machine   Machine          `json:"machine"`
	Bulk      *BulkResult      `json:"bulk,omitempty"`
	Handshake *HandshakeResult `json:"handshake,omitempty"`
	Latency   *LatencyResult   `json:"latency,omitempty"`
	Memory    *MemoryResult    `json:"memory,omitempty"`
	Flood     *FloodResult     `json:"flood,omitempty"`
	Bridge    *BridgeResult    `json:"bridge,omitempty"`
}

// Machine describes where the figures were taken.
type Machine struct {
	Cores      int    `json:"cores"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	Go         string `json:"go"`
	OS         string `json:"os"`
	Arch       string `json:"arch"`
	CPU        string `json:"cpu,omitempty"`
	Date       string `json:"date"`
}

// BulkResult: one-way transfers of SizeBytes, sender and receiver in this
// process over loopback.
type BulkResult struct {
	SizeBytes        int64   `json:"size_bytes"`
	PoolMBps         float64 `json:"pool_mbps"`
	Pool8chMBps      float64 `json:"pool_8ch_mbps"`
	Pool8sessMBps    float64 `json:"pool_8sess_mbps"`
	TCPMBps          float64 `json:"tcp_mbps"`
	TLS13MBps        float64 `json:"tls13_mbps"`
	TLS13Suite       string  `json:"tls13_suite"`
	TLS12ChaChaMBps  float64 `json:"tls12_chacha_mbps"`
	CeilingMBps      float64 `json:"ceiling_mbps"`
	CeilingOpenMBps  float64 `json:"ceiling_open_mbps"`
	CeilingPacket    int     `json:"ceiling_packet_bytes"`
	PoolOverTLS12    float64 `json:"pool_over_tls12_chacha"`
	PoolOverTLS13    float64 `json:"pool_over_tls13"`
	PoolOverCeiling  float64 `json:"pool_over_ceiling"`
	Pool8chOverPool  float64 `json:"pool_8ch_over_pool"`
	PoolCPUPerMB     float64 `json:"pool_cpu_ms_per_mb"`
	TLS12CPUPerMB    float64 `json:"tls12_chacha_cpu_ms_per_mb"`
	PoolAllocsPerPkt float64 `json:"pool_allocs_per_packet"`
}

// HandshakeResult: CPU per handshake measured on each side's own thread,
// and end-to-end rates over real sockets.
type HandshakeResult struct {
	Difficulty       int     `json:"difficulty"`
	ServerCPUus      float64 `json:"server_cpu_us"`
	ClientCPUus      float64 `json:"client_cpu_us"`
	TLS13ServerCPUus float64 `json:"tls13_server_cpu_us"`
	TLS13ClientCPUus float64 `json:"tls13_client_cpu_us"`
	TLS13Group       string  `json:"tls13_group"`
	PerS             float64 `json:"per_s"`
	TLS13PerS        float64 `json:"tls13_per_s"`
	PoolWallMs       float64 `json:"pool_wall_ms"`
	TLS13WallMs      float64 `json:"tls13_wall_ms"`
	ServerOverTLS    float64 `json:"server_cpu_over_tls13"`
	// ServerCapacityPerS is what the server's CPU alone allows on all
	// cores: cores × 1 s / server CPU per handshake (the clients' puzzles
	// are theirs to pay).
	ServerCapacityPerS      float64 `json:"server_capacity_per_s"`
	TLS13ServerCapacityPerS float64 `json:"tls13_server_capacity_per_s"`
}

// LatencyResult: 64-byte request/response round trips.
type LatencyResult struct {
	Samples   int     `json:"samples"`
	PoolP50us float64 `json:"pool_p50_us"`
	PoolP99us float64 `json:"pool_p99_us"`
	TLSP50us  float64 `json:"tls_p50_us"`
	TLSP99us  float64 `json:"tls_p99_us"`
	TCPP50us  float64 `json:"tcp_p50_us"`
	TCPP99us  float64 `json:"tcp_p99_us"`
	PoolOverT float64 `json:"pool_p50_over_tls"`
}

// MemoryResult: idle established sessions held in this process.
type MemoryResult struct {
	Sessions                int     `json:"sessions"`
	Connections             int     `json:"connections"`
	HeapPerSessionBytes     float64 `json:"heap_per_session_bytes"`
	StackPerSessionBytes    float64 `json:"stack_per_session_bytes"`
	RSSPerSessionBytes      float64 `json:"rss_per_session_bytes"`
	GoroutinesPerSession    float64 `json:"goroutines_per_session"`
	SetupSeconds            float64 `json:"setup_s"`
	ServerInitRateDisabled  bool    `json:"server_init_rate_disabled"`
	HeapPerSessionKiBTarget float64 `json:"heap_per_session_target_kib"`
}

// FloodResult: the server under INITs that never complete.
type FloodResult struct {
	Inits             int     `json:"inits"`
	Connections       int     `json:"connections"`
	Answered          int64   `json:"answered"`
	InitsPerS         float64 `json:"inits_per_s"`
	HeapGrowthBytes   int64   `json:"heap_growth_bytes"`
	HeapPeakBytes     int64   `json:"heap_peak_bytes"`
	ClientConnectMs   float64 `json:"client_connect_ms"`
	ClientConnectMax  float64 `json:"client_connect_max_ms"`
	ClientConnects    int     `json:"client_connects"`
	ClientFailures    int     `json:"client_failures"`
	SourcePrefixes    int     `json:"source_prefixes"`
	Limited           Limited `json:"limited"`
	ListenerInitsPerS float64 `json:"listener_inits_per_s"`
	ListenerInits     int64   `json:"listener_inits"`
	ListenerHeapGrow  int64   `json:"listener_heap_growth_bytes"`
}

// Limited is the single-prefix flood against a listener with its default
// defenses: what the limiter let through, and a client of another prefix.
type Limited struct {
	Seconds         float64 `json:"seconds"`
	Attempts        int64   `json:"attempts"`
	Challenged      int64   `json:"challenged"`
	ChallengedPerS  float64 `json:"challenged_per_s"`
	Refused         int64   `json:"refused"`
	ClientConnectMs float64 `json:"client_connect_ms"`
	ClientOK        bool    `json:"client_ok"`
}

// BridgeResult: the same TCP traffic directly, through an in-process
// tcp2pool → pool2tcp bridge pair, and through a stunnel client → server
// pair. Download figures are the median of Rounds; CPU per MB counts every
// process involved (this one — HTTP server and bridge —, the client, and
// both stunnel processes).
type BridgeResult struct {
	SizeBytes       int64   `json:"size_bytes"`
	Rounds          int     `json:"rounds"`
	Client          string  `json:"client"` // "curl", or "go" when curl is missing
	Server          string  `json:"server"`
	DirectMBps      float64 `json:"direct_mbps"`
	PoolMBps        float64 `json:"pool_mbps"`
	StunnelMBps     float64 `json:"stunnel_mbps,omitempty"`
	PoolOverDirect  float64 `json:"pool_over_direct"`
	PoolOverStunnel float64 `json:"pool_over_stunnel,omitempty"`
	DirectCPUPerMB  float64 `json:"direct_cpu_ms_per_mb"`
	PoolCPUPerMB    float64 `json:"pool_cpu_ms_per_mb"`
	StunnelCPUPerMB float64 `json:"stunnel_cpu_ms_per_mb,omitempty"`
	Stunnel         string  `json:"stunnel,omitempty"`     // version
	StunnelTLS      string  `json:"stunnel_tls,omitempty"` // "TLSv1.3 TLS_AES_256_GCM_SHA384"
	StunnelNote     string  `json:"stunnel_note,omitempty"`
	// 64-byte round trips: Samples in a row on one connection, and as
	// many again spread over Parallel connections at once.
	Samples                 int     `json:"rt_samples"`
	DirectP50us             float64 `json:"direct_p50_us"`
	DirectP99us             float64 `json:"direct_p99_us"`
	PoolP50us               float64 `json:"pool_p50_us"`
	PoolP99us               float64 `json:"pool_p99_us"`
	StunnelP50us            float64 `json:"stunnel_p50_us,omitempty"`
	StunnelP99us            float64 `json:"stunnel_p99_us,omitempty"`
	PoolP50OverDirect       float64 `json:"pool_p50_over_direct"`
	PoolP50OverStunnel      float64 `json:"pool_p50_over_stunnel,omitempty"`
	Parallel                int     `json:"parallel_conns"`
	DirectParallelRPS       float64 `json:"direct_parallel_rps"`
	PoolParallelRPS         float64 `json:"pool_parallel_rps"`
	StunnelParallelRPS      float64 `json:"stunnel_parallel_rps,omitempty"`
	PoolParallelOverDirect  float64 `json:"pool_parallel_over_direct"`
	PoolParallelOverStunnel float64 `json:"pool_parallel_over_stunnel,omitempty"`
}

// WriteJSON writes r as one indented JSON object.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteTable writes r as the human-readable table.
func (r *Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	m := r.Machine
	fmt.Fprintf(tw, "pool bench — %d cores (GOMAXPROCS %d), %s, %s/%s, %s\n", m.Cores, m.GOMAXPROCS, m.Go, m.OS, m.Arch, m.Date)
	if m.CPU != "" {
		fmt.Fprintf(tw, "cpu: %s\n", m.CPU)
	}
	fmt.Fprintln(tw, "MB = 10^6 bytes; all traffic on loopback, both ends in this process")
	if b := r.Bulk; b != nil {
		fmt.Fprintf(tw, "\nbulk (%s one way per row)\tMB/s\tratio\n", sizeText(b.SizeBytes))
		fmt.Fprintf(tw, "  POOL, 1 channel\t%.0f\t\n", b.PoolMBps)
		fmt.Fprintf(tw, "  POOL, 8 channels, 1 session\t%.0f\t%.2f× 1 channel\n", b.Pool8chMBps, b.Pool8chOverPool)
		fmt.Fprintf(tw, "  POOL, 8 sessions\t%.0f\t\n", b.Pool8sessMBps)
		fmt.Fprintf(tw, "  plain TCP\t%.0f\t\n", b.TCPMBps)
		fmt.Fprintf(tw, "  crypto/tls 1.3 (%s)\t%.0f\tPOOL/TLS1.3 = %.2f\n", b.TLS13Suite, b.TLS13MBps, b.PoolOverTLS13)
		fmt.Fprintf(tw, "  crypto/tls 1.2 ECDHE-ChaCha20-Poly1305\t%.0f\tPOOL/TLS1.2-ChaCha = %.2f\n", b.TLS12ChaChaMBps, b.PoolOverTLS12)
		fmt.Fprintf(tw, "  ceiling: seal (ChaCha20-Poly1305 + HMAC-SHA256), 1 core, %d-byte packets\t%.0f\tPOOL/ceiling = %.2f\n", b.CeilingPacket, b.CeilingMBps, b.PoolOverCeiling)
		fmt.Fprintf(tw, "  (open, 1 core)\t%.0f\t\n", b.CeilingOpenMBps)
		fmt.Fprintf(tw, "  CPU per MB, POOL 1 channel / TLS 1.2 ChaCha (both ends)\t%.2f / %.2f ms\t\n", b.PoolCPUPerMB, b.TLS12CPUPerMB)
		fmt.Fprintf(tw, "  heap allocations per DATA packet (both ends)\t%.2f\t\n", b.PoolAllocsPerPkt)
	}
	if h := r.Handshake; h != nil {
		fmt.Fprintf(tw, "\nhandshake (puzzle d=%d)\tPOOL\tcrypto/tls 1.3 (%s)\n", h.Difficulty, h.TLS13Group)
		fmt.Fprintf(tw, "  server CPU per handshake\t%.0f µs\t%.0f µs\n", h.ServerCPUus, h.TLS13ServerCPUus)
		fmt.Fprintf(tw, "  client CPU per handshake\t%.0f µs\t%.0f µs\n", h.ClientCPUus, h.TLS13ClientCPUus)
		fmt.Fprintf(tw, "  server capacity, handshakes/s on all cores (CPU bound)\t%.0f\t%.0f\n", h.ServerCapacityPerS, h.TLS13ServerCapacityPerS)
		fmt.Fprintf(tw, "  handshakes/s, one at a time, real sockets\t%.0f\t%.0f\n", h.PerS, h.TLS13PerS)
		fmt.Fprintf(tw, "  wall time per handshake\t%.2f ms\t%.2f ms\n", h.PoolWallMs, h.TLS13WallMs)
		fmt.Fprintf(tw, "  server CPU POOL/TLS\t%.2f\t\n", h.ServerOverTLS)
	}
	if l := r.Latency; l != nil {
		fmt.Fprintf(tw, "\nlatency (64-byte round trip, %d samples)\tp50\tp99\n", l.Samples)
		fmt.Fprintf(tw, "  POOL channel\t%.1f µs\t%.1f µs\n", l.PoolP50us, l.PoolP99us)
		fmt.Fprintf(tw, "  crypto/tls 1.3\t%.1f µs\t%.1f µs\n", l.TLSP50us, l.TLSP99us)
		fmt.Fprintf(tw, "  plain TCP\t%.1f µs\t%.1f µs\n", l.TCPP50us, l.TCPP99us)
		fmt.Fprintf(tw, "  POOL/TLS p50\t%.2f\t\n", l.PoolOverT)
	}
	if m := r.Memory; m != nil {
		fmt.Fprintf(tw, "\nmemory (%d idle sessions on %d connections)\tper session\t\n", m.Sessions, m.Connections)
		fmt.Fprintf(tw, "  heap (after GC)\t%.0f B (%.1f KiB)\t\n", m.HeapPerSessionBytes, m.HeapPerSessionBytes/1024)
		fmt.Fprintf(tw, "  goroutine stacks\t%.0f B\t\n", m.StackPerSessionBytes)
		fmt.Fprintf(tw, "  RSS\t%.0f B\t\n", m.RSSPerSessionBytes)
		fmt.Fprintf(tw, "  goroutines\t%.1f\t\n", m.GoroutinesPerSession)
	}
	if f := r.Flood; f != nil {
		fmt.Fprintf(tw, "\nflood (%d INITs that never complete, %d TCP connections, %d source /24s)\t\t\n", f.Inits, f.Connections, f.SourcePrefixes)
		fmt.Fprintf(tw, "  CHALLENGEs answered per second (per-prefix limiter off)\t%.0f\t\n", f.InitsPerS)
		fmt.Fprintf(tw, "  server heap growth over the flood (after GC) / peak\t%s / %s\t\n", signedBytes(f.HeapGrowthBytes), sizeText(f.HeapPeakBytes))
		fmt.Fprintf(tw, "  a real client's handshake meanwhile, p50 / max\t%.1f / %.1f ms\t(%d tries, %d failed)\n", f.ClientConnectMs, f.ClientConnectMax, f.ClientConnects, f.ClientFailures)
		fmt.Fprintf(tw, "  one INIT per connection into the listener (as an attacker must)\t%.0f INITs/s\theap %s over %d\n", f.ListenerInitsPerS, signedBytes(f.ListenerHeapGrow), f.ListenerInits)
		l := f.Limited
		fmt.Fprintf(tw, "  single-/24 flood, default defenses, %.0f s: attempts / challenged / refused\t%d / %d / %d\t%.0f challenged/s\n", l.Seconds, l.Attempts, l.Challenged, l.Refused, l.ChallengedPerS)
		ok := "connected"
		if !l.ClientOK {
			ok = "FAILED"
		}
		fmt.Fprintf(tw, "  meanwhile a client from another /24\t%s in %.1f ms\t\n", ok, l.ClientConnectMs)
	}
	if b := r.Bridge; b != nil {
		writeBridge(tw, b)
	}
	return tw.Flush()
}

func writeBridge(w io.Writer, b *BridgeResult) {
	client := "curl"
	if b.Client != "curl" {
		client = "Go's HTTP client (curl not installed)"
	}
	fmt.Fprintf(w, "\nbridge: %s downloads %s, median of %d\tMB/s\tCPU per MB, all processes\n", client, sizeText(b.SizeBytes), b.Rounds)
	fmt.Fprintf(w, "  direct TCP\t%.0f\t%.2f ms\n", b.DirectMBps, b.DirectCPUPerMB)
	fmt.Fprintf(w, "  POOL bridge (tcp2pool → pool2tcp)\t%.0f\t%.2f ms\n", b.PoolMBps, b.PoolCPUPerMB)
	if b.StunnelMBps > 0 {
		fmt.Fprintf(w, "  stunnel client → stunnel server\t%.0f\t%.2f ms\n", b.StunnelMBps, b.StunnelCPUPerMB)
		fmt.Fprintf(w, "  bridge/direct, bridge/stunnel\t%.2f, %.2f\t\n", b.PoolOverDirect, b.PoolOverStunnel)
	} else {
		fmt.Fprintf(w, "  stunnel\t—\t%s\n", b.StunnelNote)
		fmt.Fprintf(w, "  bridge/direct\t%.2f\t\n", b.PoolOverDirect)
	}
	fmt.Fprintf(w, "  64-byte round trips: p50 / p99 (%d in a row)\t%d connections, round trips/s\t\n", b.Samples, b.Parallel)
	fmt.Fprintf(w, "  direct TCP\t%.1f / %.1f µs\t%.0f\n", b.DirectP50us, b.DirectP99us, b.DirectParallelRPS)
	fmt.Fprintf(w, "  POOL bridge\t%.1f / %.1f µs\t%.0f\n", b.PoolP50us, b.PoolP99us, b.PoolParallelRPS)
	if b.StunnelP50us > 0 {
		fmt.Fprintf(w, "  stunnel\t%.1f / %.1f µs\t%.0f\n", b.StunnelP50us, b.StunnelP99us, b.StunnelParallelRPS)
		fmt.Fprintf(w, "  bridge/direct, bridge/stunnel\tp50 %.2f, %.2f\trate %.2f, %.2f\n", b.PoolP50OverDirect, b.PoolP50OverStunnel, b.PoolParallelOverDirect, b.PoolParallelOverStunnel)
	} else {
		fmt.Fprintf(w, "  bridge/direct\tp50 %.2f\trate %.2f\n", b.PoolP50OverDirect, b.PoolParallelOverDirect)
	}
	fmt.Fprintf(w, "  (server: %s", b.Server)
	if b.Stunnel != "" {
		fmt.Fprintf(w, "; %s, %s", b.Stunnel, b.StunnelTLS)
	}
	fmt.Fprintf(w, ")\n")
}

func sizeText(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

func signedBytes(n int64) string {
	if n < 0 {
		return "-" + sizeText(-n)
	}
	return "+" + sizeText(n)
}
