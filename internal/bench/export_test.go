package bench

import (
	"context"
	"net"
	"slices"
)

// RunSendBuffer is Run with the socket send buffer of each WebSocket set
// to about n bytes: a server that stops reading a connection then blocks
// its writes after a few sends rather than some megabytes of them.
func RunSendBuffer(ctx context.Context, cfg Config, n int) (Result, error) {
	cfg.Targets = slices.Clone(cfg.Targets)
	if err := cfg.fill(); err != nil {
		return Result{}, err
	}
	tr, err := newTransport(cfg)
	if err != nil {
		return Result{}, err
	}
	if nt, ok := tr.(*nativeTransport); ok {
		nt.dialer.NetDialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := new(net.Dialer).DialContext(ctx, network, addr)
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.SetWriteBuffer(n)
			}
			return c, err
		}
	}
	return newRun(cfg, tr).run(ctx)
}
