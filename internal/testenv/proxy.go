package testenv

import (
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Proxy forwards TCP connections from a loopback address to a server and
// fails them on demand, to show what clients do when the server goes away
// (Cut, Restore) or its host vanishes (Freeze, Hang).
type Proxy struct {
	target string

	mu    sync.Mutex
	addr  string // where it listens; kept across Cut and Restore
	ln    net.Listener
	conns map[*proxyConn]struct{}
	hung  []net.Conn // accepted while hanging, never answered
	hang  bool
}

type proxyConn struct {
	client, server net.Conn
	frozen         atomic.Bool // data is read and dropped, like a dead peer
}

// StartProxy forwards a new loopback port to target until the test ends.
func StartProxy(tb testing.TB, target string) *Proxy {
	tb.Helper()
	p := &Proxy{target: target, addr: "127.0.0.1:0", conns: make(map[*proxyConn]struct{})}
	p.Restore(tb)
	tb.Cleanup(p.Cut)
	return p
}

// Addr is the proxy's host:port.
func (p *Proxy) Addr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.addr
}

// Restore listens again on the proxy's address: the server is back.
func (p *Proxy) Restore(tb testing.TB) {
	tb.Helper()
	p.mu.Lock()
	if p.hang { // still listening: forward again
		p.hang = false
		p.closeHungLocked()
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	var ln net.Listener
	var err error
	for range 50 { // the port may take a moment to be free again
		if ln, err = net.Listen("tcp", p.Addr()); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		tb.Fatalf("proxy listen: %v", err)
	}
	p.mu.Lock()
	p.ln, p.addr = ln, ln.Addr().String()
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			if p.hang {
				p.hung = append(p.hung, c)
				p.mu.Unlock()
				continue
			}
			p.mu.Unlock()
			s, err := net.DialTimeout("tcp", p.target, 5*time.Second)
			if err != nil {
				c.Close()
				continue
			}
			pc := &proxyConn{client: c, server: s}
			p.mu.Lock()
			if p.ln != ln { // cut meanwhile
				p.mu.Unlock()
				c.Close()
				s.Close()
				continue
			}
			p.conns[pc] = struct{}{}
			p.mu.Unlock()
			go pc.copy(s, c)
			go pc.copy(c, s)
		}
	}()
}

func (pc *proxyConn) copy(dst, src net.Conn) {
	defer pc.client.Close()
	defer pc.server.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !pc.frozen.Load() {
			if _, err := dst.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// Cut closes the listener and every connection: the server is gone and new
// connections are refused.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	p.hang = false
	p.closeHungLocked()
	p.dropLocked()
}

// dropLocked closes every forwarded connection; p.mu is held.
func (p *Proxy) dropLocked() {
	for pc := range p.conns {
		pc.client.Close()
		pc.server.Close()
	}
	clear(p.conns)
}

func (p *Proxy) closeHungLocked() {
	for _, c := range p.hung {
		c.Close()
	}
	p.hung = nil
}

// Hang closes every connection and then accepts new ones without ever
// answering, as a host that stopped answering does: a client's dial
// succeeds (or, for a real host, times out) and its first command times
// out. Restore answers again.
func (p *Proxy) Hang() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.hang = true
	p.dropLocked()
}

// Freeze makes every open connection silently drop what it carries, as
// when the peer's host vanishes; new connections work.
func (p *Proxy) Freeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for pc := range p.conns {
		pc.frozen.Store(true)
	}
}
