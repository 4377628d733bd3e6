// Package worker runs templates in child processes bounded in time, memory, output and stack
// depth, so that a hostile workspace can fail a render but never take Roro down: Go cannot
// recover from running out of memory or stack, so no in-process guard is enough for the
// long-lived window and git server. A Pool is a render.Executor.
//
// A worker is the running executable itself, started with an environment variable that
// this package's init checks before main runs; any binary that imports the package (roro,
// and every test binary that renders) can serve as its own worker.
package worker

import (
	"context"
	"encoding/gob"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rorokube/roro/core/render"
)

// Defaults of Options.
const (
	DefaultTimeout = 10 * time.Second
	DefaultMemory  = 512 << 20
	DefaultIdle    = 30 * time.Second
)

// Options are a pool's bounds; zero fields take the defaults.
type Options struct {
	// Workers is how many renders run at once, each in its own process (default GOMAXPROCS).
	Workers int
	// Timeout bounds one render of one instance (default 10 s).
	Timeout time.Duration
	// Memory bounds one worker process, in bytes (default 512 MiB).
	Memory int64
	// Idle is how long an unused worker process waits for the next render (default 30 s).
	Idle time.Duration
	// Command makes the command that starts a worker: default, this executable. The pool
	// sets its environment, stdin, stdout and stderr.
	Command func() (*exec.Cmd, error)
}

// Pool runs renders in worker processes, reusing a process while its renders succeed or
// fail cleanly, and replacing it when one breaks a bound. It is safe for concurrent use.
type Pool struct {
	opts  Options
	slots chan struct{}

	mu     sync.Mutex
	idle   []*proc
	closed bool
}

var _ render.Executor = (*Pool)(nil)

// New returns a pool with opts' bounds. It starts no process until the first render.
func New(opts Options) *Pool {
	if opts.Workers <= 0 {
		opts.Workers = 2 * runtime.GOMAXPROCS(0)
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.Memory <= 0 {
		opts.Memory = DefaultMemory
	}
	if opts.Idle <= 0 {
		opts.Idle = DefaultIdle
	}
	if opts.Command == nil {
		opts.Command = self
	}
	return &Pool{opts: opts, slots: make(chan struct{}, opts.Workers)}
}

// Size is how many renders the pool runs at once: more callers wait their turn.
func (p *Pool) Size() int { return cap(p.slots) }

// self starts this executable as a worker.
func self() (*exec.Cmd, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find roro's executable to run templates in: %w", err)
	}
	return exec.Command(exe), nil
}

// Render executes files with engine over data, and decodes their output, in a worker
// process. A render that breaks a
// bound ends with a *BoundError naming the file it was running; ctx ending stops the
// render at once (its process is killed).
func (p *Pool) Render(ctx context.Context, engine string, files []render.File, data *render.Context) ([]render.Rendered, error) {
	select {
	case p.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-p.slots }()
	w, err := p.take()
	if err != nil {
		return nil, err
	}
	outs, err, healthy := w.run(ctx, p.opts, request{Engine: engine, Files: files, Context: *data})
	if healthy {
		p.put(w)
	} else {
		w.kill()
	}
	return outs, err
}

// Close stops the idle workers; a render still running stops its worker when it ends.
// Close is idempotent, and the pool renders nothing after it.
func (p *Pool) Close() error {
	p.mu.Lock()
	idle := p.idle
	p.idle, p.closed = nil, true
	p.mu.Unlock()
	for _, w := range idle {
		w.stop()
	}
	return nil
}

// take returns an idle worker, or starts one.
func (p *Pool) take() (*proc, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, errors.New("the render pool is closed")
	}
	if n := len(p.idle); n > 0 {
		w := p.idle[n-1]
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		return w, nil
	}
	p.mu.Unlock()
	return start(p.opts)
}

// put keeps w for the next render, for opts.Idle at most.
func (p *Pool) put(w *proc) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		w.stop()
		return
	}
	p.idle = append(p.idle, w)
	p.mu.Unlock()
	time.AfterFunc(p.opts.Idle, func() {
		p.mu.Lock()
		for i, v := range p.idle {
			if v == w && time.Since(w.used) >= p.opts.Idle {
				p.idle = append(p.idle[:i], p.idle[i+1:]...)
				p.mu.Unlock()
				w.stop()
				return
			}
		}
		p.mu.Unlock()
	})
}

// proc is one worker process.
type proc struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	enc    *gob.Encoder
	dec    *gob.Decoder
	stderr *head
	exited chan struct{} // closed once the process has been waited for
	err    error         // Wait's error, set before exited closes
	used   time.Time     // when its last render ended
}

