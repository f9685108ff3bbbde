package node

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/pool-go/pool"
	"github.com/pool-go/pool/internal/addr"
	"github.com/pool-go/pool/internal/journal"
	"github.com/pool-go/pool/internal/selftest"
	"github.com/pool-go/pool/internal/transport"
)

// Defaults of the configuration file (docs/OPERATIONS.md, "Configuration").
const (
	DefaultListen       = ":9253"
	DefaultControl      = "/run/pool/control.sock"
	DefaultLogLevel     = "info"
	DefaultIdleTimeout  = 30 * time.Second
	DefaultReconnectMin = time.Second
	DefaultReconnectMax = time.Minute
	// DefaultSelftestInterval is how often the running node repeats its
	// runtime-integrity self-tests (draft §17.3).
	DefaultSelftestInterval = selftest.DefaultEvery
	// MinSelftestInterval and MaxSelftestInterval bound selftest_interval:
	// a round costs about a millisecond of CPU, so the floor keeps it
	// under 0.1 % of a core; the ceiling bounds how long a tampered
	// primitive can go unnoticed.
	MinSelftestInterval = time.Second
	MaxSelftestInterval = time.Hour
	// DefaultHeartbeatInterval is how often a session sends its telemetry
	// HEARTBEAT (draft §8). MinHeartbeatInterval and MaxHeartbeatInterval
	// bound heartbeat_interval: below the floor the heartbeats cost more
	// than they tell; above the ceiling the figures of "pool telemetry"
	// go stale, and the sessions' INTEGRITY checks, which wait for the
	// peer's first heartbeat, start late.
	DefaultHeartbeatInterval = 5 * time.Second
	MinHeartbeatInterval     = 100 * time.Millisecond
	MaxHeartbeatInterval     = time.Minute
	// DefaultMetricsPort is the usual port of metrics_listen, which is off
	// unless configured.
	DefaultMetricsPort = 9254

	// maxConfigFile bounds what LoadConfig reads.
	maxConfigFile = 1 << 20
	// maxSocketPath is the longest Unix socket path every platform takes
	// (sun_path is 108 bytes on Linux, 104 on the BSDs and macOS).
	maxSocketPath = 103
)

// Config is a node's validated configuration: what LoadConfig made of the
// TOML file, with defaults applied, relative paths resolved against the
// file's directory, and the identity and allow-list loaded.
type Config struct {
	File string // the file it was read from (absolute)

	IdentityFile string
	Identity     *pool.Identity

	// Listen is the TCP overlay address; "" means the node does not listen.
	Listen string

	AuthorizedPeersFile string
	AuthorizedPeers     *pool.AllowList // nil unless AuthorizedPeersFile is set
	authorizedDigest    [32]byte        // of the allow-list file, to tell a reload what changed
	AllowAny            bool

	Control     string
	LogLevel    slog.Level
	IdleTimeout time.Duration

	ReconnectMin, ReconnectMax time.Duration

	// SelftestInterval is the period of the self-tests the running node
	// repeats (the known-answer tests and a probe of the random source);
	// Start also runs them once before anything else.
	SelftestInterval time.Duration

	// HeartbeatInterval is how often each session sends its telemetry
	// HEARTBEAT (pool.Config.HeartbeatInterval): the peer's report that
	// "pool telemetry" shows is at most about this old.
	HeartbeatInterval time.Duration

	// MetricsListen is the host:port of the Prometheus endpoint
	// (/metrics, /healthz); "" (the default) means off.
	MetricsListen string

	// Journal is the change journal file (draft §10); "" when the
	// configuration disables it (journal = ""). By default it is next to
	// the identity file: identity.key -> identity.journal.
	Journal string
	// JournalMaxSize caps the journal file (bytes); past it, entries are
	// lost and reported as JOURNAL_FULL.
	JournalMaxSize int64
	// JournalPublish is where the chain head is published ([journal_publish]).
	JournalPublish JournalPublish

	Peers []Peer

	// Bridges are the [[bridge.tcp2pool]] and [[bridge.pool2tcp]] sections
	// (docs/OPERATIONS.md, BRIDGING TCP).
	Bridges Bridges
	// Shim is the [shim] section (the LD_PRELOAD shim's socket and
	// routes); nil when absent.
	Shim *Shim
}

