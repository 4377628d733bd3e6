package runtime

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/rorokube/roro/core/kube"
	"github.com/rorokube/roro/core/workspace"
)

// Selection says which apps and instance a command acts on.
type Selection struct {
	// Apps are app names; empty means every app.
	Apps []string
	// Environment and Instance as in render.Request.
	Environment string
	Instance    string
}

// UpRequest says what Up runs and how.
type UpRequest struct {
	Selection
	// Values are the command line's values, the highest layer, for the apps named.
	Values map[string]any
	// ForceConflicts takes over fields other field managers own.
	ForceConflicts bool
	// NoWait ends once applied, without waiting for health.
	NoWait bool
	// Timeout bounds the wait for each app's health; default 5 minutes.
	Timeout time.Duration
	// Forward starts each app's forwards once it is healthy; they run until Down, Close or
	// StopForwards.
	Forward bool
	// Parallel bounds how many apps of one dependency level come up at once; 0 means all of
	// them, 1 one app at a time.
	Parallel int
	// Progress also receives every event (the CLI prints them); the snapshot has them anyway.
	Progress Reporter
}

// DownRequest says what Down removes.
type DownRequest struct {
	Selection
	DownOptions
	Progress Reporter
}

// upTarget is one instance of an up, and whether it is a dependency of a further instance
// that comes up only when it does not run yet.
type upTarget struct {
	Target
	onlyIfMissing bool
	level         int
}

// Up brings the selected apps (and the apps they depend on) up, in the background: render
// with env resolved from the cluster, a server-side dry run of every object (nothing is
// written if any fails, and every failure is listed), namespaces and CRDs first, then apps
// level by level in dependency order, the apps of one level in parallel: apply, prune what
// the instance no longer renders, wait for health, start forwards. A mistake in the request
// (an unknown app, a bad forward) is an error at once; so is an instance that another
// operation is working on.
func (e *Engine) Up(req UpRequest) (*Operation, error) {
	ws := e.Workspace()
	targets, err := e.upTargets(ws, req)
	if err != nil {
		return nil, err
	}
	if req.Timeout <= 0 {
		req.Timeout = 5 * time.Minute
	}
	keys := make([]InstanceKey, len(targets))
	for i, t := range targets {
		keys[i] = t.Key()
	}
	return e.start(OpUp, keys, req.Progress, func(ctx context.Context, op *Operation) error {
		return e.runUp(ctx, op, targets, req)
	})
}

// upTargets resolves an up's instances, dependencies first, each with its level.
func (e *Engine) upTargets(ws *workspace.Workspace, req UpRequest) ([]upTarget, error) {
	apps, err := ordered(ws, req.Apps, true)
	if err != nil {
		return nil, err
	}
	level := map[string]int{}
	var out []upTarget
	var errs []error
	for _, app := range apps {
		for _, d := range app.File.DependsOn {
			level[app.Name] = max(level[app.Name], level[d]+1)
		}
		// A dependency of a further instance (up api --instance pr-42) is its own default
		// instance, brought up in its default environment only when it does not run yet, so
		// a second copy of an app never moves what the first one uses.
		onlyIfMissing := len(req.Apps) > 0 && !slices.Contains(req.Apps, app.Name) &&
			req.Instance != "" && req.Instance != workspace.DefaultInstance
		env, inst, values := req.Environment, req.Instance, req.Values
		if onlyIfMissing {
			env, inst, values = "", "", nil
		} else if len(req.Apps) > 0 && !slices.Contains(req.Apps, app.Name) {
			values = nil // command-line values are for the apps named, not their dependencies
		}
		t, err := e.target(ws, app, env, inst, values)
		if err != nil {
			errs = append(errs, &AppError{App: app.Name, Err: err})
			continue
		}
		if req.Forward {
			err := checkForwards(app)
			if err == nil {
				err = e.checkAddresses(app)
			}
			if err != nil {
				errs = append(errs, &AppError{App: app.Name, Err: err})
				continue
			}
		}
		out = append(out, upTarget{Target: t, onlyIfMissing: onlyIfMissing, level: level[app.Name]})
	}
	return out, errors.Join(errs...)
}

