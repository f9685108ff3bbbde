package pool_test

import (
	"context"
	"testing"
	"time"

	"github.com/pool-go/pool"
)

// TestConfigCallbacksNameSession: Config.OnRekey and OnConfigChange are
// called with the session Dial and Accept return.
func TestConfigCallbacksNameSession(t *testing.T) {
	type ev struct {
		s     *pool.Session
		epoch uint32
		init  bool
		cfg   *pool.ConfigEvent
	}
	srv, cli := make(chan ev, 8), make(chan ev, 8)
	cfgOf := func(c chan ev) pool.Config {
		return pool.Config{
			OnRekey:        func(s *pool.Session, epoch uint32, initiated bool) { c <- ev{s: s, epoch: epoch, init: initiated} },
			OnConfigChange: func(s *pool.Session, e pool.ConfigEvent) { c <- ev{s: s, cfg: &e} },
		}
	}
	_, cs, ss := pair(t, pairOpts{server: cfgOf(srv), client: cfgOf(cli)})
	next := func(c chan ev) ev {
		t.Helper()
		select {
		case e := <-c:
			return e
		case <-time.After(10 * time.Second):
			t.Fatal("no callback")
		}
		return ev{}
	}
	if err := cs.Rekey(); err != nil {
		t.Fatal(err)
	}
	if e := next(cli); e.s != cs || e.epoch != 1 || !e.init {
		t.Errorf("client OnRekey: %+v", e)
	}
	if e := next(srv); e.s != ss || e.epoch != 1 || e.init {
		t.Errorf("server OnRekey: %+v", e)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	params := pool.ConfigParams{HeartbeatMs: 2000, RekeyIntervalS: 1800, RekeyPackets: 1 << 20}
	if _, err := cs.ProposeConfig(ctx, params, 8*time.Second); err != nil {
		t.Fatal(err)
	}
	if e := next(srv); e.s != ss || e.cfg == nil || e.cfg.Kind != pool.ConfigApplied || !e.cfg.Local {
		t.Errorf("server OnConfigChange: %+v", e)
	}
	if e := next(cli); e.s != cs || e.cfg == nil || e.cfg.Kind != pool.ConfigApplied || e.cfg.Local {
		t.Errorf("client OnConfigChange: %+v", e)
	}
}
