package runtime

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"

	"github.com/rorokube/roro/core/render"
	"github.com/rorokube/roro/core/workspace"
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

// forwardSpecs turns an app's declared forwards into the forward package's specs for one
// instance.
func forwardSpecs(app *workspace.App, inst render.InstanceInfo) ([]forward.Spec, error) {
	var specs []forward.Spec
	for i, fw := range app.File.Forwards {
		hold, err := fw.HoldDuration()
		if err != nil {
			return nil, fmt.Errorf("forwards[%d].hold: %w", i, err)
		}
		s := forward.Spec{Namespace: inst.Namespace, Target: ForwardTarget(fw.Target, inst), Ports: fw.Ports, Address: fw.Address, Hold: hold}
		if err := s.Check(); err != nil {
			return nil, fmt.Errorf("forwards[%d]: %w", i, err)
		}
		specs = append(specs, s)
	}
	return specs, nil
}

// loopback reports whether a forward's bind address stays on this machine.
func loopback(addr string) bool {
	if addr == "" || addr == "localhost" {
		return true
	}
	ip := net.ParseIP(addr)
	return ip != nil && ip.IsLoopback()
}

// checkAddresses refuses forwards that would listen beyond loopback unless the user allowed
// it on this machine: a workspace is untrusted, and must not open a database to the network.
func (e *Engine) checkAddresses(app *workspace.App) error {
	if e.opts.AllowNonLoopback {
		return nil
	}
	for i, fw := range app.File.Forwards {
		if !loopback(fw.Address) {
			return fmt.Errorf("%s: forwards[%d].address %q would open %s to the network: roro listens beyond 127.0.0.1 only when you allow it on this machine (--allow-forward-address)",
				filepath.Join(app.Dir, workspace.AppFileName), i, fw.Address, fw.Target)
		}
	}
	return nil
}

// checkForwards reports what is wrong with an app's forwards, before anything is applied,
// naming the app.json and the forward.
func checkForwards(app *workspace.App) error {
	_, err := forwardSpecs(app, render.InstanceInfo{Name: workspace.DefaultInstance, Namespace: app.Namespace()})
	if err != nil {
		return fmt.Errorf("%s: %w", filepath.Join(app.Dir, workspace.AppFileName), err)
	}
	return nil
}

// forwardSet is the running forwards of one instance.
type forwardSet struct {
	key    InstanceKey
	env    string
	specs  []forward.Spec
	cancel context.CancelFunc
	done   chan struct{}
	fws    []Forwarder
}

func (s *forwardSet) views() []ForwardView {
	out := make([]ForwardView, len(s.fws))
	for i, f := range s.fws {
		out[i] = ForwardView{App: s.key.App, Instance: s.key.Instance, Status: f.Status()}
	}
	return out
}

// StartForwards starts an instance's forwards in the background; they run until
// StopForwards, Down or Close. It returns once every local port is bound, or with the error
// that kept one from binding (then none runs, and a later call tries again). Starting
// forwards that run already does nothing.
func (e *Engine) StartForwards(ctx context.Context, app string, sel Selection) error {
	ws := e.Workspace()
	a, err := ws.Lookup(app)
	if err != nil {
		return err
	}
	if len(a.File.Forwards) == 0 {
		return fmt.Errorf("app %s declares no forwards: add \"forwards\" to its app.json", app)
	}
	t, err := e.target(ws, a, sel.Environment, sel.Instance, nil)
	if err != nil {
		return err
	}
	c, err := e.cluster(ctx, t.Environment)
	if err != nil {
		return err
	}
	return e.startForwards(ctx, c, t)
}

// startForwards starts t's forwards on c; its error is also shown in the snapshot.
func (e *Engine) startForwards(ctx context.Context, c Cluster, t Target) error {
	err := e.checkAddresses(t.App)
	if err == nil {
		err = e.bindForwards(ctx, c, t)
	}
	if !errors.Is(err, ErrClosed) {
		e.noteForwardError(t.Key(), err)
	}
	return err
}

