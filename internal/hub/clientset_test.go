package hub

import (
	"math/rand/v2"
	"slices"
	"testing"
	"unsafe"
)

// A clientSet holds each client once, in address order, through adds and
// removals in any order, and gives back what a large room held once it
// empties.
func TestClientSet(t *testing.T) {
	cs := make([]*Client, 1000)
	for i := range cs {
		cs[i] = new(Client)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var s clientSet
	in := make(map[*Client]bool)
	check := func(when string) {
		t.Helper()
		if !slices.IsSortedFunc(s, byAddr) {
			t.Fatalf("%s: not in address order", when)
		}
		if len(s) != len(in) {
			t.Fatalf("%s: %d clients; want %d", when, len(s), len(in))
		}
		for _, c := range cs {
			if s.has(c) != in[c] {
				t.Fatalf("%s: has = %v; want %v", when, s.has(c), in[c])
			}
		}
	}
	for _, i := range rng.Perm(len(cs)) {
		s.add(cs[i])
		in[cs[i]] = true
	}
	s.add(cs[7]) // again: no change
	check("after adding all in random order")

	for _, i := range rng.Perm(len(cs))[:300] {
		s.remove(cs[i])
		delete(in, cs[i])
	}
	s.remove(new(Client)) // never added: no change
	check("after removing 300 one by one")

	var gone []*Client
	for _, i := range rng.Perm(len(cs))[:500] {
		gone = append(gone, cs[i]) // some already gone: no matter
		delete(in, cs[i])
	}
	s.remove(gone...)
	check("after removing 500 at once")

	for c := range in {
		s.remove(c)
	}
	clear(in)
	check("after removing the rest")
	if cap(s) > 64 {
		t.Errorf("an empty set holds room for %d clients; want at most 64", cap(s))
	}
}

// A Client stays in the 128-byte size class: every connection holds one
// (target 5 in docs/benchmarks.md). What only some clients need, such as
// a long-poll channel's name, belongs to their Waker.
func TestClientSize(t *testing.T) {
	if unsafe.Sizeof(uintptr(0)) != 8 {
		t.Skip("sizes are for 64-bit platforms")
	}
	if n := unsafe.Sizeof(Client{}); n > 128 {
		t.Errorf("Client is %d bytes; want at most 128, the size class it had", n)
	}
}

// A topic stays in the 288-byte size class: every connected user has a
// topic of their own, and every room open on the node one (target 5 in
// docs/benchmarks.md). One more word takes it to 320 bytes, three more
// to 352.
func TestTopicSize(t *testing.T) {
	if unsafe.Sizeof(uintptr(0)) != 8 {
		t.Skip("sizes are for 64-bit platforms")
	}
	if n := unsafe.Sizeof(topic{}); n > 288 {
		t.Errorf("topic is %d bytes; want at most 288, the size class it had", n)
	}
}
