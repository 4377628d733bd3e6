package runtime

import (
	"context"
	"errors"
	"sync"
	"time"
)

// OperationKind is what an operation does.
type OperationKind string

// Operation kinds.
const (
	OpUp      OperationKind = "up"
	OpDown    OperationKind = "down"
	OpRestart OperationKind = "restart"
)

// OperationState is where an operation stands.
type OperationState string

// Operation states.
const (
	OpRunning   OperationState = "running"
	OpSucceeded OperationState = "succeeded"
	OpFailed    OperationState = "failed"
	OpCancelled OperationState = "cancelled"
)

// maxOpLog bounds an operation's log.
const maxOpLog = 1000

// Operation is one up, down or restart running in the background: a handle to follow it,
// wait for it, or cancel it. Its progress is in every Snapshot too.
type Operation struct {
	id      uint64
	kind    OperationKind
	targets []InstanceKey
	started time.Time
	cancel  context.CancelFunc
	done    chan struct{}
	// progress, when set, also receives every event (the CLI prints them).
	progress Reporter
	now      func() time.Time
	changed  func()

	mu      sync.Mutex
	state   OperationState
	step    Step
	log     []Event
	err     error
	ended   time.Time
	results []DownResult
}

// ID numbers the operation within its engine, from 1.
func (o *Operation) ID() uint64 { return o.id }

// Kind says what the operation does.
func (o *Operation) Kind() OperationKind { return o.kind }

// Done is closed when the operation has ended.
func (o *Operation) Done() <-chan struct{} { return o.done }

// Cancel stops the operation at its next step; what it applied stays applied. Calling it
// again, or after the end, does nothing.
func (o *Operation) Cancel() { o.cancel() }

// Step is the latest step the operation reported, empty before the first.
func (o *Operation) Step() Step {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.step
}

// Err is why the operation failed, nil while it runs or when it succeeded.
func (o *Operation) Err() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.err
}

// Wait waits for the end of the operation (or of ctx) and returns its error.
func (o *Operation) Wait(ctx context.Context) error {
	select {
	case <-o.done:
		return o.Err()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// DownResults says what a down did for each instance, once it has ended.
func (o *Operation) DownResults() []DownResult {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]DownResult(nil), o.results...)
}

// report records an event in the operation's log and passes it on.
func (o *Operation) report(ev Event) {
	ev.At = o.now()
	o.mu.Lock()
	o.step = ev.Step
	o.log = append(o.log, ev)
	if len(o.log) > maxOpLog {
		o.log = o.log[len(o.log)-maxOpLog:]
	}
	o.mu.Unlock()
	if o.progress != nil {
		o.progress(ev)
	}
	o.changed()
}

func (o *Operation) running() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.state == OpRunning
}

// finish records the end of the operation.
func (o *Operation) finish(err error, cancelled bool) {
	o.mu.Lock()
	o.ended = o.now()
	switch {
	case cancelled:
		o.state = OpCancelled
		if err == nil {
			err = context.Canceled
		}
	case err != nil:
		o.state = OpFailed
	default:
		o.state = OpSucceeded
	}
	o.err = err
	o.mu.Unlock()
}

func (o *Operation) view() OperationView {
	o.mu.Lock()
	defer o.mu.Unlock()
	v := OperationView{ID: o.id, Kind: o.kind, Targets: o.targets, State: o.state, Started: o.started, Ended: o.ended,
		Step: o.step, Log: append([]Event(nil), o.log...), Err: o.err}
	if o.err != nil && !errors.Is(o.err, context.Canceled) {
		v.Problems = Problems(o.err)
	}
	return v
}

// start registers an operation on targets, refusing it when another holds one of them, and
// runs fn in the background. fn's error ends the operation.
func (e *Engine) start(kind OperationKind, targets []InstanceKey, progress Reporter, fn func(ctx context.Context, op *Operation) error) (*Operation, error) {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil, ErrClosed
	}
	for _, k := range targets {
		if other := e.busy[k]; other != nil {
			e.mu.Unlock()
			return nil, &BusyError{Instance: k, Running: other.kind, ID: other.id}
		}
	}
	e.nextOp++
	ctx, cancel := context.WithCancel(e.ctx)
	op := &Operation{id: e.nextOp, kind: kind, targets: targets, started: e.opts.Now(), cancel: cancel,
		done: make(chan struct{}), progress: progress, now: e.opts.Now, changed: e.changed, state: OpRunning}
	for _, k := range targets {
		e.busy[k] = op
	}
	e.ops = append(e.ops, op)
	e.trimOpsLocked()
	e.wg.Add(1) // under mu, so Close cannot pass its Wait before this goroutine counts
	e.mu.Unlock()
	e.changed()
	go func() {
		defer e.wg.Done()
		defer close(op.done)
		defer cancel()
		err := sayUnreachableOnce(fn(ctx, op))
		op.finish(err, err != nil && ctx.Err() != nil)
		e.mu.Lock()
		for _, k := range targets {
			if e.busy[k] == op {
				delete(e.busy, k)
			}
		}
		e.mu.Unlock()
		e.changed()
	}()
	return op, nil
}

// Cancel cancels the running operation with id, as its handle's Cancel does, for a frontend
// that has only the snapshot. It reports whether such an operation was running.
func (e *Engine) Cancel(id uint64) bool {
	e.mu.Lock()
	var op *Operation
	for _, o := range e.ops {
		if o.id == id {
			op = o
		}
	}
	e.mu.Unlock()
	if op == nil || !op.running() {
		return false
	}
	op.Cancel()
	return true
}

// trimOpsLocked drops the oldest finished operations beyond KeepOperations.
func (e *Engine) trimOpsLocked() {
	finished := 0
	for _, op := range e.ops {
		if !op.running() {
			finished++
		}
	}
	for i := 0; i < len(e.ops) && finished > e.opts.KeepOperations; {
		if !e.ops[i].running() {
			e.ops = append(e.ops[:i], e.ops[i+1:]...)
			finished--
			continue
		}
		i++
	}
}