func (e *Engine) bindForwards(ctx context.Context, c Cluster, t Target) error {
	specs, err := forwardSpecs(t.App, t.Instance)
	if err != nil {
		return fmt.Errorf("app %s: %w", t.App.Name, err)
	}
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return ErrClosed
	}
	if _, ok := e.forwards[t.Key()]; ok {
		e.mu.Unlock()
		return nil
	}
	fctx, cancel := context.WithCancel(e.ctx)
	set := &forwardSet{key: t.Key(), env: t.Environment, specs: specs, cancel: cancel, done: make(chan struct{})}
	for _, s := range specs {
		f, err := c.Forward(s, forward.Options{Transport: e.opts.Transport, Now: e.opts.Now, OnChange: e.changed})
		if err != nil {
			e.mu.Unlock()
			cancel()
			return fmt.Errorf("app %s: forward %s: %w", t.App.Name, s.Target, err)
		}
		set.fws = append(set.fws, f)
	}
	e.forwards[t.Key()] = set
	errc := make(chan error, len(set.fws))
	var wg sync.WaitGroup
	for _, f := range set.fws {
		wg.Go(func() {
			if err := f.Run(fctx); err != nil {
				errc <- fmt.Errorf("app %s: forward %s: %w", t.App.Name, f.Status().Target, err)
				cancel() // one forward that cannot start stops its siblings
			}
		})
	}
	e.wg.Go(func() {
		wg.Wait()
		close(set.done)
		e.changed()
	})
	e.mu.Unlock()
	e.changed()
	// Wait until every forward is bound, or one fails, or the caller gives up.
	for _, f := range set.fws {
		select {
		case <-f.Ready():
			continue
		case err := <-errc:
			e.dropForwards(set)
			return err
		case <-ctx.Done():
			e.dropForwards(set)
			return ctx.Err()
		case <-set.done:
			e.dropForwards(set)
			select {
			case err := <-errc:
				return err
			default:
				return fmt.Errorf("the forwards of %s ended before binding", t.Key())
			}
		}
	}
	return nil
}

// dropForwards stops a set and forgets it, when it is still the instance's, and returns its
// final statuses.
func (e *Engine) dropForwards(set *forwardSet) []ForwardView {
	set.cancel()
	<-set.done
	final := set.views()
	e.mu.Lock()
	if e.forwards[set.key] == set {
		delete(e.forwards, set.key)
	}
	e.mu.Unlock()
	e.changed()
	return final
}

// StopForwards stops an instance's forwards, if any, and returns once their ports are free.
func (e *Engine) StopForwards(app, instance string) {
	key := keyOf(app, instance)
	e.mu.Lock()
	set := e.forwards[key]
	delete(e.fwErrs, key)
	e.mu.Unlock()
	if set != nil {
		e.dropForwards(set)
	}
}

// StopAllForwards stops every forward and returns once every port is free, with their final
// statuses.
func (e *Engine) StopAllForwards() []ForwardView {
	e.mu.Lock()
	sets := make([]*forwardSet, 0, len(e.forwards))
	for _, s := range e.forwards {
		sets = append(sets, s)
	}
	e.mu.Unlock()
	slices.SortFunc(sets, func(a, b *forwardSet) int { return strings.Compare(a.key.String(), b.key.String()) })
	var final []ForwardView
	for _, s := range sets {
		final = append(final, e.dropForwards(s)...)
	}
	return final
}

// reconcileForwardsLocked compares running forwards with a new workspace: those whose app is
// gone or whose specs changed stop, and the changed ones restart (the returned functions,
// called without the lock). The others are untouched.
func (e *Engine) reconcileForwardsLocked(ws *workspace.Workspace) []func() {
	var todo []func()
	for key, set := range e.forwards {
		app := ws.App(key.App)
		var specs []forward.Spec
		var err error
		var t Target
		if app != nil {
			if t, err = e.target(ws, app, set.env, key.Instance, nil); err == nil {
				specs, err = forwardSpecs(app, t.Instance)
			}
		}
		if app != nil && err == nil && reflect.DeepEqual(specs, set.specs) {
			continue
		}
		restart := app != nil && err == nil && len(specs) > 0
		todo = append(todo, func() {
			e.dropForwards(set)
			if !restart {
				return
			}
			c, err := e.cluster(e.ctx, t.Environment)
			if err != nil {
				e.noteForwardError(t.Key(), err)
				return
			}
			_ = e.startForwards(e.ctx, c, t) // its error shows in the snapshot
		})
	}
	return todo
}

// noteForwardError records why an instance's forwards are not running, for the snapshot;
// nil clears it.
func (e *Engine) noteForwardError(key InstanceKey, err error) {
	e.mu.Lock()
	if err == nil {
		delete(e.fwErrs, key)
	} else {
		e.fwErrs[key] = err.Error()
	}
	e.mu.Unlock()
	e.changed()
}
