package node

// The node's versioned configuration (draft §9; internal/config;
// docs/OPERATIONS.md, CHANGING THE CONFIGURATION): the store over the
// directory of the configuration file, and the control methods
// config.apply, config.confirm, config.rollback, config.history and
// config.diff.

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pool-go/pool/internal/config"
	"github.com/pool-go/pool/internal/journal"
)

// HistorySuffix names the history directory of a configuration file: the
// versions of /etc/pool/node.toml are kept in /etc/pool/node.toml.history/.
const HistorySuffix = ".history"

// MaxConfirmWithin bounds config.apply's confirm_within.
const MaxConfirmWithin = config.MaxConfirmWithin

// ConfigVersion is one version of the configuration, as the control
// protocol reports it.
type ConfigVersion struct {
	Version    int       `json:"version"`
	SHA256     string    `json:"sha256"`      // of the exact bytes, 64 hex digits
	PrevSHA256 string    `json:"prev_sha256"` // of version-1; "" for the first
	Time       time.Time `json:"time"`
	Kind       string    `json:"kind"` // apply, apply-confirmed, rollback, auto-rollback, recovered
	Author     string    `json:"author,omitempty"`
	Comment    string    `json:"comment,omitempty"`
	Size       int       `json:"size"`
	RollbackOf int       `json:"rollback_of,omitempty"` // the version a rollback restored
}

// ConfigPending is a commit-confirmed change awaiting config.confirm.
type ConfigPending struct {
	Version  int       `json:"version"`  // the tentative version (live now)
	Previous int       `json:"previous"` // restored unless confirmed
	Deadline time.Time `json:"deadline"`
}

// ConfigResult is the result of config.apply, config.confirm and
// config.rollback.
type ConfigResult struct {
	Version  ConfigVersion  `json:"version"`  // live now
	Previous int            `json:"previous"` // live before (0 for config.confirm)
	Changes  []string       `json:"changes"`  // what the node's reload changed
	Pending  *ConfigPending `json:"pending,omitempty"`
}

// ConfigHistory is the result of config.history.
type ConfigHistory struct {
	File     string          `json:"file"`
	Dir      string          `json:"history_dir"`
	Current  int             `json:"current"`
	Pending  *ConfigPending  `json:"pending,omitempty"`
	Versions []ConfigVersion `json:"versions"` // oldest first
}

// ConfigDiff is the result of config.diff.
type ConfigDiff struct {
	A    int    `json:"a"`
	B    int    `json:"b"`
	Diff string `json:"diff"` // unified diff; "" when identical
}

// ConfigStatus is the configuration's state in "status".
type ConfigStatus struct {
	// Enabled is false when the node runs without a history (Error says
	// why): config.* methods are refused then.
	Enabled bool           `json:"enabled"`
	Error   string         `json:"error,omitempty"`
	Version int            `json:"version"`
	SHA256  string         `json:"sha256,omitempty"`
	Dir     string         `json:"history_dir,omitempty"`
	Pending *ConfigPending `json:"pending,omitempty"`
}

func versionOf(v config.Version) ConfigVersion {
	cv := ConfigVersion{Version: v.Number, SHA256: hex.EncodeToString(v.SHA256[:]), Time: v.Time,
		Kind: string(v.Kind), Author: v.Author, Comment: v.Comment, Size: v.Size, RollbackOf: v.RollbackOf}
	if v.Prev != ([32]byte{}) {
		cv.PrevSHA256 = hex.EncodeToString(v.Prev[:])
	}
	return cv
}

func pendingOf(p config.Pending, ok bool) *ConfigPending {
	if !ok {
		return nil
	}
	return &ConfigPending{Version: p.Version, Previous: p.Previous, Deadline: p.Deadline}
}

// configStore is the node's store and what Start learned opening it.
type configStore struct {
	s   *config.Store // nil when disabled
	err error         // why it is disabled

	mu      sync.Mutex
	ready   bool           // Start has finished opening it
	early   []config.Event // events Open reported before ready
	changes sync.Mutex     // one config.apply / rollback at a time
}

