package runtime

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rorokube/roro/core/render"
	"github.com/rorokube/roro/forward"
)

// ForwardTarget is a forward's target for an instance: a name suffix instance adds its suffix
// to the target's name, as its templates add it to the objects' names.
func ForwardTarget(target string, inst render.InstanceInfo) string {
	if inst.Suffix == "" {
		return target
	}
	kind, name, ok := strings.Cut(target, "/")
	if !ok {
		return target
	}
	return kind + "/" + name + inst.Suffix
}

// Forwards runs every forward app.json declares for an app's instance until ctx ends, calling
// onChange with all their statuses after each change. It returns an error when a forward
// cannot start (a bad target, a local port in use), and stops the others then.
func (r *Runtime) Forwards(ctx context.Context, app string, sel Selection, transport string, onChange func([]forward.Status)) error {
	a, err := r.WS.Lookup(app)
	if err != nil {
		return err
	}
	if len(a.File.Forwards) == 0 {
		return fmt.Errorf("app %s declares no forwards: add \"forwards\" to its app.json", app)
	}
	inst, env, err := r.environmentOf(a, sel)
	if err != nil {
		return err
	}
	c, err := r.Connect(ctx, env)
	if err != nil {
		return err
	}
	var fs []*forward.Forward
	var mu sync.Mutex
	notify := func() {
		if onChange == nil {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		st := make([]forward.Status, len(fs))
		for i, f := range fs {
			st[i] = f.Status()
		}
		onChange(st)
	}
	mu.Lock()
	for _, fw := range a.File.Forwards {
		hold, _ := time.ParseDuration(fw.Hold) // checked when the workspace loaded; 0 means the default
		f, err := forward.New(c.Config, c.Kube, forward.Spec{
			Namespace: inst.Namespace, Target: ForwardTarget(fw.Target, inst), Ports: fw.Ports, Address: fw.Address, Hold: hold,
		}, forward.Options{Transport: transport, Now: r.now, OnChange: func() { go notify() }})
		if err != nil {
			mu.Unlock()
			return fmt.Errorf("app %s: forward %s: %w", app, fw.Target, err)
		}
		fs = append(fs, f)
	}
	mu.Unlock()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, len(fs))
	var wg sync.WaitGroup
	for _, f := range fs {
		wg.Go(func() {
			if err := f.Run(ctx); err != nil {
				errs <- fmt.Errorf("app %s: forward %s: %w", app, f.Status().Target, err)
				cancel()
			}
		})
	}
	wg.Wait()
	notify() // the final states (stopped), before returning
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	return errors.Join(all...)
}

// running is the set of forwards of one instance that this process runs in the background.
type running struct {
	cancel   context.CancelFunc
	done     chan struct{}
	mu       sync.Mutex
	statuses []forward.Status
}

// forwardKey names an instance's forwards.
func forwardKey(app, instance string) string { return app + "/" + instance }

// StartForwards starts an instance's forwards in the background, for as long as this process
// runs or until StopForwards (down stops them too). It returns once every local port is bound,
// or with the error that kept one from binding. Starting forwards that run already does
// nothing.
func (r *Runtime) StartForwards(ctx context.Context, app string, sel Selection, transport string) error {
	a := r.WS.App(app)
	if a == nil || len(a.File.Forwards) == 0 {
		return nil
	}
	inst, _, err := r.environmentOf(a, sel)
	if err != nil {
		return err
	}
	key := forwardKey(app, inst.Name)
	r.fwMu.Lock()
	if r.forwards == nil {
		r.forwards = map[string]*running{}
	}
	if _, ok := r.forwards[key]; ok {
		r.fwMu.Unlock()
		return nil
	}
	fctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	run := &running{cancel: cancel, done: make(chan struct{})}
	r.forwards[key] = run
	r.fwMu.Unlock()
	bound := make(chan struct{})
	var once sync.Once
	errc := make(chan error, 1)
	go func() {
		defer close(run.done)
		err := r.Forwards(fctx, app, sel, transport, func(all []forward.Status) {
			run.mu.Lock()
			run.statuses = all
			run.mu.Unlock()
			ready := len(all) == len(a.File.Forwards)
			for _, st := range all {
				ready = ready && st.State != forward.Starting
			}
			if ready {
				once.Do(func() { close(bound) })
			}
			if r.OnForwardChange != nil {
				r.OnForwardChange()
			}
		})
		errc <- err
	}()
	select {
	case <-bound:
		return nil
	case err := <-errc:
		r.fwMu.Lock()
		delete(r.forwards, key)
		r.fwMu.Unlock()
		if err == nil {
			err = fmt.Errorf("the forwards of %s ended before binding", key)
		}
		return err
	}
}

// StopForwards stops an instance's background forwards, if any, and waits until their ports
// are free.
func (r *Runtime) StopForwards(app, instance string) {
	r.fwMu.Lock()
	run := r.forwards[forwardKey(app, instance)]
	delete(r.forwards, forwardKey(app, instance))
	r.fwMu.Unlock()
	if run != nil {
		run.cancel()
		<-run.done
		if r.OnForwardChange != nil {
			r.OnForwardChange()
		}
	}
}

// ForwardStatuses returns the status of every background forward, by instance and target.
func (r *Runtime) ForwardStatuses() []forward.Status {
	r.fwMu.Lock()
	keys := make([]string, 0, len(r.forwards))
	for k := range r.forwards {
		keys = append(keys, k)
	}
	r.fwMu.Unlock()
	slices.Sort(keys)
	var out []forward.Status
	for _, k := range keys {
		r.fwMu.Lock()
		run := r.forwards[k]
		r.fwMu.Unlock()
		if run == nil {
			continue
		}
		run.mu.Lock()
		out = append(out, run.statuses...)
		run.mu.Unlock()
	}
	return out
}

// StopAllForwards stops every background forward.
func (r *Runtime) StopAllForwards() {
	r.fwMu.Lock()
	var keys []string
	for k := range r.forwards {
		keys = append(keys, k)
	}
	r.fwMu.Unlock()
	for _, k := range keys {
		app, inst, _ := strings.Cut(k, "/")
		r.StopForwards(app, inst)
	}
}
