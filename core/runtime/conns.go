package runtime

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/rorokube/roro/core/kube"
)

// conn is one environment's cluster connection: a goroutine connects, watches, pings, and
// reconnects with backoff. Its fields are guarded by the engine's mu.
type conn struct {
	env string
	// kctx is the environment's "context" in roro.json when the connection started; a
	// reload that changes it starts a new connection.
	kctx   string
	cancel context.CancelFunc
	// synced is true once the watch has reported the cluster's instances since the
	// connection was made; until then the snapshot does not know what runs.
	synced bool

	state    ConnState
	cluster  Cluster
	reason   string
	lastErr  error
	since    time.Time
	attempts int
	// attempted is closed and replaced after every attempt to connect, for waiters; retry
	// asks for the next attempt at once.
	attempted chan struct{}
	retry     chan struct{}
	instances []InstanceView
}

func (c *conn) view() ConnectionView {
	v := ConnectionView{Environment: c.env, State: c.state, Reason: c.reason, Since: c.since, Attempts: c.attempts, Synced: c.synced}
	if c.cluster != nil {
		v.Context, v.Server = c.cluster.Context(), c.cluster.Server()
	}
	return v
}

// syncConnsLocked starts a connection for every environment of the workspace (one for ""
// when it has none) and stops those of environments it no longer has.
func (e *Engine) syncConnsLocked() {
	envs := e.ws.EnvironmentNames()
	if len(envs) == 0 {
		envs = []string{""}
	}
	for env, c := range e.conns {
		found := false
		for _, x := range envs {
			found = found || x == env
		}
		if !found || c.kctx != e.contextOf(env) {
			c.cancel()
			delete(e.conns, env)
		}
	}
	for _, env := range envs {
		if _, ok := e.conns[env]; ok {
			continue
		}
		ctx, cancel := context.WithCancel(e.ctx)
		c := &conn{env: env, kctx: e.contextOf(env), cancel: cancel, state: Connecting, since: e.opts.Now(),
			attempted: make(chan struct{}), retry: make(chan struct{}, 1)}
		e.conns[env] = c
		e.wg.Go(func() { e.runConn(ctx, c) })
	}
}

// contextOf is the kubeconfig context environment env runs on: the one the user picked for
// this session, else the environment's "context" in roro.json ("" for the current one).
func (e *Engine) contextOf(env string) string {
	if e.contextOverride != "" {
		return e.contextOverride
	}
	return e.ws.File.Environments[env].Context
}

// SetContext points every environment at the kubeconfig context name for this session ("" goes
// back to each environment's own): the connections reconnect there, and operations that run
// already finish where they started.
func (e *Engine) SetContext(name string) {
	e.mu.Lock()
	if e.closed || e.contextOverride == name {
		e.mu.Unlock()
		return
	}
	e.contextOverride = name
	e.syncConnsLocked()
	e.mu.Unlock()
	e.changed()
}

// retire ends a connection whose environment left the workspace (or changed its context):
// whoever waits on it learns why, and its cluster stays open for the operations still using
// it, until Close.
func (e *Engine) retire(c *conn) {
	e.mu.Lock()
	defer e.mu.Unlock()
	c.state, c.reason = Unreachable, "environment "+c.env+" changed in the workspace"
	c.lastErr = errors.New("the connection of environment " + c.env + " ended: the environment changed in the workspace")
	if c.cluster != nil {
		e.retired = append(e.retired, c.cluster)
		c.cluster = nil
	}
	close(c.attempted)
	c.attempted = make(chan struct{})
}

// setConn updates a connection under the engine's lock and publishes when that changed
// what the snapshot shows (a ping that finds all as it was publishes nothing, so an idle
// window never redraws).
func (e *Engine) setConn(c *conn, fn func()) {
	e.mu.Lock()
	before, instances := c.view(), c.instances
	fn()
	same := c.view() == before && slices.EqualFunc(c.instances, instances, sameInstance)
	e.mu.Unlock()
	if !same {
		e.changed()
	}
}

// sameInstance reports whether two views of a running instance show the same.
func sameInstance(a, b InstanceView) bool {
	if a.App != b.App || a.Instance != b.Instance || a.Health != b.Health || a.Namespace != b.Namespace ||
		a.Environment != b.Environment || len(a.Objects) != len(b.Objects) {
		return false
	}
	for i := range a.Objects {
		if a.Objects[i] != b.Objects[i] {
			return false
		}
	}
	return true
}

