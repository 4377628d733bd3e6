package forward

import (
	"net"
	"sync"
)

// replayLimit is how much a local connection may send before the pod first answers and still
// be moved, bytes and all, to another pod when the first one fails it.
const replayLimit = 64 << 10

// replayConn records what the local side sends until the pod first answers, so a connection
// whose pod went away before answering can be replayed to the next pod: the client never
// sees the failure.
type replayConn struct {
	net.Conn
	mu   sync.Mutex
	buf  []byte // what was read so far, while recording
	pos  int    // how much of buf this attempt has replayed
	keep bool   // still recording
	over bool   // more than replayLimit was sent: it cannot be replayed
}

func newReplayConn(c net.Conn) *replayConn { return &replayConn{Conn: c, keep: true} }

func (r *replayConn) Read(p []byte) (int, error) {
	r.mu.Lock()
	if r.pos < len(r.buf) {
		n := copy(p, r.buf[r.pos:])
		r.pos += n
		r.mu.Unlock()
		return n, nil
	}
	r.mu.Unlock()
	n, err := r.Conn.Read(p)
	if n > 0 {
		r.mu.Lock()
		if r.keep {
			if len(r.buf)+n > replayLimit {
				r.keep, r.over, r.buf = false, true, nil
			} else {
				r.buf = append(r.buf, p[:n]...)
			}
			r.pos = len(r.buf)
		}
		r.mu.Unlock()
	}
	return n, err
}

// answered stops recording: the pod has answered, so the connection is committed to it.
func (r *replayConn) answered() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.keep, r.buf, r.pos = false, nil, 0
}

// rewind prepares a replay of everything sent so far; false when that is not possible.
func (r *replayConn) rewind() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.over || !r.keep {
		return false
	}
	r.pos = 0
	return true
}
