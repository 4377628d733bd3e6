package runtime

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/rorokube/roro/core/kube"
	"github.com/rorokube/roro/core/render"
)

// Logs streams the logs of an instance's pods (those its workloads select, and its bare
// pods) to emit, one line at a time. With opts.Follow it runs until ctx ends, adding pods as
// they start. The instance's secret values are masked in every line, as everywhere else.
// emit is never called after Logs returns.
func (e *Engine) Logs(ctx context.Context, app string, sel Selection, opts kube.LogOptions, emit func(kube.LogLine)) error {
	t, c, err := e.resolve(ctx, app, sel, nil)
	if err != nil {
		return err
	}
	return maskedLogs(ctx, c, t, opts, emit)
}

// maskedLogs streams t's logs from c with the instance's secret env values masked in every
// line (in their common forms, as render.Env.SecretValues lists them): a container may print
// its env, and secrets never print. A secret whose value cannot be read cannot be masked, so
// then no line is shown and the error names it.
func maskedLogs(ctx context.Context, c Cluster, t Target, opts kube.LogOptions, emit func(kube.LogLine)) error {
	env, err := c.Env(ctx, t)
	if env == nil {
		return fmt.Errorf("logs of %s: read its env to mask its secrets: %w", t.Key(), err)
	}
	if err != nil {
		var unread []string
		for name, secret := range env.Secret {
			if _, ok := env.Values[name]; secret && !ok {
				unread = append(unread, name)
			}
		}
		if len(unread) > 0 {
			slices.Sort(unread)
			return fmt.Errorf("logs of %s are not shown: secret %s could not be read, so it could not be masked: %w",
				t.Key(), strings.Join(unread, ", "), err)
		}
	}
	secrets := env.SecretValues()
	return c.Logs(ctx, t, opts, func(l kube.LogLine) {
		l.Line = render.MaskString(l.Line, secrets)
		emit(l)
	})
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
			return maskedLogs(ctx, c, t, kube.LogOptions{Follow: true, Tail: 200}, func(l kube.LogLine) {
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