// runConn connects, then watches and pings until ctx ends; a failure to connect or a failed
// ping makes the connection unreachable, with the reason, until an attempt succeeds.
func (e *Engine) runConn(ctx context.Context, c *conn) {
	defer e.retire(c)
	backoff := e.opts.RetryMin
	for ctx.Err() == nil {
		cl, err := e.opts.Connect(ctx, c.env, c.kctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			e.setConn(c, func() {
				if c.state != Unreachable {
					c.since = e.opts.Now()
				}
				c.state, c.reason, c.lastErr = Unreachable, reasonOf(err), err
				c.attempts++
				close(c.attempted)
				c.attempted = make(chan struct{})
			})
			t := time.NewTimer(jitter(backoff))
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-c.retry:
			case <-t.C:
			}
			t.Stop()
			backoff = min(backoff*2, e.opts.RetryMax)
			continue
		}
		backoff = e.opts.RetryMin
		e.setConn(c, func() {
			c.cluster, c.state, c.reason, c.lastErr, c.since, c.attempts = cl, Connected, "", nil, e.opts.Now(), 0
			c.synced = false
			close(c.attempted)
			c.attempted = make(chan struct{})
		})
		e.connected(ctx, c, cl)
		return
	}
}

// connected watches cl (when the engine watches) and pings it until ctx ends, keeping the
// connection's state true: a failed ping makes it unreachable, the next answer connected.
func (e *Engine) connected(ctx context.Context, c *conn, cl Cluster) {
	if e.opts.Watch {
		wctx, cancel := context.WithCancel(ctx)
		watched := make(chan struct{})
		defer func() { cancel(); <-watched }() // the watch ends before the cluster closes
		e.wg.Go(func() {
			defer close(watched)
			backoff := e.opts.RetryMin
			for wctx.Err() == nil {
				err := cl.Watch(wctx, func(ivs []InstanceView) {
					mine := ivs[:0:0]
					for _, iv := range ivs {
						if iv.Environment == c.env || iv.Environment == "" {
							mine = append(mine, iv)
						}
					}
					e.setConn(c, func() { c.instances, c.synced = mine, true })
				})
				if wctx.Err() != nil || err == nil {
					return
				}
				if !sleep(wctx, jitter(backoff)) {
					return
				}
				backoff = min(backoff*2, e.opts.RetryMax)
			}
		})
	}
	tick := time.NewTicker(e.opts.PingEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-c.retry: // an operation wants to know now
		}
		err := cl.Ping(ctx)
		if ctx.Err() != nil {
			return
		}
		e.setConn(c, func() {
			defer func() {
				close(c.attempted)
				c.attempted = make(chan struct{})
			}()
			switch {
			case err != nil && c.state != Unreachable:
				c.state, c.reason, c.lastErr, c.since = Unreachable, reasonOf(err), err, e.opts.Now()
				c.attempts = 1
			case err != nil:
				c.reason, c.lastErr = reasonOf(err), err
				c.attempts++
			case c.state != Connected:
				c.state, c.reason, c.lastErr, c.since, c.attempts = Connected, "", nil, e.opts.Now(), 0
			}
		})
	}
}

// cluster returns environment env's cluster for an operation: at once when connected, else
// after the next attempt to connect, with the reason it failed. ctx bounds the wait.
func (e *Engine) cluster(ctx context.Context, env string) (Cluster, error) {
	e.mu.Lock()
	c := e.conns[env]
	if c == nil {
		e.mu.Unlock()
		return nil, errors.New("no connection for environment " + env)
	}
	if c.cluster != nil && c.state == Connected {
		cl := c.cluster
		e.mu.Unlock()
		return cl, nil
	}
	if c.state == Unreachable {
		// It failed before: try again now rather than wait out the backoff (or the next
		// ping, when it was connected before).
		select {
		case c.retry <- struct{}{}:
		default:
		}
	}
	wait := c.attempted
	e.mu.Unlock()
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-wait:
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if c.cluster != nil && c.state == Connected {
		return c.cluster, nil
	}
	return nil, c.lastErr
}

// reasonOf is the short cause of a connection failure.
func reasonOf(err error) string {
	var u *kube.UnreachableError
	if errors.As(err, &u) {
		return u.Reason()
	}
	return err.Error()
}

// sleep waits d, or less when ctx ends first; it reports whether the full time passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// jitter spreads d over [d/2, d).
func jitter(d time.Duration) time.Duration {
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}