// runUp is the body of an up operation: a list of steps.
func (e *Engine) runUp(ctx context.Context, op *Operation, targets []upTarget, req UpRequest) error {
	clusters, err := e.clustersFor(ctx, targets)
	if err != nil {
		return err
	}
	targets, err = e.skipRunning(ctx, op, clusters, targets)
	if err != nil || len(targets) == 0 {
		return err
	}
	opts := kube.ApplyOptions{ForceConflicts: req.ForceConflicts}
	plans, err := e.planAll(ctx, op, clusters, targets, opts)
	if err != nil {
		return err
	}
	if err := e.foundationAll(ctx, op, clusters, plans, opts); err != nil {
		return err
	}
	byLevel := map[int][]*Plan{}
	levels := []int{}
	for i, p := range plans {
		l := targets[i].level
		if _, ok := byLevel[l]; !ok {
			levels = append(levels, l)
		}
		byLevel[l] = append(byLevel[l], p)
	}
	slices.Sort(levels)
	for _, l := range levels {
		if err := ctx.Err(); err != nil {
			return err
		}
		var wg sync.WaitGroup
		errs := make([]error, len(byLevel[l]))
		slots := make(chan struct{}, len(byLevel[l]))
		if req.Parallel > 0 {
			slots = make(chan struct{}, req.Parallel)
		}
		for i, p := range byLevel[l] {
			slots <- struct{}{}
			wg.Go(func() {
				defer func() { <-slots }()
				errs[i] = e.upOne(ctx, op, clusters[p.Target.Environment], p, req)
			})
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return err
		}
	}
	return nil
}

// clustersFor connects to the environments of targets.
func (e *Engine) clustersFor(ctx context.Context, targets []upTarget) (map[string]Cluster, error) {
	clusters := map[string]Cluster{}
	for _, t := range targets {
		if _, ok := clusters[t.Environment]; ok {
			continue
		}
		c, err := e.cluster(ctx, t.Environment)
		if err != nil {
			return nil, err
		}
		clusters[t.Environment] = c
	}
	return clusters, nil
}

// skipRunning drops the dependencies of a further instance that already run.
func (e *Engine) skipRunning(ctx context.Context, op *Operation, clusters map[string]Cluster, targets []upTarget) ([]upTarget, error) {
	var out []upTarget
	for _, t := range targets {
		if t.onlyIfMissing {
			env, running, err := clusters[t.Environment].Running(ctx, t.Target)
			if err != nil {
				return nil, &AppError{App: t.App.Name, Err: err}
			}
			if running {
				op.report(Event{App: t.App.Name, Instance: t.Instance.Name, Step: StepRunning, Message: "dependency already up in " + env})
				continue
			}
		}
		out = append(out, t)
	}
	return out, nil
}

// planAll renders and dry-runs every target, per environment; nothing is written, and every
// failure of every app is reported together.
func (e *Engine) planAll(ctx context.Context, op *Operation, clusters map[string]Cluster, targets []upTarget, opts kube.ApplyOptions) ([]*Plan, error) {
	byEnv := map[string][]Target{}
	var envs []string
	for _, t := range targets {
		if _, ok := byEnv[t.Environment]; !ok {
			envs = append(envs, t.Environment)
		}
		byEnv[t.Environment] = append(byEnv[t.Environment], t.Target)
	}
	planned := map[InstanceKey]*Plan{}
	var errs []error
	for _, env := range envs {
		ps, err := clusters[env].Plan(ctx, byEnv[env], opts, op.report)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, p := range ps {
			planned[p.Target.Key()] = p
		}
	}
	if len(errs) > 0 {
		return nil, &DryRunError{Err: errors.Join(errs...)}
	}
	plans := make([]*Plan, len(targets))
	for i, t := range targets {
		plans[i] = planned[t.Key()]
	}
	return plans, nil
}