// openConfigStore opens the store of cfg.File. It never fails the node: a
// history that cannot be opened (a read-only directory, an unreadable
// metadata file) leaves versioning off, logged and journaled, and the
// config.* methods say why.
func (n *Node) openConfigStore(cfg *Config) {
	n.cfgStore = &configStore{}
	if cfg.File == "" {
		n.cfgStore.err = errors.New("the node was not started from a configuration file")
		return
	}
	dir, base := filepath.Split(cfg.File)
	s, err := config.Open(dir, config.Options{
		File:       base,
		HistoryDir: base + HistorySuffix,
		MaxSize:    maxConfigFile,
		Validate: func(data []byte) error {
			_, err := parseConfig(data, cfg.File, filepath.Dir(cfg.File))
			return err
		},
		OnEvent: n.configEvent,
	})
	if err != nil {
		n.cfgStore.err = fmt.Errorf("configuration history %s unavailable: %w", filepath.Join(dir, base+HistorySuffix), err)
		n.log.Error("configuration versioning is off: " + n.cfgStore.err.Error() + "; config apply, confirm and rollback are refused (docs/OPERATIONS.md, CHANGING THE CONFIGURATION)")
		n.record(journal.TypeError, map[string]string{"what": "config history", "reason": n.cfgStore.err.Error()})
		return
	}
	n.cfgStore.s = s
}

// startConfigEvents handles what Open reported before the node was ready,
// and returns the configuration to run: when Open rolled back a
// commit-confirmed change whose deadline passed while the node was down,
// the restored file, not the one Start was given.
func (n *Node) startConfigEvents(cfg *Config) *Config {
	cs := n.cfgStore
	cs.mu.Lock()
	events := cs.early
	cs.early, cs.ready = nil, true
	cs.mu.Unlock()
	for _, ev := range events {
		n.journalConfigEvent(ev)
		if ev.Kind == config.EventRolledBack {
			c, err := LoadConfig(cfg.File)
			if err != nil {
				n.log.Error("the restored configuration does not load; running the one read at start", "err", err)
				continue
			}
			n.log.Warn("a commit-confirmed change was not confirmed before the node stopped; its previous version is restored",
				"version", ev.Version.Number, "restored", ev.Pending.Previous)
			cfg = c
		}
	}
	return cfg
}

// configEvent is config.Options.OnEvent: a change the store made by
// itself. A rolled-back change is reloaded from the restored bytes (the
// store verified them against their recorded hash) and journaled.
func (n *Node) configEvent(ev config.Event) {
	cs := n.cfgStore
	cs.mu.Lock()
	if !cs.ready {
		cs.early = append(cs.early, ev)
		cs.mu.Unlock()
		return
	}
	cs.mu.Unlock()
	if ev.Kind != config.EventRolledBack {
		n.journalConfigEvent(ev)
		return
	}
	_, data, err := cs.s.Get(ev.Version.Number)
	var res ReloadResult
	if err == nil {
		res, err = n.reloadData(data)
	}
	if err != nil {
		n.log.Error("commit-confirmed rollback: the restored configuration is on disk but the node could not reload it; run pool reload or restart the node",
			"version", ev.Version.Number, "err", err)
		n.recordConfig(journal.TypeError, ev.Pending.Version, ev.Version.Number, map[string]string{
			"what": "config auto-rollback reload", "reason": err.Error()})
	}
	n.log.Warn("commit-confirmed change not confirmed in time: rolled back", "tentative", ev.Pending.Version,
		"restored", ev.Pending.Previous, "version", ev.Version.Number, "sha256", ev.Version.ShortHash(),
		"changes", strings.Join(res.Changes, "; "))
	n.journalConfigEvent(ev, res.Changes...)
}