// Peer is a node this node keeps a session to.
type Peer struct {
	Name    string // optional label
	Address string // host:port
	Key     pool.PublicKey
}

// label names the peer in logs: its name, or its key.
func (p *Peer) label() string {
	if p.Name != "" {
		return p.Name
	}
	return p.Key.String()
}

// ConfigError is a configuration the node refuses: it names the file, the
// line when it is known, the key and the reason.
type ConfigError struct {
	File   string
	Line   int    // 0 when unknown
	Key    string // e.g. "peer[2].address"; "" when the error is not about one key
	Reason string
}

func (e *ConfigError) Error() string {
	var b strings.Builder
	b.WriteString("config ")
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteString(":" + strconv.Itoa(e.Line))
	}
	b.WriteString(": ")
	if e.Key != "" {
		b.WriteString(e.Key + ": ")
	}
	b.WriteString(e.Reason)
	return b.String()
}

// rawConfig is the file's schema. Every key must land in a field here:
// anything else is an unknown key and refused.
type rawConfig struct {
	Identity          string  `toml:"identity"`
	Listen            string  `toml:"listen"`
	AuthorizedPeers   string  `toml:"authorized_peers"`
	AllowAny          bool    `toml:"allow_any"`
	Control           string  `toml:"control"`
	LogLevel          string  `toml:"log_level"`
	IdleTimeout       string  `toml:"idle_timeout"`
	ReconnectMin      string  `toml:"reconnect_min"`
	ReconnectMax      string  `toml:"reconnect_max"`
	SelftestInterval  string  `toml:"selftest_interval"`
	HeartbeatInterval string  `toml:"heartbeat_interval"`
	MetricsListen     string  `toml:"metrics_listen"`
	Journal           *string `toml:"journal"`
	JournalMaxSize    *int64  `toml:"journal_max_size"`
	JournalPublish    struct {
		File     string `toml:"file"`
		Syslog   string `toml:"syslog"`
		HTTP     string `toml:"http"`
		Interval string `toml:"interval"`
	} `toml:"journal_publish"`
	Peer   []rawPeer `toml:"peer"`
	Bridge struct {
		TCP2Pool []rawTCP2Pool `toml:"tcp2pool"`
		Pool2TCP []rawPool2TCP `toml:"pool2tcp"`
	} `toml:"bridge"`
	Shim *rawShim `toml:"shim"`
}

type rawPeer struct {
	Name    string `toml:"name"`
	Address string `toml:"address"`
	Key     string `toml:"key"`
}

// knownKeys are the keys of the schema, for "did you mean" suggestions.
var knownKeys = []string{"identity", "listen", "authorized_peers", "allow_any", "control",
	"log_level", "idle_timeout", "reconnect_min", "reconnect_max", "selftest_interval", "heartbeat_interval",
	"metrics_listen", "journal", "journal_max_size", "journal_publish", "peer", "bridge", "shim"}

var knownPeerKeys = []string{"name", "address", "key"}

var knownPublishKeys = []string{"file", "syslog", "http", "interval"}

// LoadConfig reads and validates the configuration file at path. Every
// error is a *ConfigError naming the line (when it can be known) and the
// reason.
func LoadConfig(path string) (*Config, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		abs = path
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, &ConfigError{File: path, Reason: "cannot read: " + unwrapPathError(err)}
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.IsDir() {
		return nil, &ConfigError{File: path, Reason: "is a directory, not a configuration file"}
	}
	data, err := io.ReadAll(io.LimitReader(f, maxConfigFile+1))
	if err != nil {
		return nil, &ConfigError{File: path, Reason: "cannot read: " + unwrapPathError(err)}
	}
	if len(data) > maxConfigFile {
		return nil, &ConfigError{File: path, Reason: fmt.Sprintf("larger than %d bytes; is this the right file?", maxConfigFile)}
	}
	cfg, err := parseConfig(data, path, filepath.Dir(abs))
	if err != nil {
		return nil, err
	}
	cfg.File = abs
	return cfg, nil
}