// foundationAll creates every plan's namespaces and CRDs, per environment; when one fails,
// what the others created is removed again.
func (e *Engine) foundationAll(ctx context.Context, op *Operation, clusters map[string]Cluster, plans []*Plan, opts kube.ApplyOptions) error {
	byEnv := map[string][]*Plan{}
	var envs []string
	for _, p := range plans {
		if _, ok := byEnv[p.Target.Environment]; !ok {
			envs = append(envs, p.Target.Environment)
		}
		byEnv[p.Target.Environment] = append(byEnv[p.Target.Environment], p)
	}
	var undos []func() []kube.ObjectRef
	for _, env := range envs {
		undo, err := clusters[env].Foundation(ctx, byEnv[env], opts, op.report)
		if err != nil {
			// This cluster removed what it created; the others that succeeded do now.
			var left []kube.ObjectRef
			for i := len(undos) - 1; i >= 0; i-- {
				left = append(left, undos[i]()...)
			}
			var fe *FoundationError
			if errors.As(err, &fe) {
				fe.Left = append(fe.Left, left...)
				fe.Created += len(undos)
				return fe
			}
			return &FoundationError{Created: len(undos), Left: left, Err: err}
		}
		undos = append(undos, undo)
	}
	return nil
}

// upOne applies one instance, waits for it and starts its forwards.
func (e *Engine) upOne(ctx context.Context, op *Operation, c Cluster, p *Plan, req UpRequest) error {
	t := p.Target
	fail := func(err error) error {
		if ctx.Err() != nil {
			return ctx.Err() // cancelled: not a failure of the app
		}
		op.report(Event{App: t.App.Name, Instance: t.Instance.Name, Step: StepFailed, Message: err.Error()})
		return &AppError{App: t.App.Name, Err: err}
	}
	if err := c.Apply(ctx, p, kube.ApplyOptions{ForceConflicts: req.ForceConflicts}, op.report); err != nil {
		return fail(err)
	}
	if e.opts.Store != nil {
		d := Deployed{App: t.App.Name, Instance: t.Instance.Name, Environment: t.Environment, Context: c.Context(),
			Namespace: t.Instance.Namespace, Objects: p.Objects, UpdatedAt: e.opts.Now()}
		var corrupt *CorruptStateError
		switch err := e.opts.Store.Update(func(st *State) { st.Workspace = t.WS.Dir; st.Record(d) }); {
		case errors.As(err, &corrupt):
			op.report(Event{App: t.App.Name, Instance: t.Instance.Name, Step: StepWarning, Message: corrupt.Error()})
			_, _ = e.Ps(ctx) // lists every instance from the clusters' labels and rewrites the cache
		case err != nil:
			op.report(Event{App: t.App.Name, Instance: t.Instance.Name, Step: StepWarning, Message: "local state not saved: " + err.Error()})
		}
	}
	if !req.NoWait {
		if err := c.Wait(ctx, p, req.Timeout, op.report); err != nil {
			return fail(err)
		}
	}
	if req.Forward && len(t.App.File.Forwards) > 0 {
		if err := e.startForwards(ctx, c, t); err != nil {
			return fail(fmt.Errorf("it is up, but its forwards did not start: %w", err))
		}
		op.report(Event{App: t.App.Name, Instance: t.Instance.Name, Step: StepForward, Message: fmt.Sprintf("%d forwards started", len(t.App.File.Forwards))})
	}
	return nil
}

