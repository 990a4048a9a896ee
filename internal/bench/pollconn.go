package bench

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"
)

// pollConn is one long-poll client's own keep-alive connection, on which
// its reader goroutine makes its GETs one after the other.
//
// Every delivery to a long-polling client ends its GET and costs a new
// one. Through the shared http.Transport each of those cost the load tool
// about as much CPU as it cost the server: a look-up in the pool of idle
// connections, a hand-over to the connection's write goroutine and back
// from its read goroutine, a select on both, a context with a timer. On
// the two cores the tool shares with the server, that CPU was taken from
// the server and showed as latency (docs/benchmarks.md, target 7). Here
// the reader writes the request and reads the answer itself, with
// net/http's own Request.Write and ReadResponse, and a deadline on the
// connection stands for the timeout.
type pollConn struct {
	u      *url.URL // the target; the path and query vary per request
	addr   string   // host:port to dial
	cookie string

	nc net.Conn // nil until dialled, and after an error
	br *bufio.Reader
	bw *bufio.Writer
}

func newPollConn(target, token string) (*pollConn, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, err
	}
	port := u.Port()
	switch {
	case port != "":
	case u.Scheme == "https":
		port = "443"
	default:
		port = "80"
	}
	return &pollConn{
		u:      u,
		addr:   net.JoinHostPort(u.Hostname(), port),
		cookie: sessionCookie(token),
	}, nil
}

// errStale is a reused connection that the server had closed before it
// read the request: the request is made again on a new one.
var errStale = errors.New("keep-alive connection closed by the server")

// get makes GET path?query (path under the target's own) and returns the
// answer and its body, within timeout and until ctx ends. Only one
// goroutine calls get.
func (c *pollConn) get(ctx context.Context, path, query string, timeout time.Duration) (*http.Response, []byte, error) {
	for attempt := 0; ; attempt++ {
		resp, body, err := c.try(ctx, path, query, timeout)
		if err == nil {
			return resp, body, nil
		}
		c.close()
		if !errors.Is(err, errStale) || attempt > 0 {
			return nil, nil, err
		}
	}
}

func (c *pollConn) try(ctx context.Context, path, query string, timeout time.Duration) (*http.Response, []byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	reused := c.nc != nil
	if !reused {
		if err := c.dial(ctx); err != nil {
			return nil, nil, err
		}
	}
	if err := c.nc.SetDeadline(time.Now().Add(timeout)); err != nil {
		return nil, nil, err
	}
	// Ending ctx ends the request at once: the deadline passes.
	nc := c.nc
	stop := context.AfterFunc(ctx, func() { _ = nc.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	u := *c.u
	u.Path, u.RawQuery = c.u.Path+path, query
	req := &http.Request{
		Method:     http.MethodGet,
		URL:        &u,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     http.Header{"Cookie": {c.cookie}},
		Host:       c.u.Host,
	}
	if err := req.Write(c.bw); err != nil {
		return nil, nil, c.fail(ctx, reused, err)
	}
	if err := c.bw.Flush(); err != nil {
		return nil, nil, c.fail(ctx, reused, err)
	}
	if _, err := c.br.Peek(1); err != nil {
		return nil, nil, c.fail(ctx, reused, err)
	}
	resp, err := http.ReadResponse(c.br, req)
	if err != nil {
		return nil, nil, c.fail(ctx, false, err)
	}
	var body []byte
	if n := resp.ContentLength; n >= 0 && n <= pollBodyLimit {
		body = make([]byte, n)
		_, err = io.ReadFull(resp.Body, body)
	} else {
		body, err = io.ReadAll(io.LimitReader(resp.Body, pollBodyLimit+1))
		if err == nil && len(body) > pollBodyLimit {
			err = fmt.Errorf("GET %s: answer larger than %d bytes", path, pollBodyLimit)
		}
	}
	if err != nil {
		return nil, nil, c.fail(ctx, false, err)
	}
	if resp.Close {
		c.close()
	}
	return resp, body, nil
}

// fail is the error of a request that failed with err: ctx's if it ended,
// errStale if a reused connection ended before any answer.
func (c *pollConn) fail(ctx context.Context, reused bool, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if reused && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) || isConnError(err)) {
		return fmt.Errorf("%w: %w", errStale, err)
	}
	return err
}

// isConnError reports whether err is the connection's own failure (a
// reset, a broken pipe), not its deadline passing.
func isConnError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && !op.Timeout()
}

func (c *pollConn) dial(ctx context.Context) error {
	nc, err := pollDialer.DialContext(ctx, "tcp", c.addr)
	if err != nil {
		return err
	}
	if c.u.Scheme == "https" {
		tc := tls.Client(nc, &tls.Config{ServerName: c.u.Hostname()})
		if err := tc.HandshakeContext(ctx); err != nil {
			nc.Close()
			return err
		}
		nc = tc
	}
	c.nc = nc
	if c.br == nil {
		c.br = bufio.NewReaderSize(nc, 4096)
		c.bw = bufio.NewWriterSize(nc, 1024)
	} else {
		c.br.Reset(nc)
		c.bw.Reset(nc)
	}
	return nil
}

// close closes the connection; the next get dials again.
func (c *pollConn) close() {
	if c.nc != nil {
		c.nc.Close()
		c.nc = nil
	}
}