// start starts a worker process bounded by opts.
func start(opts Options) (*proc, error) {
	cmd, err := opts.Command()
	if err != nil {
		return nil, err
	}
	// The worker needs nothing from Roro's environment, and must not see it: a template
	// cannot read what is not there.
	// One render at a time runs in a worker: one P is enough, and the pool's parallelism
	// comes from its workers.
	cmd.Env = []string{envVar + "=" + strconv.FormatInt(opts.Memory, 10), "GOMAXPROCS=1"}
	setParentDeath(cmd)
	w := &proc{cmd: cmd, stderr: &head{max: 4 << 10}, exited: make(chan struct{})}
	cmd.Stderr = w.stderr
	if w.stdin, err = cmd.StdinPipe(); err != nil {
		return nil, fmt.Errorf("start a render worker: %w", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("start a render worker: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start a render worker (%s): %w", cmd.Path, err)
	}
	go func() {
		w.err = cmd.Wait()
		close(w.exited)
	}()
	w.enc, w.dec = gob.NewEncoder(w.stdin), gob.NewDecoder(stdout)
	return w, nil
}

// result is what a worker's reader saw for a request.
type result struct {
	frame  frame
	broken error // the pipe failed: the process died or was killed
}

// run sends req to w and waits for its answer, the deadline or ctx. healthy says whether
// w can take another request.
func (w *proc) run(ctx context.Context, opts Options, req request) (rendered []render.Rendered, err error, healthy bool) {
	var mu sync.Mutex
	current := ""
	done := make(chan result, 1)
	go func() {
		if err := w.enc.Encode(&req); err != nil {
			done <- result{broken: err}
			return
		}
		for {
			var f frame
			if err := w.dec.Decode(&f); err != nil {
				done <- result{broken: err}
				return
			}
			if f.Done {
				done <- result{frame: f}
				return
			}
			mu.Lock()
			current = f.Started
			mu.Unlock()
		}
	}()
	at := func() string {
		mu.Lock()
		defer mu.Unlock()
		return current
	}
	timer := time.NewTimer(opts.Timeout)
	defer timer.Stop()
	select {
	case r := <-done:
		w.used = time.Now()
		if r.broken != nil {
			w.kill()
			return nil, w.failure(at(), opts, r.broken), false
		}
		if r.frame.Err != nil {
			return nil, r.frame.Err.err(), true
		}
		return r.frame.Rendered, nil, true
	case <-timer.C:
		w.kill()
		<-done
		return nil, &BoundError{File: at(), Bound: BoundTime, Limit: opts.Timeout.String()}, false
	case <-ctx.Done():
		w.kill()
		<-done
		where := ""
		if f := at(); f != "" {
			where = f + ": "
		}
		return nil, fmt.Errorf("%srender stopped: %w", where, ctx.Err()), false
	}
}

// failure explains why a worker's pipe failed during a render at file: the bound it broke,
// read from how the process ended.
func (w *proc) failure(file string, opts Options, pipeErr error) error {
	<-w.exited
	log := w.stderr.String()
	switch {
	case strings.Contains(log, "stack exceeds") || strings.Contains(log, "stack overflow"):
		return &BoundError{File: file, Bound: BoundDepth, Limit: fmt.Sprintf("%d MiB of stack", maxStack>>20)}
	case strings.Contains(log, "out of memory") || strings.Contains(log, "cannot allocate memory") ||
		strings.Contains(log, "pthread_create failed"):
		return &BoundError{File: file, Bound: BoundMemory, Limit: fmt.Sprintf("%d MiB", opts.Memory>>20)}
	}
	what := firstFatal(log)
	if what == "" {
		what = fmt.Sprint(w.err)
		if w.err == nil {
			what = pipeErr.Error()
		}
	}
	where := ""
	if file != "" {
		where = file + ": "
	}
	return fmt.Errorf("%sthe render process failed: %s", where, what)
}

// firstFatal picks the runtime's one-line reason out of a crashed worker's stderr.
func firstFatal(log string) string {
	for line := range strings.SplitSeq(log, "\n") {
		if strings.HasPrefix(line, "fatal error: ") || strings.HasPrefix(line, "panic: ") || strings.HasPrefix(line, "roro render worker: ") {
			return line
		}
	}
	return ""
}

// kill ends the process at once and waits for it.
func (w *proc) kill() {
	_ = w.cmd.Process.Kill()
	<-w.exited
}

// stop ends an idle worker: closing stdin ends its loop; a worker that does not exit
// within a second is killed.
func (w *proc) stop() {
	_ = w.stdin.Close()
	select {
	case <-w.exited:
	case <-time.After(time.Second):
		w.kill()
	}
}

// Bounds a render can break.
const (
	BoundTime   = "time"
	BoundMemory = "memory"
	BoundDepth  = "depth"
)

// BoundError is a render stopped because it broke one of the pool's bounds.
type BoundError struct {
	// File is the template that was running; "" when it stopped before the first.
	File string
	// Bound is BoundTime, BoundMemory or BoundDepth.
	Bound string
	// Limit is the bound's value, as the user reads it ("10s", "512 MiB").
	Limit string
}

func (e *BoundError) Error() string {
	where := ""
	if e.File != "" {
		where = e.File + ": "
	}
	switch e.Bound {
	case BoundTime:
		return fmt.Sprintf("%sthe render ran longer than %s and was stopped: does a template loop without end (a huge range, nested each)?", where, e.Limit)
	case BoundMemory:
		return fmt.Sprintf("%sthe render used more than %s of memory and was stopped: does a template build a huge value (until, repeat, a range over a huge list)?", where, e.Limit)
	}
	return fmt.Sprintf("%sthe templates nest too deep (past %s) and the render was stopped: does an include, partial or macro call itself?", where, e.Limit)
}

// head keeps the first max bytes written to it: a crashing Go runtime says why first, then
// prints stacks.
type head struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *head) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if room := t.max - len(t.buf); room > 0 {
		t.buf = append(t.buf, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

func (t *head) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}