func unwrapPathError(err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// typeErrRE matches the library's type errors, which are not ParseErrors:
// `toml: line 3 (last key "listen"): incompatible types: ...`.
var typeErrRE = regexp.MustCompile(`^toml: (?:line (\d+) )?\(last key "((?:[^"\\]|\\.)*)"\): (.*)$`)

// parseConfig parses and validates data; name prefixes errors and dir
// resolves relative paths.
func parseConfig(data []byte, name, dir string) (*Config, error) {
	lines := indexKeys(string(data))
	cerr := func(key, format string, args ...any) error {
		return &ConfigError{File: name, Line: lines.line(key), Key: key, Reason: fmt.Sprintf(format, args...)}
	}

	var raw rawConfig
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&raw)
	if err != nil {
		var perr toml.ParseError
		if errors.As(err, &perr) {
			// A syntax error: the library knows the line.
			key := lines.keyAt(perr.Position.Line)
			return nil, &ConfigError{File: name, Line: perr.Position.Line, Key: key,
				Reason: "syntax error: " + perr.Message}
		}
		if m := typeErrRE.FindStringSubmatch(err.Error()); m != nil {
			line, _ := strconv.Atoi(m[1])
			key := m[2]
			if line > 0 {
				if k := lines.keyAt(line); k != "" {
					key = k
				}
			} else {
				line = lines.line(key)
			}
			return nil, &ConfigError{File: name, Line: line, Key: key, Reason: humanTypeError(m[3])}
		}
		return nil, &ConfigError{File: name, Reason: strings.TrimPrefix(err.Error(), "toml: ")}
	}
	if und := md.Undecoded(); len(und) > 0 {
		k := und[0]
		key, line := lines.find(k)
		known := knownKeys
		if len(k) > 1 && k[0] == "peer" {
			known = knownPeerKeys
		}
		if len(k) > 1 && k[0] == "journal_publish" {
			known = knownPublishKeys
		}
		if len(k) > 1 && k[0] == "bridge" {
			known = knownBridgeKeys(k)
		}
		if len(k) > 1 && k[0] == "shim" {
			known = knownShimKeysOf(k)
		}
		reason := fmt.Sprintf("unknown key %q", k[len(k)-1])
		if s := suggest(k[len(k)-1], known); s != "" {
			reason += fmt.Sprintf(" (did you mean %q?)", s)
		}
		if len(und) > 1 {
			reason += fmt.Sprintf(" (and %d more unknown)", len(und)-1)
		}
		return nil, &ConfigError{File: name, Line: line, Key: parentKey(key), Reason: reason}
	}

	cfg := &Config{
		Listen: DefaultListen, Control: DefaultControl, IdleTimeout: DefaultIdleTimeout,
		ReconnectMin: DefaultReconnectMin, ReconnectMax: DefaultReconnectMax,
		SelftestInterval: DefaultSelftestInterval, HeartbeatInterval: DefaultHeartbeatInterval,
	}
	resolve := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(dir, p)
	}

	// identity
	if !md.IsDefined("identity") || strings.TrimSpace(raw.Identity) == "" {
		return nil, cerr("identity", `required: the node's key file (create one with "pool keygen --out FILE")`)
	}
	cfg.IdentityFile = resolve(raw.Identity)
	id, err := pool.LoadIdentity(cfg.IdentityFile)
	if err != nil {
		return nil, cerr("identity", "%s", strings.TrimPrefix(err.Error(), "pool: "))
	}
	cfg.Identity = id

	// listen
	if md.IsDefined("listen") {
		switch l := strings.TrimSpace(raw.Listen); l {
		case "", "off":
			cfg.Listen = ""
		default:
			if _, err := transport.NormalizeAddress(l); err != nil {
				return nil, cerr("listen", "%v (want host:port, :port or host)", err)
			}
			cfg.Listen = l
		}
	}

	// authorized_peers, allow_any
	hasFile := md.IsDefined("authorized_peers")
	if hasFile && strings.TrimSpace(raw.AuthorizedPeers) == "" {
		return nil, cerr("authorized_peers", "empty path (remove the key, or name the file of allowed keys)")
	}
	cfg.AllowAny = raw.AllowAny
	switch {
	case hasFile && raw.AllowAny:
		return nil, cerr("allow_any", "authorized_peers and allow_any = true both set; choose one (which peers may connect?)")
	case cfg.Listen != "" && !hasFile && !raw.AllowAny:
		return nil, cerr("listen", `the node listens (listen = %q) but says nobody may connect: set authorized_peers = "FILE" (one public key per line) or allow_any = true, or listen = "off"`, cfg.Listen)
	}
	if hasFile {
		cfg.AuthorizedPeersFile = resolve(raw.AuthorizedPeers)
		list, digest, err := loadAllowList(cfg.AuthorizedPeersFile)
		if err != nil {
			return nil, cerr("authorized_peers", "%v", err)
		}
		cfg.AuthorizedPeers, cfg.authorizedDigest = list, digest
	}

	// control
	if md.IsDefined("control") {
		c := strings.TrimSpace(raw.Control)
		if c == "" {
			return nil, cerr("control", "empty path (remove the key for the default %s)", DefaultControl)
		}
		cfg.Control = resolve(c)
	}
	if len(cfg.Control) > maxSocketPath {
		return nil, cerr("control", "path is %d bytes long; Unix socket paths must be at most %d", len(cfg.Control), maxSocketPath)
	}

	// log_level
	lvl := DefaultLogLevel
	if md.IsDefined("log_level") {
		lvl = raw.LogLevel
	}
	cfg.LogLevel, err = parseLevel(lvl)
	if err != nil {
		return nil, cerr("log_level", "%v", err)
	}

	// durations
	for _, d := range []struct {
		key string
		raw string
		dst *time.Duration
	}{
		{"idle_timeout", raw.IdleTimeout, &cfg.IdleTimeout},
		{"reconnect_min", raw.ReconnectMin, &cfg.ReconnectMin},
		{"reconnect_max", raw.ReconnectMax, &cfg.ReconnectMax},
		{"selftest_interval", raw.SelftestInterval, &cfg.SelftestInterval},
		{"heartbeat_interval", raw.HeartbeatInterval, &cfg.HeartbeatInterval},
	} {
		if !md.IsDefined(d.key) {
			continue
		}
		v, err := time.ParseDuration(strings.TrimSpace(d.raw))
		if err != nil {
			return nil, cerr(d.key, `bad duration %q (write it like "30s", "1m30s" or "500ms")`, d.raw)
		}
		if v <= 0 {
			return nil, cerr(d.key, "must be positive, got %q", d.raw)
		}
		*d.dst = v
	}
	if cfg.ReconnectMin > cfg.ReconnectMax {
		return nil, cerr("reconnect_min", "%v is more than reconnect_max %v", cfg.ReconnectMin, cfg.ReconnectMax)
	}
	if v := cfg.SelftestInterval; v < MinSelftestInterval || v > MaxSelftestInterval {
		return nil, cerr("selftest_interval", "must be between %v and %v, got %q (a round of self-tests costs about a millisecond; the interval bounds how long a tampered primitive goes unnoticed)",
			MinSelftestInterval, MaxSelftestInterval, raw.SelftestInterval)
	}
	if v := cfg.HeartbeatInterval; v < MinHeartbeatInterval || v > MaxHeartbeatInterval {
		return nil, cerr("heartbeat_interval", "must be between %v and %v, got %q (how often each session sends its telemetry)",
			MinHeartbeatInterval, MaxHeartbeatInterval, raw.HeartbeatInterval)
	}

	// journal, journal_max_size, [journal_publish]
	cfg.Journal = journalPathOf(raw.Journal, raw.Identity, dir)
	cfg.JournalMaxSize = journal.DefaultMaxBytes
	if raw.JournalMaxSize != nil {
		if *raw.JournalMaxSize <= 0 {
			return nil, cerr("journal_max_size", "must be a positive number of bytes, got %d", *raw.JournalMaxSize)
		}
		cfg.JournalMaxSize = *raw.JournalMaxSize
	}
	rp := raw.JournalPublish
	pub := JournalPublish{File: resolve(strings.TrimSpace(rp.File)), Syslog: strings.TrimSpace(rp.Syslog),
		HTTP: strings.TrimSpace(rp.HTTP), Interval: DefaultJournalPublishInterval}
	if pub.Syslog != "" {
		if err := checkSyslog(pub.Syslog); err != nil {
			return nil, cerr("journal_publish.syslog", "%v", err)
		}
	}
	if pub.HTTP != "" {
		if err := checkHTTP(pub.HTTP); err != nil {
			return nil, cerr("journal_publish.http", "%v", err)
		}
	}
	if md.IsDefined("journal_publish", "interval") {
		v, err := time.ParseDuration(strings.TrimSpace(rp.Interval))
		if err != nil || v < time.Second {
			return nil, cerr("journal_publish.interval", `want a duration of at least 1s, like "10s", got %q`, rp.Interval)
		}
		pub.Interval = v
	}
	if pub.enabled() && cfg.Journal == "" {
		return nil, cerr("journal_publish", `journal = "" disables the journal, so it has no head to publish; remove [journal_publish] or enable the journal`)
	}
	if pub.File != "" && pub.File == cfg.Journal {
		return nil, cerr("journal_publish.file", "is the journal itself; name another file (on other storage)")
	}
	cfg.JournalPublish = pub

	// metrics_listen
	if m := strings.TrimSpace(raw.MetricsListen); m != "" && m != "off" {
		if err := checkMetricsListen(m); err != nil {
			return nil, cerr("metrics_listen", "%v", err)
		}
		cfg.MetricsListen = m
	}

	// peers
	names := map[string]int{}
	keys := map[pool.PublicKey]int{}
	for i, rp := range raw.Peer {
		base := fmt.Sprintf("peer[%d]", i)
		pk := func(k string) string { return base + "." + k }
		p := Peer{Name: strings.TrimSpace(rp.Name), Address: strings.TrimSpace(rp.Address)}
		if p.Name != "" {
			if strings.ContainsFunc(p.Name, func(r rune) bool { return r < ' ' || r == 0x7f }) {
				return nil, cerr(pk("name"), "control characters in the name")
			}
			if j, dup := names[p.Name]; dup {
				return nil, cerr(pk("name"), "duplicate peer name %q (also peer[%d])", p.Name, j)
			}
			names[p.Name] = i
		}
		if p.Address == "" {
			return nil, cerr(pk("address"), "required: host:port of the peer (port %d if left out)", pool.DefaultPort)
		}
		if _, err := transport.NormalizeAddress(p.Address); err != nil {
			return nil, cerr(pk("address"), "%v", err)
		}
		if strings.TrimSpace(rp.Key) == "" {
			return nil, cerr(pk("key"), `required: the peer's public key, as "pool keygen" or "pool addr" printed it`)
		}
		k, err := pool.ParsePublicKey(rp.Key)
		if err != nil {
			return nil, cerr(pk("key"), "%v", err)
		}
		if k == cfg.Identity.Public {
			return nil, cerr(pk("key"), "this is the node's own key (a node cannot be its own peer)")
		}
		if j, dup := keys[k]; dup {
			return nil, cerr(pk("key"), "duplicate peer: the same key as peer[%d]", j)
		}
		keys[k] = i
		p.Key = k
		cfg.Peers = append(cfg.Peers, p)
	}
	if raw.Shim != nil {
		if err := parseShim(raw.Shim, cfg, dir, cerr); err != nil {
			return nil, err
		}
	}
	if err := parseBridges(&raw, cfg, cerr); err != nil {
		return nil, err
	}
	return cfg, nil
}