// Down takes the selected instances down in the background, dependents first (the apps of
// one level in parallel): their forwards stop, then what each owns is deleted in reverse
// order, never a PersistentVolumeClaim, a CRD or a namespace roro did not create unless
// asked. The instance is found from the cluster's labels, so down works when the local
// state is lost.
func (e *Engine) Down(req DownRequest) (*Operation, error) {
	ws := e.Workspace()
	apps, err := ordered(ws, req.Apps, false)
	if err != nil {
		return nil, err
	}
	level := map[string]int{}
	var targets []Target
	var errs []error
	for _, app := range apps {
		for _, d := range app.File.DependsOn {
			level[app.Name] = max(level[app.Name], level[d]+1)
		}
		t, err := e.target(ws, app, req.Environment, req.Instance, nil)
		if err != nil {
			errs = append(errs, &AppError{App: app.Name, Err: err})
			continue
		}
		targets = append(targets, t)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	keys := make([]InstanceKey, len(targets))
	for i, t := range targets {
		keys[i] = t.Key()
	}
	return e.start(OpDown, keys, req.Progress, func(ctx context.Context, op *Operation) error {
		var all []error
		// Dependents first: the highest level goes first; one level's apps in parallel.
		maxLevel := 0
		for _, l := range level {
			maxLevel = max(maxLevel, l)
		}
		for l := maxLevel; l >= 0; l-- {
			if err := ctx.Err(); err != nil {
				return err
			}
			var wg sync.WaitGroup
			var mu sync.Mutex
			for _, t := range targets {
				if level[t.App.Name] != l {
					continue
				}
				wg.Go(func() {
					res, err := e.downOne(ctx, op, t, req.DownOptions)
					mu.Lock()
					defer mu.Unlock()
					if err != nil {
						all = append(all, &AppError{App: t.App.Name, Err: err})
						if kube.IsUnreachable(err) {
							return // no result: what runs there was not observed
						}
					}
					op.mu.Lock()
					op.results = append(op.results, res)
					op.mu.Unlock()
				})
			}
			wg.Wait()
		}
		return errors.Join(all...)
	})
}

// downOne stops an instance's forwards (their pods are about to go) and deletes it.
func (e *Engine) downOne(ctx context.Context, op *Operation, t Target, opts DownOptions) (DownResult, error) {
	e.StopForwards(t.App.Name, t.Instance.Name)
	c, err := e.cluster(ctx, t.Environment)
	if err != nil {
		return DownResult{App: t.App.Name, Instance: t.Instance.Name}, err
	}
	res, err := c.Delete(ctx, t, opts, op.report)
	if err == nil && res.Running && e.opts.Store != nil {
		_ = e.opts.Store.Update(func(st *State) { st.Forget(t.App.Name, t.Instance.Name) })
	}
	return res, err
}

// Restart replaces the pods of an instance's workloads in the background (a rollout
// restart, as `kubectl rollout restart` does) and waits until they are healthy again.
func (e *Engine) Restart(app string, sel Selection, progress Reporter) (*Operation, error) {
	ws := e.Workspace()
	a, err := ws.Lookup(app)
	if err != nil {
		return nil, err
	}
	t, err := e.target(ws, a, sel.Environment, sel.Instance, nil)
	if err != nil {
		return nil, err
	}
	return e.start(OpRestart, []InstanceKey{t.Key()}, progress, func(ctx context.Context, op *Operation) error {
		c, err := e.cluster(ctx, t.Environment)
		if err != nil {
			return err
		}
		if err := c.Restart(ctx, t, op.report); err != nil {
			return &AppError{App: a.Name, Err: err}
		}
		return nil
	})
}

// ordered returns the selected apps of ws in dependency order (dependencies first); with
// deps, the dependencies of the selected apps join the selection.
func ordered(ws *workspace.Workspace, names []string, deps bool) ([]*workspace.App, error) {
	want := map[string]bool{}
	if len(names) == 0 {
		for _, a := range ws.Apps {
			want[a.Name] = true
		}
	}
	var add func(string) error
	add = func(name string) error {
		app, err := ws.Lookup(name)
		if err != nil {
			return err
		}
		if want[name] {
			return nil
		}
		want[name] = true
		if deps {
			for _, d := range app.File.DependsOn {
				if err := add(d); err != nil {
					return err
				}
			}
		}
		return nil
	}
	for _, n := range names {
		if err := add(n); err != nil {
			return nil, err
		}
	}
	var out []*workspace.App
	done := map[string]bool{}
	var visit func(a *workspace.App)
	visit = func(a *workspace.App) {
		if done[a.Name] {
			return
		}
		done[a.Name] = true
		for _, d := range a.File.DependsOn {
			visit(ws.App(d))
		}
		if want[a.Name] {
			out = append(out, a)
		}
	}
	for _, a := range ws.Apps {
		visit(a)
	}
	return out, nil
}
