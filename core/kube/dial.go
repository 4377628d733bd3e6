package kube

import (
	"context"
	"net"
	"sync"
)

// dialer dials the API server and keeps every connection it opened until it closes, so a
// Cluster's Close can end them all: idle HTTP/2 connections that a watch or a stream left a
// moment ago included.
type dialer struct {
	d     *net.Dialer
	mu    sync.Mutex
	conns map[*trackedConn]struct{}
	done  bool
}

func (d *dialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := d.d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	tc := &trackedConn{Conn: c, owner: d}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.done {
		c.Close()
		return nil, net.ErrClosed
	}
	if d.conns == nil {
		d.conns = map[*trackedConn]struct{}{}
	}
	d.conns[tc] = struct{}{}
	return tc, nil
}

// closeAll closes every open connection and refuses new ones.
func (d *dialer) closeAll() {
	d.mu.Lock()
	conns := d.conns
	d.conns, d.done = nil, true
	d.mu.Unlock()
	for c := range conns {
		_ = c.Conn.Close()
	}
}

// trackedConn forgets itself in its dialer when it closes.
type trackedConn struct {
	net.Conn
	owner *dialer
	once  sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.owner.mu.Lock()
		delete(c.owner.conns, c)
		c.owner.mu.Unlock()
	})
	return c.Conn.Close()
}
