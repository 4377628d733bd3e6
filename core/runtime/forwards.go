package runtime

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

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
	a := r.WS.App(app)
	if a == nil {
		return fmt.Errorf("no app %q in workspace %s (apps: %s)", app, r.WS.File.Name, strings.Join(r.WS.AppNames(), ", "))
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
		f, err := forward.New(c.Config, c.Kube, forward.Spec{
			Namespace: inst.Namespace, Target: ForwardTarget(fw.Target, inst), Ports: fw.Ports, Address: fw.Address,
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
