package bench

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Transports.
const (
	TransportWS       = "ws"       // the native protocol on /api/ws, signed in
	TransportCompat   = "compat"   // the Django Channels endpoint /ws/chat/ROOM/, anonymous
	TransportLongPoll = "longpoll" // the native protocol over HTTP long-polling on /api/poll, signed in
)

// transport connects clients to a server in one protocol.
type transport interface {
	// connect joins c's room, connects, and returns once c will receive
	// every message sent to the room from now on.
	connect(ctx context.Context, c *client) (session, error)
	// seqs reports whether messages carry the room's sequence numbers;
	// without them order and duplicates are checked per sender.
	seqs() bool
	// doneConnecting releases what connect kept for reuse.
	doneConnecting()
	// release releases what the transport holds once every session
	// ended.
	release()
}

// session is one connected client.
type session interface {
	// base is the room's last sequence number when the client opened it:
	// later numbers are this client's to receive. 0 without seqs.
	base() int64
	// sendRate is the server's per-user send limit, 0 if unknown.
	sendRate() float64
	// send writes one message, which msg makes (and so stamps) once the
	// session has what it needs to send it at once (a long-poll session
	// waits for one of its POST slots first); only the client's sender
	// goroutine calls it. If stop is closed while it waits, it returns
	// errStopped without sending.
	send(stop <-chan struct{}, msg func() (clientID, body string)) error
	// interrupt cuts short a send blocked in a write once stop is closed:
	// the send returns errStopped, the message not sent. The run calls
	// it, from a goroutine of its own, for a sender that stop did not end
	// at once; it may come before or during the write, and more than
	// once. A session whose send heeds stop throughout does nothing.
	interrupt()
	// markRead moves the user's read position in the room to seq (a
	// frame with ref markRef); the reader goroutine or a timer of the
	// client calls it, one at a time, and never with the compat transport.
	markRead(seq int64) error
	// read calls fn for each event until the connection ends; only the
	// client's reader goroutine calls it.
	read(fn func(event)) error
	// close ends the session, unblocking read and send; it tries to say
	// goodbye until deadline.
	close(deadline time.Time)
}

type eventType int

const (
	evMessage eventType = iota + 1 // a message delivered to the room
	evAck                          // the server stored one of our sends
	evError                        // the server refused a request
	evBad                          // a frame the bench could not parse
	evResumed                      // long-poll: the server rebuilt the channel
	evReceipt                      // a receipt or receipts frame (other members' read positions)
	evOther                        // a frame of another type (presence, online count, typing...): counted only (settle)
)

// event is what a transport makes of one server frame.
type event struct {
	typ    eventType
	seq    int64  // message or ack: the room sequence number; 0 without seqs
	isText bool   // message: a chat message, not a join or leave
	body   string // message
	ref    string // ack, error: the client ID or ref of the request
	code   string // error
	text   string // error, bad: a description
	synced bool   // message: fetched by the client's own sync, so it may come twice
}

// errStopped is send's error when sending stopped before the message could
// go: it was not sent.
var errStopped = errors.New("sending stopped")

// newTransport returns the transport cfg asks for.
func newTransport(cfg Config) (transport, error) {
	switch cfg.Transport {
	case TransportWS:
		return &nativeTransport{dialer: newDialer(), http: newAPIClient()}, nil
	case TransportCompat:
		return &compatTransport{dialer: newDialer()}, nil
	case TransportLongPoll:
		return newPollTransport(cfg), nil
	}
	return nil, fmt.Errorf("unknown transport %q: want %s, %s or %s", cfg.Transport, TransportWS, TransportCompat, TransportLongPoll)
}

// newAPIClient returns an HTTP client for REST calls (apiCall), with a
// pool for up to maxConnecting of them at once.
func newAPIClient() *http.Client {
	return &http.Client{
		Timeout: apiTimeout,
		Transport: &http.Transport{
			MaxIdleConnsPerHost: maxConnecting,
			IdleConnTimeout:     10 * time.Second,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// apiTimeout bounds one REST call.
const apiTimeout = 30 * time.Second

func (*nativeTransport) seqs() bool { return true }
func (*compatTransport) seqs() bool { return false }

func (t *nativeTransport) doneConnecting() { t.http.CloseIdleConnections() }
func (*compatTransport) doneConnecting()   {}

func (t *nativeTransport) release() { t.http.CloseIdleConnections() }
func (*compatTransport) release()   {}
func (t *pollTransport) release()   { t.http.CloseIdleConnections() }