// journalConfigEvent records an event the store reported by itself.
func (n *Node) journalConfigEvent(ev config.Event, changes ...string) {
	v := ev.Version
	d := map[string]string{"version": strconv.Itoa(v.Number), "sha256": hex.EncodeToString(v.SHA256[:]),
		"reason": ev.Reason}
	switch ev.Kind {
	case config.EventRolledBack:
		d["what"] = "auto-rollback"
		d["tentative"] = strconv.Itoa(ev.Pending.Version)
		d["restored"] = strconv.Itoa(ev.Pending.Previous)
		d["deadline"] = ev.Pending.Deadline.UTC().Format(time.RFC3339)
		d["changes"] = strings.Join(changes, "; ")
		n.recordConfig(journal.TypeRollback, ev.Pending.Version, v.Number, d)
	case config.EventRollbackFailed:
		d["what"] = "auto-rollback failed"
		d["tentative"] = strconv.Itoa(ev.Pending.Version)
		if ev.Err != nil {
			d["error"] = ev.Err.Error()
		}
		n.log.Error("commit-confirmed rollback failed: the tentative configuration stays live; confirm it or roll back explicitly",
			"version", ev.Pending.Version, "previous", ev.Pending.Previous, "err", ev.Err)
		n.recordConfig(journal.TypeError, v.Number, v.Number, d)
	case config.EventRecovered:
		d["what"] = "recovered"
		n.recordConfig(journal.TypeConfig, 0, v.Number, d)
	}
}

// recordConfig is record with the configuration versions before and after.
func (n *Node) recordConfig(t journal.Type, before, after int, detail map[string]string) {
	nj := n.journal
	if nj == nil {
		return
	}
	_, err := nj.j.Append(journal.Entry{Type: t, ConfigBefore: uint64(max(before, 0)), ConfigAfter: uint64(max(after, 0)),
		Detail: clip(detail)})
	nj.failed(t, err)
}

func (n *Node) store() (*config.Store, error) {
	cs := n.cfgStore
	if cs == nil || cs.s == nil {
		if cs != nil && cs.err != nil {
			return nil, fmt.Errorf("configuration versioning is off: %w", cs.err)
		}
		return nil, errors.New("configuration versioning is off")
	}
	return cs.s, nil
}

// reloadData applies the configuration data (the file's new bytes) the
// way Reload does: all or nothing, keys that need a restart refused.
func (n *Node) reloadData(data []byte) (ReloadResult, error) {
	n.reloadMu.Lock()
	defer n.reloadMu.Unlock()
	if n.ctx.Err() != nil {
		return ReloadResult{}, errors.New("the node is shutting down")
	}
	file := n.config().File
	cfg, err := parseConfig(data, file, filepath.Dir(file))
	if err != nil {
		return ReloadResult{}, err
	}
	cfg.File = file
	res, err := n.apply(cfg)
	if err != nil {
		return ReloadResult{}, err
	}
	for _, c := range res.Changes {
		n.log.Info("configuration changed: " + c)
	}
	return res, nil
}

// ConfigApply applies data as a new version of the configuration file and
// reloads the node from it. within > 0 makes it commit-confirmed: unless
// ConfigConfirm is called in time, the previous version comes back by
// itself. A change the node cannot reload (a key that needs a restart, an
// address that cannot be used) is rolled back at once and the error
// returned; an invalid file is refused with its line and reason before
// anything changes.
func (n *Node) ConfigApply(data []byte, within time.Duration, author string) (ConfigResult, error) {
	s, err := n.store()
	if err != nil {
		return ConfigResult{}, err
	}
	if within < 0 || within > MaxConfirmWithin {
		return ConfigResult{}, fmt.Errorf("confirm_within %v is outside (0, %v]", within, MaxConfirmWithin)
	}
	n.cfgStore.changes.Lock()
	defer n.cfgStore.changes.Unlock()
	prev, err := s.Current()
	if err != nil {
		return ConfigResult{}, err
	}
	o := config.ApplyOptions{Author: author}
	var v config.Version
	if within > 0 {
		v, err = s.ApplyConfirmed(data, within, o)
	} else {
		v, err = s.Apply(data, o)
	}
	if err != nil {
		var ce *ConfigError
		if errors.As(err, &ce) {
			err = fmt.Errorf("config apply refused, nothing was changed: %w", ce)
		} else {
			err = fmt.Errorf("config apply refused, nothing was changed: %w", err)
		}
		n.recordConfig(journal.TypeError, prev.Number, prev.Number, map[string]string{"what": "config apply", "reason": err.Error()})
		return ConfigResult{}, err
	}
	return n.reloadVersion(s, "apply", prev, v)
}