// loadAllowList reads an authorized peers file and returns it with the
// digest of its content.
func loadAllowList(path string) (*pool.AllowList, [32]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, [32]byte{}, fmt.Errorf("cannot read the authorized peers file: %v", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, 16<<20))
	if err != nil {
		return nil, [32]byte{}, fmt.Errorf("cannot read the authorized peers file: %v", err)
	}
	list, err := addr.ParseAllowList(bytes.NewReader(data), path)
	if err != nil {
		return nil, [32]byte{}, err
	}
	return list, sha256.Sum256(data), nil
}

func parseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("unknown level %q (want debug, info, warn or error)", s)
}

// levelName is the configuration spelling of a level.
func levelName(l slog.Level) string {
	switch l {
	case slog.LevelDebug:
		return "debug"
	case slog.LevelWarn:
		return "warn"
	case slog.LevelError:
		return "error"
	}
	return "info"
}

// humanTypeError rewrites the library's type error in TOML terms.
func humanTypeError(msg string) string {
	msg = strings.TrimPrefix(msg, "incompatible types: ")
	if m := destTypeRE.FindStringSubmatchIndex(msg); m != nil {
		want := ""
		switch msg[m[2]:m[3]] {
		case "string":
			want = "want a string (in double quotes)"
		case "bool", "boolean":
			want = "want true or false"
		case "slice", "array":
			want = "want [[peer]] tables"
		case "struct", "map":
			want = "want a table"
		}
		if want != "" {
			msg = msg[:m[0]] + want + msg[m[1]:]
		}
	}
	return "wrong type: " + msg
}

