// Package bufpool recycles packet buffers in a few size classes, so the data
// path allocates nothing per packet in steady state and an idle session
// holds no large buffer (DESIGN §5).
package bufpool

import "sync"

// Size classes. The largest holds any POOL packet: 80-byte header, 65535
// payload bytes (tag included).
const (
	Small = 2 << 10
	Mid   = 16 << 10
	Large = 80 + 65535
)

var pools = [3]sync.Pool{
	{New: func() any { b := make([]byte, Small); return &b }},
	{New: func() any { b := make([]byte, Mid); return &b }},
	{New: func() any { b := make([]byte, Large); return &b }},
}

func class(n int) int {
	switch {
	case n <= Small:
		return 0
	case n <= Mid:
		return 1
	default:
		return 2
	}
}

// Get returns a buffer of length n (n <= Large) from the smallest class
// that holds it. Return it with Put when done.
func Get(n int) *[]byte {
	if n > Large {
		panic("bufpool: request larger than a POOL packet")
	}
	p := pools[class(n)].Get().(*[]byte)
	*p = (*p)[:n]
	return p
}

// Put returns a buffer obtained from Get.
func Put(p *[]byte) {
	c := cap(*p)
	switch c {
	case Small, Mid, Large:
	default:
		return // not ours; let the GC have it
	}
	*p = (*p)[:c]
	pools[class(c)].Put(p)
}