// reloadVersion reloads the node from version v, just committed over
// prev; if the node cannot run it, prev is restored at once.
func (n *Node) reloadVersion(s *config.Store, what string, prev, v config.Version) (ConfigResult, error) {
	_, data, err := s.Get(v.Number)
	var res ReloadResult
	if err == nil {
		res, err = n.reloadData(data)
	}
	if err != nil {
		back, rerr := s.Rollback(prev.Number, config.ApplyOptions{Author: "node",
			Comment: fmt.Sprintf("the node could not run version %d: %v", v.Number, err)})
		d := map[string]string{"what": "config " + what, "outcome": "refused by the node, rolled back",
			"version": strconv.Itoa(v.Number), "sha256": hex.EncodeToString(v.SHA256[:]), "reason": err.Error()}
		if rerr != nil {
			d["rollback_error"] = rerr.Error()
			n.recordConfig(journal.TypeError, prev.Number, v.Number, d)
			return ConfigResult{}, fmt.Errorf("config %s: version %d is on disk but the node cannot run it (%v), and restoring version %d failed: %v; the node still runs version %d",
				what, v.Number, err, prev.Number, rerr, prev.Number)
		}
		d["restored"] = strconv.Itoa(prev.Number)
		d["restored_as"] = strconv.Itoa(back.Number)
		d["restored_sha256"] = hex.EncodeToString(back.SHA256[:])
		n.recordConfig(journal.TypeRollback, v.Number, back.Number, d)
		n.log.Error("configuration change rolled back: the node cannot run it", "version", v.Number, "err", err)
		return ConfigResult{}, fmt.Errorf("config %s refused: %v; version %d was rolled back at once (version %d restores version %d, sha256 %s)",
			what, err, v.Number, back.Number, prev.Number, back.ShortHash())
	}
	p, ok := s.Pending()
	pend := pendingOf(p, ok)
	d := map[string]string{"what": what, "outcome": "applied", "version": strconv.Itoa(v.Number),
		"sha256": hex.EncodeToString(v.SHA256[:]), "previous": strconv.Itoa(prev.Number),
		"previous_sha256": hex.EncodeToString(prev.SHA256[:]), "kind": string(v.Kind), "author": v.Author,
		"changes": strings.Join(res.Changes, "; ")}
	if pend != nil {
		d["outcome"] = "tentative"
		d["deadline"] = pend.Deadline.UTC().Format(time.RFC3339)
	}
	t := journal.TypeConfig
	if v.Kind == config.KindRollback {
		t = journal.TypeRollback
		d["restored"] = strconv.Itoa(v.RollbackOf)
	}
	n.recordConfig(t, prev.Number, v.Number, d)
	n.log.Info("configuration version "+strconv.Itoa(v.Number)+" is live", "what", what, "sha256", v.ShortHash(),
		"previous", prev.Number, "pending", pend != nil)
	return ConfigResult{Version: versionOf(v), Previous: prev.Number, Changes: res.Changes, Pending: pend}, nil
}

// ConfigConfirm makes the pending commit-confirmed change permanent.
func (n *Node) ConfigConfirm() (ConfigResult, error) {
	s, err := n.store()
	if err != nil {
		return ConfigResult{}, err
	}
	p, err := s.Confirm()
	if err != nil {
		if errors.Is(err, config.ErrNoPending) {
			return ConfigResult{}, errors.New("config confirm: no commit-confirmed change awaits confirmation")
		}
		return ConfigResult{}, fmt.Errorf("config confirm: %w", err)
	}
	v, _ := s.Current()
	n.recordConfig(journal.TypeConfig, p.Version, p.Version, map[string]string{"what": "confirm", "outcome": "confirmed",
		"version": strconv.Itoa(v.Number), "sha256": hex.EncodeToString(v.SHA256[:])})
	n.log.Info("configuration change confirmed", "version", p.Version)
	return ConfigResult{Version: versionOf(v), Changes: []string{}}, nil
}

