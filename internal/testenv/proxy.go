package testenv

import (
	"bytes"
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
	cut   bool // CutExcept: new connections are closed as they come
}

type proxyConn struct {
	client, server net.Conn
	frozen         atomic.Bool // data is read and dropped, like a dead peer

	mu   sync.Mutex
	sent []byte // the first maxSent bytes the client sent
}

// maxSent bounds what a proxyConn keeps of what its client sent.
const maxSent = 64 << 10

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
	if p.hang || p.cut { // still listening: forward again
		p.hang, p.cut = false, false
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
			if p.cut {
				p.mu.Unlock()
				c.Close()
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
			go pc.copy(s, c, true)
			go pc.copy(c, s, false)
		}
	}()
}

func (pc *proxyConn) copy(dst, src net.Conn, fromClient bool) {
	defer pc.client.Close()
	defer pc.server.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && fromClient {
			pc.mu.Lock()
			if k := min(n, maxSent-len(pc.sent)); k > 0 {
				pc.sent = append(pc.sent, buf[:k]...)
			}
			pc.mu.Unlock()
		}
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
	p.hang, p.cut = false, false
	p.closeHungLocked()
	p.dropLocked()
}

// CutExcept closes every connection whose client has not sent keep (in
// its first 64 KiB), and until Restore closes new connections as they
// come: the server is gone for every client but those, as when a
// client's other connections break and its dials fail while one
// connection holds.
func (p *Proxy) CutExcept(keep []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for pc := range p.conns {
		pc.mu.Lock()
		kept := bytes.Contains(pc.sent, keep)
		pc.mu.Unlock()
		if !kept {
			pc.client.Close()
			pc.server.Close()
			delete(p.conns, pc)
		}
	}
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
