package gitserve

import (
	"context"
	"errors"
	"sync"
)

// Switch turns a Server on and off on demand, for the window's Sharing page: each Start
// makes a server with the same options, Stop ends it. changed is called whenever what the
// page shows may have changed (on, off, a key refused or approved).
type Switch struct {
	opts    Options
	changed func()

	mu     sync.Mutex
	srv    *Server
	cancel context.CancelFunc
	done   chan struct{}
	err    error // why the last server ended or did not start
}

// NewSwitch returns a switch, off, for servers with opts.
func NewSwitch(opts Options, changed func()) *Switch {
	if changed == nil {
		changed = func() {}
	}
	w := &Switch{opts: opts, changed: changed}
	refused := opts.Refused
	w.opts.Refused = func() {
		if refused != nil {
			refused()
		}
		changed()
	}
	return w
}

// Start turns the server on; it returns once it listens, or why it cannot.
func (w *Switch) Start() error {
	w.mu.Lock()
	if w.srv != nil {
		w.mu.Unlock()
		return nil
	}
	srv, err := New(w.opts)
	if err != nil {
		w.err = err
		w.mu.Unlock()
		w.changed()
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	w.srv, w.cancel, w.done, w.err = srv, cancel, done, nil
	w.mu.Unlock()
	ended := make(chan error, 1)
	go func() {
		err := srv.Run(ctx)
		ended <- err
		w.mu.Lock()
		if w.srv == srv {
			w.srv, w.err = nil, err
		}
		w.mu.Unlock()
		close(done)
		w.changed()
	}()
	select {
	case <-srv.Ready():
		w.changed()
		return nil
	case err := <-ended:
		if err == nil {
			err = errors.New("the server stopped as it started")
		}
		return err
	}
}

// Stop turns the server off and waits until it is. It is idempotent.
func (w *Switch) Stop() {
	w.mu.Lock()
	cancel, done := w.cancel, w.done
	w.srv, w.cancel, w.done = nil, nil, nil
	w.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
	w.changed()
}

// Server is the running server, or nil when off; err says why the last one ended.
func (w *Switch) Server() (srv *Server, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.srv, w.err
}

// Settings are the keys and roles the servers use.
func (w *Switch) Settings() *Settings { return w.opts.Settings }

// Approve gives a refused key a role.
func (w *Switch) Approve(fp, role string) error {
	_, err := w.opts.Settings.Approve(fp, role)
	w.changed()
	return err
}
