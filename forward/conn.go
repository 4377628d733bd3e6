package forward

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/httpstream"
)

// podConn is the one upgraded connection to one pod that carries every local connection
// sent there, each as its own pair of streams.
//
// It has its own done signal, closed by Roro's close and by the transport's closing,
// whichever comes first; every wait on the connection selects on it. The transport's own
// signal (CloseChan) is not enough: after Roro closes an SPDY connection it fires only once
// the far side drops it, which over WebSocket is at the client's next write (the keepalive
// ping, up to 10 s later) and may be never.
type podConn struct {
	pod  string
	uid  string
	conn httpstream.Connection
	raw  io.Closer // the socket under conn; nil when there is none (tests)
	// chosen is when new connections first went to the pod (its start grace counts from
	// then; a pod dialled ahead is connected before it is Ready). Written under the forward's
	// mu before any connection can see the pod connection.
	chosen time.Time
	ports  map[string]int // remote spec → the pod's port
	ids    atomic.Int64
	once   sync.Once

	done     chan struct{}
	doneOnce sync.Once

	mu      sync.Mutex
	closed  bool
	streams map[httpstream.Stream]struct{} // open, so close can reset them
}

// newPodConn wraps an upgraded connection to pod, and raw, the socket under it; its done
// signal follows the transport's closing from now on.
func newPodConn(pod, uid string, conn httpstream.Connection, raw io.Closer, ports map[string]int) *podConn {
	pc := &podConn{pod: pod, uid: uid, conn: conn, raw: raw, ports: ports, done: make(chan struct{})}
	go func() {
		select {
		case <-conn.CloseChan():
			pc.finish()
		case <-pc.done:
		}
	}()
	return pc
}

// finish fires the done signal; idempotent.
func (pc *podConn) finish() { pc.doneOnce.Do(func() { close(pc.done) }) }

// errBroken means the upgraded connection itself failed; the local connection may be retried
// on a new one.
var errBroken = errors.New("connection to the pod broke")

// refusedError is the pod's port refusing (or failing) a connection: the kubelet reported it
// on the error stream. Reconnecting does not help; the port must come up.
type refusedError struct {
	port int
	msg  string
}

func (e *refusedError) Error() string {
	return fmt.Sprintf("pod port %d: %s", e.port, e.msg)
}

// counters are the byte counts of a forward, and what to call when the pod first answers.
type counters struct {
	in, out *atomic.Int64
	// answered is called once, when the first bytes come back from the pod.
	answered func()
}

// countingWriter adds what it writes to n, and calls first once before the first write.
type countingWriter struct {
	w     io.Writer
	n     *atomic.Int64
	first func()
}

func (c *countingWriter) Write(p []byte) (int, error) {
	if c.first != nil && len(p) > 0 {
		c.first()
		c.first = nil
	}
	n, err := c.w.Write(p)
	c.n.Add(int64(n))
	return n, err
}

// serve carries one local connection to the pod's port over new streams. It returns
// errBroken (wrapped) when the upgraded connection failed, and whether any byte had moved by
// then (if not, the caller may retry on a new connection); a *refusedError when the pod's port
// refused.
func (pc *podConn) serve(local net.Conn, port int, cnt counters) (moved bool, err error) {
	id := strconv.FormatInt(pc.ids.Add(1), 10)
	headers := http.Header{}
	headers.Set(corev1.StreamType, corev1.StreamTypeError)
	headers.Set(corev1.PortHeader, strconv.Itoa(port))
	headers.Set(corev1.PortForwardRequestIDHeader, id)
	errStream, err := pc.createStream(headers)
	if err != nil {
		return false, fmt.Errorf("%w: error stream: %v", errBroken, err)
	}
	_ = errStream.Close() // nothing is written to it
	defer pc.release(errStream)
	errc := make(chan string, 1)
	go func() {
		msg, _ := io.ReadAll(errStream)
		errc <- strings.TrimSpace(string(msg))
	}()
	headers.Set(corev1.StreamType, corev1.StreamTypeData)
	data, err := pc.createStream(headers)
	if err != nil {
		return false, fmt.Errorf("%w: data stream: %v", errBroken, err)
	}
	defer pc.release(data)

	var inBytes atomic.Int64
	remoteDone := make(chan struct{})
	go func() {
		n, _ := io.Copy(&countingWriter{w: local, n: cnt.in, first: cnt.answered}, data)
		inBytes.Store(n)
		close(remoteDone)
	}()
	localDone := make(chan struct{})
	go func() {
		_, _ = io.Copy(&countingWriter{w: data, n: cnt.out}, local)
		_ = data.Close() // the local side is done sending
		close(localDone)
	}()
	select {
	case <-remoteDone:
	case <-localDone:
		select { // wait for the pod's answer, or for its end
		case <-remoteDone:
		case <-pc.done:
		}
	case <-pc.done:
	}
	_ = data.Reset()
	var failure error
	select {
	case msg := <-errc:
		if msg != "" {
			failure = &refusedError{port: port, msg: msg}
		}
	case <-pc.done:
		failure = fmt.Errorf("%w: closed while in use", errBroken)
	}
	// Whether the pod answered is known only once the copy from it has ended: the reset ends
	// its read; a local side that does not read could hold its write, so that is cut short.
	select {
	case <-remoteDone:
	case <-time.After(time.Second):
		_ = local.SetWriteDeadline(time.Now())
		<-remoteDone
	}
	moved = inBytes.Load() > 0
	if !moved {
		// The pod never answered: stop reading the local side, and leave it open, so the
		// caller may replay it to another pod (or end it).
		_ = local.SetReadDeadline(time.Now())
		<-localDone
		_ = local.SetReadDeadline(time.Time{})
		return false, failure
	}
	// End the local connection the way the remote ended: a half-closed TCP peer sees EOF.
	if tc, ok := underlyingTCP(local); ok {
		_ = tc.CloseWrite()
	}
	return moved, failure
}