var destTypeRE = regexp.MustCompile(`destination has type ([\w.\[\]]+)`)

// suggest returns the known key closest to k, if it is a likely typo.
func suggest(k string, known []string) string {
	best, bestD := "", 3
	for _, c := range known {
		if d := editDistance(k, c); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func parentKey(key string) string {
	if i := strings.LastIndexByte(key, '.'); i >= 0 {
		return key[:i]
	}
	return ""
}

// keyLines maps the keys of a TOML file to the lines that set them:
// "identity", "peer[1]" (the table header), "peer[1].address". The TOML
// library does not export key positions, so this scans the text: it
// understands comments, [table] and [[array]] headers, bare and quoted keys,
// and skips multi-line strings. It only serves error messages; a key it
// cannot place is reported without a line.
type keyLines struct {
	lines  map[string]int
	byLine map[int]string
}

func indexKeys(data string) keyLines {
	kl := keyLines{lines: map[string]int{}, byLine: map[int]string{}}
	table := ""
	arrays := map[string]int{} // [[name]] -> count so far
	inMulti := ""
	for i, line := range strings.Split(data, "\n") {
		n := i + 1
		t := strings.TrimSpace(line)
		if inMulti != "" {
			if strings.Contains(t, inMulti) {
				inMulti = ""
			}
			continue
		}
		if t == "" || t[0] == '#' {
			continue
		}
		if strings.HasPrefix(t, "[[") {
			end := strings.Index(t, "]]")
			if end < 0 {
				continue
			}
			name := unquoteKey(strings.TrimSpace(t[2:end]))
			table = fmt.Sprintf("%s[%d]", name, arrays[name])
			arrays[name]++
			kl.set(table, n)
			continue
		}
		if t[0] == '[' {
			end := strings.IndexByte(t, ']')
			if end < 0 {
				continue
			}
			table = unquoteKey(strings.TrimSpace(t[1:end]))
			kl.set(table, n)
			continue
		}
		key, rest, ok := splitKey(t)
		if !ok {
			continue
		}
		if table != "" {
			key = table + "." + key
		}
		kl.set(key, n)
		v := strings.TrimSpace(rest)
		for _, q := range []string{`"""`, `'''`} {
			if strings.HasPrefix(v, q) && !strings.Contains(v[3:], q) {
				inMulti = q
			}
		}
	}
	return kl
}

func (kl keyLines) set(key string, n int) {
	if _, ok := kl.lines[key]; !ok {
		kl.lines[key] = n
	}
	if _, ok := kl.byLine[n]; !ok {
		kl.byLine[n] = key
	}
}

func (kl keyLines) has(key string) bool { _, ok := kl.lines[key]; return ok }

// line returns the line of key, or of the nearest enclosing table, or 0.
func (kl keyLines) line(key string) int {
	for key != "" {
		if n, ok := kl.lines[key]; ok {
			return n
		}
		if i := strings.LastIndexByte(key, '['); i > strings.LastIndexByte(key, '.') && strings.HasSuffix(key, "]") {
			key = key[:i] // peer[2] -> peer
			continue
		}
		key = parentKey(key)
	}
	return 0
}

// keyAt returns the key set on line n, if any.
func (kl keyLines) keyAt(n int) string { return kl.byLine[n] }

// find places a library key (without array indexes) in the file: the
// first occurrence in any element of an array of tables.
func (kl keyLines) find(k toml.Key) (string, int) {
	plain := strings.Join(k, ".")
	if n, ok := kl.lines[plain]; ok {
		return plain, n
	}
	if len(k) >= 3 {
		// [[bridge.tcp2pool]]: an array of tables under a table.
		for i := 0; ; i++ {
			tbl := fmt.Sprintf("%s.%s[%d]", k[0], k[1], i)
			if !kl.has(tbl) {
				break
			}
			key := tbl + "." + strings.Join(k[2:], ".")
			if n, ok := kl.lines[key]; ok {
				return key, n
			}
		}
	}
	if len(k) >= 2 {
		for i := 0; ; i++ {
			tbl := fmt.Sprintf("%s[%d]", k[0], i)
			if !kl.has(tbl) {
				break
			}
			key := tbl + "." + strings.Join(k[1:], ".")
			if n, ok := kl.lines[key]; ok {
				return key, n
			}
		}
	}
	return plain, kl.line(plain)
}

// splitKey splits `key = value` (bare, quoted or dotted key).
func splitKey(t string) (key, rest string, ok bool) {
	i := 0
	var parts []string
	for {
		for i < len(t) && (t[i] == ' ' || t[i] == '\t') {
			i++
		}
		if i >= len(t) {
			return "", "", false
		}
		switch t[i] {
		case '"', '\'':
			q := t[i]
			j := i + 1
			for j < len(t) && t[j] != q {
				if q == '"' && t[j] == '\\' {
					j++
				}
				j++
			}
			if j >= len(t) {
				return "", "", false
			}
			parts = append(parts, t[i+1:j])
			i = j + 1
		default:
			j := i
			for j < len(t) && isBareKeyChar(t[j]) {
				j++
			}
			if j == i {
				return "", "", false
			}
			parts = append(parts, t[i:j])
			i = j
		}
		for i < len(t) && (t[i] == ' ' || t[i] == '\t') {
			i++
		}
		if i < len(t) && t[i] == '.' {
			i++
			continue
		}
		if i < len(t) && t[i] == '=' {
			return strings.Join(parts, "."), t[i+1:], true
		}
		return "", "", false
	}
}

func unquoteKey(s string) string {
	if k, _, ok := splitKey(s + "="); ok {
		return k
	}
	return s
}

func isBareKeyChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}