// ConfigRollback restores version to (the one before the live one when 0)
// and reloads the node from it. A pending commit-confirmed change is
// ended by it.
func (n *Node) ConfigRollback(to int, author string) (ConfigResult, error) {
	s, err := n.store()
	if err != nil {
		return ConfigResult{}, err
	}
	if to < 0 {
		return ConfigResult{}, fmt.Errorf("config rollback: version %d: want a version number from config history", to)
	}
	n.cfgStore.changes.Lock()
	defer n.cfgStore.changes.Unlock()
	prev, err := s.Current()
	if err != nil {
		return ConfigResult{}, err
	}
	v, err := s.Rollback(to, config.ApplyOptions{Author: author})
	if err != nil {
		return ConfigResult{}, fmt.Errorf("config rollback refused, nothing was changed: %w", err)
	}
	return n.reloadVersion(s, "rollback", prev, v)
}

// ConfigHistory lists the kept versions.
func (n *Node) ConfigHistory() (ConfigHistory, error) {
	s, err := n.store()
	if err != nil {
		return ConfigHistory{}, err
	}
	h := ConfigHistory{File: s.LiveFile(), Dir: s.HistoryDir(), Versions: []ConfigVersion{}}
	if v, err := s.Current(); err == nil {
		h.Current = v.Number
	}
	h.Pending = pendingOf(s.Pending())
	for _, v := range s.History() {
		h.Versions = append(h.Versions, versionOf(v))
	}
	return h, nil
}

// ConfigDiff is the unified diff from version a to version b.
func (n *Node) ConfigDiff(a, b int) (ConfigDiff, error) {
	s, err := n.store()
	if err != nil {
		return ConfigDiff{}, err
	}
	if a <= 0 || b <= 0 {
		return ConfigDiff{}, fmt.Errorf(`config diff needs two versions, "a" and "b" (got %d and %d); see config history`, a, b)
	}
	d, err := s.Diff(a, b)
	if err != nil {
		return ConfigDiff{}, err
	}
	return ConfigDiff{A: a, B: b, Diff: d}, nil
}

// configStatus is the configuration's part of "status".
func (n *Node) configStatus() ConfigStatus {
	s, err := n.store()
	if err != nil {
		return ConfigStatus{Error: err.Error()}
	}
	st := ConfigStatus{Enabled: true, Dir: s.HistoryDir()}
	if v, err := s.Current(); err == nil {
		st.Version, st.SHA256 = v.Number, hex.EncodeToString(v.SHA256[:])
	}
	st.Pending = pendingOf(s.Pending())
	return st
}

// closeConfigStore stops the store's deadline timer. A pending change
// stays pending on disk: the next start honours its deadline.
func (n *Node) closeConfigStore() {
	if n.cfgStore != nil && n.cfgStore.s != nil {
		_ = n.cfgStore.s.Close()
	}
}

// recordHandEdit records in the history a file edited by hand and picked
// up by Reload (or SIGHUP), so that config rollback goes back to what the
// node really ran. The caller holds reloadMu.
func (n *Node) recordHandEdit() {
	s, err := n.store()
	if err != nil {
		return
	}
	data, err := os.ReadFile(s.LiveFile())
	if err != nil {
		return
	}
	cur, err := s.Current()
	if err == nil && cur.SHA256 == sha256.Sum256(data) {
		return
	}
	v, err := s.Apply(data, config.ApplyOptions{Author: "reload", Comment: "the file edited by hand, picked up by reload"})
	if err != nil {
		n.log.Warn("the reloaded file is live but not recorded in the configuration history", "err", err)
		n.recordConfig(journal.TypeError, cur.Number, cur.Number, map[string]string{"what": "config history", "reason": "the reloaded file is not recorded: " + err.Error()})
		return
	}
	n.recordConfig(journal.TypeConfig, cur.Number, v.Number, map[string]string{"what": "reload", "outcome": "recorded",
		"version": strconv.Itoa(v.Number), "sha256": hex.EncodeToString(v.SHA256[:]), "previous": strconv.Itoa(cur.Number)})
}
