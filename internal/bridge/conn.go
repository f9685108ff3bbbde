package bridge

import (
	"sync"

	"github.com/pool-go/pool"
)

// countedConn is a bridged connection handed to a caller (Client.Open,
// Router.DialDestination): a channel whose bytes and end are counted in
// its route's Counters.
type countedConn struct {
	*pool.Channel
	c    *Counters
	once sync.Once
}

func (cc *countedConn) Read(p []byte) (int, error) {
	n, err := cc.Channel.Read(p)
	cc.c.bytesDown.Add(uint64(n))
	return n, err
}

func (cc *countedConn) Write(p []byte) (int, error) {
	n, err := cc.Channel.Write(p)
	cc.c.bytesUp.Add(uint64(n))
	return n, err
}

func (cc *countedConn) Close() error {
	cc.once.Do(func() { cc.c.active.Add(-1) })
	return cc.Channel.Close()
}
