package forward

import (
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/moby/spdystream"
	"k8s.io/apimachinery/pkg/util/httpstream"
)

// spdyConn is the client side of the SPDY/3.1 connection a port forward runs on (directly,
// or inside the WebSocket tunnel). It is client-go's (k8s.io/streaming's spdy connection)
// less what a port-forward client never uses (streams opened by the server, a registry of
// streams: podConn keeps its own), and with one difference that matters: a stream the far
// side does not answer is given up after streamTimeout by the goroutine that waits for the
// answer, where client-go's waits 30 s whatever becomes of the connection. So no goroutine
// of a pod connection outlives it by more than that (TestClosedPodConnectionFreesItsSocket).
type spdyConn struct {
	conn *spdystream.Connection
}

// newSPDYConn starts SPDY on raw, with keepalive pings every pingPeriod.
func newSPDYConn(raw net.Conn, pingPeriod time.Duration) (*spdyConn, error) {
	conn, err := spdystream.NewConnection(raw, false)
	if err != nil {
		_ = raw.Close()
		return nil, err
	}
	// A port-forward server never opens streams; refuse any it does.
	go conn.Serve(func(s *spdystream.Stream) { _ = s.Reset() })
	if pingPeriod > 0 {
		go func() {
			t := time.NewTicker(pingPeriod)
			defer t.Stop()
			for {
				select {
				case <-conn.CloseChan():
					return
				case <-t.C:
				}
				_, _ = conn.Ping() // ends at an answer or at the connection's end
			}
		}()
	}
	return &spdyConn{conn: conn}, nil
}

// CreateStream opens a stream and waits at most streamTimeout for the server's answer; a
// stream that got none is reset.
func (c *spdyConn) CreateStream(headers http.Header) (httpstream.Stream, error) {
	s, err := c.conn.CreateStream(headers, nil, false)
	if err != nil {
		return nil, err
	}
	if err := s.WaitTimeout(streamTimeout); err != nil {
		_ = s.Reset()
		return nil, fmt.Errorf("no answer to a new stream within %s: %w", streamTimeout, err)
	}
	return s, nil
}

// Close sends GOAWAY; SPDY then ends the connection in the background once its streams are
// gone (at once when podConn has closed the socket under it).
func (c *spdyConn) Close() error { return c.conn.Close() }

// CloseChan is closed when the connection has ended.
func (c *spdyConn) CloseChan() <-chan bool { return c.conn.CloseChan() }

// SetIdleTimeout ends the connection after timeout without frames.
func (c *spdyConn) SetIdleTimeout(timeout time.Duration) { c.conn.SetIdleTimeout(timeout) }

// RemoveStreams does nothing: spdyConn keeps no registry of streams.
func (c *spdyConn) RemoveStreams(...httpstream.Stream) {}
