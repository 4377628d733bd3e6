package forward

import (
	"errors"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/httpstream"
)

// goneConn is an upgraded connection to a pod as it behaves after Roro sent GOAWAY to a pod
// that is going: stream requests get no answer, Close waits for streams that never end, and
// the transport never reports its end (over WebSocket it would at the next keepalive ping,
// up to 10 s later; with pings off, never).
type goneConn struct {
	release chan struct{} // closed by the test's cleanup: everything blocked returns
	closes  atomic.Int64
	creates atomic.Int64
}

func (c *goneConn) CreateStream(http.Header) (httpstream.Stream, error) {
	c.creates.Add(1)
	<-c.release
	return nil, errors.New("released")
}

func (c *goneConn) Close() error {
	c.closes.Add(1)
	<-c.release
	return nil
}

func (c *goneConn) CloseChan() <-chan bool             { return nil } // never
func (c *goneConn) SetIdleTimeout(time.Duration)       {}
func (c *goneConn) RemoveStreams(...httpstream.Stream) {}

// TestCloseFreesWaitingRequests: requests creating their streams on a pod connection when
// the forward closes it (its pod was deleted) are let go at once, not when the transport
// notices (seconds, or never): each returns errBroken with nothing moved, so the forward
// replays it to the next pod; and close itself does not wait for the far side (issue 14).
func TestCloseFreesWaitingRequests(t *testing.T) {
	conn := &goneConn{release: make(chan struct{})}
	t.Cleanup(func() { close(conn.release) })
	pc := newPodConn("gone", "uid", conn, map[string]int{"7000": 7000})
	type result struct {
		moved bool
		err   error
		at    time.Time
	}
	results := make(chan result, 4)
	for range 4 {
		client, server := net.Pipe()
		t.Cleanup(func() { client.Close(); server.Close() })
		go func() {
			moved, err := pc.serve(server, 7000, counters{in: new(atomic.Int64), out: new(atomic.Int64), answered: func() {}})
			results <- result{moved, err, time.Now()}
		}()
	}
	for conn.creates.Load() < 4 { // every request is waiting for its stream
		time.Sleep(time.Millisecond)
	}
	closed := make(chan time.Time, 1)
	go func() { pc.close(); closed <- time.Now() }()
	var closedAt time.Time
	select {
	case closedAt = <-closed:
	case <-time.After(time.Second):
		t.Fatal("close waited for the far side")
	}
	if !pc.broken() {
		t.Error("the pod connection does not say it is broken after close")
	}
	for range 4 {
		select {
		case r := <-results:
			if r.moved || !errors.Is(r.err, errBroken) {
				t.Errorf("a waiting request ended with moved=%v, %v; want errBroken with nothing moved (so it is replayed)", r.moved, r.err)
			}
			if d := r.at.Sub(closedAt); d > 100*time.Millisecond {
				t.Errorf("a waiting request ended %s after close", d)
			}
		case <-time.After(time.Second): // the stream-creation bound is 1 s: sooner than that
			t.Fatal("a request waiting for its stream was not let go when its pod connection closed")
		}
	}
	// The transport is closed too, in the background.
	for deadline := time.Now().Add(time.Second); conn.closes.Load() == 0 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	if conn.closes.Load() != 1 {
		t.Errorf("transport closed %d times, want once", conn.closes.Load())
	}
}
