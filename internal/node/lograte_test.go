package node

import (
	"fmt"
	"testing"
	"time"
)

func TestLogRate(t *testing.T) {
	r := newLogRate(time.Minute, 4)
	t0 := time.Unix(1000, 0)
	if ok, _ := r.allow("a", t0); !ok {
		t.Fatal("first event held back")
	}
	for i := 1; i <= 5; i++ {
		if ok, _ := r.allow("a", t0.Add(time.Duration(i)*time.Second)); ok {
			t.Fatalf("event %d within the interval logged", i)
		}
	}
	if ok, _ := r.allow("b", t0); !ok {
		t.Fatal("another key held back")
	}
	ok, n := r.allow("a", t0.Add(time.Minute))
	if !ok || n != 5 {
		t.Fatalf("after the interval: ok %v, suppressed %d; want true, 5", ok, n)
	}
	for i := 0; i < 100; i++ {
		r.allow(fmt.Sprint(i), t0)
	}
	if len(r.seen) > 4 {
		t.Fatalf("%d keys held, bound is 4", len(r.seen))
	}
}
