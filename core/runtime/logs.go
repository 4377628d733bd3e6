package runtime

import (
	"context"

	"github.com/rorokube/roro/core/kube"
)

// Logs streams the logs of an instance's pods (those its workloads select, and its bare
// pods) to emit, one line at a time. With opts.Follow it runs until ctx ends, adding pods as
// they start. emit is never called after Logs returns.
func (e *Engine) Logs(ctx context.Context, app string, sel Selection, opts kube.LogOptions, emit func(kube.LogLine)) error {
	t, c, err := e.resolve(ctx, app, sel, nil)
	if err != nil {
		return err
	}
	return c.Logs(ctx, t, opts, emit)
}

// resolve finds app's instance for sel and its environment's cluster.
func (e *Engine) resolve(ctx context.Context, app string, sel Selection, values map[string]any) (Target, Cluster, error) {
	ws := e.Workspace()
	a, err := ws.Lookup(app)
	if err != nil {
		return Target{}, nil, err
	}
	t, err := e.target(ws, a, sel.Environment, sel.Instance, values)
	if err != nil {
		return Target{}, nil, err
	}
	c, err := e.cluster(ctx, t.Environment)
	if err != nil {
		return Target{}, nil, err
	}
	return t, c, nil
}

// LogBuffer is the latest lines of an instance's logs that the engine follows, with the
// state of the following.
type LogBuffer struct {
	Lines []kube.LogLine
	// Following is true while the engine streams; Err is why it stopped, when it failed.
	Following bool
	Err       error
	// Dropped counts the lines that fell out of the buffer.
	Dropped int
}

// logFollower follows one instance's logs into a ring of the latest lines.
type logFollower struct {
	cancel  context.CancelFunc
	max     int
	lines   []kube.LogLine
	dropped int
	err     error
	running bool
}

// maxLogLines bounds each instance's log buffer.
const maxLogLines = 5000

// FollowLogs starts following an instance's logs into a bounded buffer (the latest 5,000
// lines), read with LogLines; each new line publishes a snapshot signal. It runs until
// StopLogs or Close; following an instance already followed does nothing.
func (e *Engine) FollowLogs(app string, sel Selection) error {
	ws := e.Workspace()
	a, err := ws.Lookup(app)
	if err != nil {
		return err
	}
	t, err := e.target(ws, a, sel.Environment, sel.Instance, nil)
	if err != nil {
		return err
	}
	key := t.Key()
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return ErrClosed
	}
	if lf := e.logs[key]; lf != nil && lf.running {
		e.mu.Unlock()
		return nil
	}
	ctx, cancel := context.WithCancel(e.ctx)
	lf := &logFollower{cancel: cancel, max: maxLogLines, running: true}
	e.logs[key] = lf
	e.wg.Add(1) // under mu: see start
	e.mu.Unlock()
	go func() {
		defer e.wg.Done()
		defer cancel()
		err := func() error {
			c, err := e.cluster(ctx, t.Environment)
			if err != nil {
				return err
			}
			return c.Logs(ctx, t, kube.LogOptions{Follow: true, Tail: 200}, func(l kube.LogLine) {
				e.mu.Lock()
				lf.lines = append(lf.lines, l)
				if over := len(lf.lines) - lf.max; over > 0 {
					lf.lines = append(lf.lines[:0:0], lf.lines[over:]...)
					lf.dropped += over
				}
				e.mu.Unlock()
				e.changed()
			})
		}()
		e.mu.Lock()
		lf.running = false
		if ctx.Err() == nil {
			lf.err = err
		}
		e.mu.Unlock()
		e.changed()
	}()
	return nil
}

// LogLines returns a copy of an instance's log buffer.
func (e *Engine) LogLines(app, instance string) LogBuffer {
	e.mu.Lock()
	defer e.mu.Unlock()
	lf := e.logs[keyOf(app, instance)]
	if lf == nil {
		return LogBuffer{}
	}
	return LogBuffer{Lines: append([]kube.LogLine(nil), lf.lines...), Following: lf.running, Err: lf.err, Dropped: lf.dropped}
}

// StopLogs stops following an instance's logs and drops its buffer.
func (e *Engine) StopLogs(app, instance string) {
	key := keyOf(app, instance)
	e.mu.Lock()
	lf := e.logs[key]
	delete(e.logs, key)
	e.mu.Unlock()
	if lf != nil {
		lf.cancel()
	}
}