// underlyingTCP finds the TCP connection under a wrapped local connection.
func underlyingTCP(c net.Conn) (*net.TCPConn, bool) {
	if r, ok := c.(*replayConn); ok {
		c = r.Conn
	}
	tc, ok := c.(*net.TCPConn)
	return tc, ok
}

// streamTimeout bounds the creation of one stream. A healthy connection answers in
// milliseconds; one to a pod that is gone may never answer (client-go waits 30 s), and a
// new local connection must not wait on it.
const streamTimeout = time.Second

// createStream creates a stream, giving up (and closing the connection, so it is replaced)
// when the other side does not answer within streamTimeout.
func (pc *podConn) createStream(headers http.Header) (httpstream.Stream, error) {
	type result struct {
		s   httpstream.Stream
		err error
	}
	done := make(chan result, 1)
	go func() {
		s, err := pc.conn.CreateStream(headers.Clone())
		done <- result{s, err}
	}()
	timer := time.NewTimer(streamTimeout)
	defer timer.Stop()
	select {
	case r := <-done:
		if r.err == nil {
			pc.track(r.s)
		}
		return r.s, r.err
	case <-pc.done:
		return nil, errors.New("connection closed")
	case <-timer.C:
		pc.close()
		return nil, fmt.Errorf("no answer within %s", streamTimeout)
	}
}

// close ends the pod connection at once, and with it every stream on it; idempotent. It
// fires the done signal first, so every request waiting on the connection moves on now (to
// the next pod when the pod never answered it), closes the socket under the connection, so
// nothing of it outlives the close whatever the far side does, and then resets the streams
// still open, which ends their local reads (their reset frames are not sent: the far side
// sees the whole connection go, and a churning pod may have thousands of streams). SPDY's own
// close, run in the background for its bookkeeping, sends GOAWAY and then waits, without a
// bound, for every stream the far side may never answer; it ends when its read loop sees the
// closed socket.
func (pc *podConn) close() {
	pc.once.Do(func() {
		pc.finish()
		if pc.raw != nil {
			_ = pc.raw.Close()
		}
		pc.mu.Lock()
		pc.closed = true
		open := pc.streams
		pc.streams = nil
		pc.mu.Unlock()
		for s := range open {
			_ = s.Reset()
		}
		go func() { _ = pc.conn.Close() }()
	})
}

// track records a new stream as open; on a connection closed meanwhile it resets it.
func (pc *podConn) track(s httpstream.Stream) {
	pc.mu.Lock()
	if !pc.closed {
		if pc.streams == nil {
			pc.streams = map[httpstream.Stream]struct{}{}
		}
		pc.streams[s] = struct{}{}
		pc.mu.Unlock()
		return
	}
	pc.mu.Unlock()
	_ = s.Reset()
}

// release forgets a stream that serve is done with.
func (pc *podConn) release(s httpstream.Stream) {
	pc.mu.Lock()
	delete(pc.streams, s)
	pc.mu.Unlock()
	pc.conn.RemoveStreams(s)
}

// broken reports whether the pod connection has ended (closed by Roro or by the transport).
func (pc *podConn) broken() bool {
	select {
	case <-pc.done:
		return true
	default:
		return false
	}
}
