package runtime

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/rorokube/roro/core/kube"
	"github.com/rorokube/roro/core/render"
	"github.com/rorokube/roro/core/workspace"
	"github.com/rorokube/roro/forward"
	"github.com/rorokube/roro/internal/testfs"
)

// fakeCluster is a Cluster in memory, for the engine's unit tests: it records every call,
// can hold an app's apply until released, and runs fake forwards.
type fakeCluster struct {
	mu       sync.Mutex
	calls    []string
	spans    map[string][2]time.Time // app → apply start and end
	inflight int
	peak     int
	// hold, when it has an app, makes that app's Apply wait for the channel (or ctx).
	hold map[string]chan struct{}
	// applyFor is how long each Apply takes.
	applyFor time.Duration
	// fail makes a step of an app fail: "apply api" → error.
	fail     map[string]error
	running  map[InstanceKey]bool
	forwards []*fakeForward
	taken    map[string]bool // ports whose forward cannot bind
	watchers []chan struct{}
	pingErr  error // what Ping answers
	logLines int   // how many lines Logs emits
}

var _ Cluster = (*fakeCluster)(nil)

func newFakeCluster() *fakeCluster {
	return &fakeCluster{spans: map[string][2]time.Time{}, hold: map[string]chan struct{}{}, fail: map[string]error{},
		running: map[InstanceKey]bool{}, taken: map[string]bool{}}
}

func (f *fakeCluster) record(call string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call)
	return f.fail[call]
}

func (f *fakeCluster) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

func (f *fakeCluster) Context() string { return "fake" }
func (f *fakeCluster) Server() string  { return "https://fake.invalid" }
func (f *fakeCluster) Ping(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.pingErr
}
func (f *fakeCluster) Close() {}
func (f *fakeCluster) Render(context.Context, Target) (*render.Result, *render.Env, error) {
	return nil, nil, errors.New("not in the fake")
}
func (f *fakeCluster) Env(context.Context, Target) (*render.Env, error)   { return &render.Env{}, nil }
func (f *fakeCluster) Diff(context.Context, Target) ([]ObjectDiff, error) { return nil, nil }
func (f *fakeCluster) Exec(context.Context, Target, string, []string, kube.ExecIO) error {
	return nil
}

// Logs emits logLines numbered lines, then follows (blocks) until ctx ends.
func (f *fakeCluster) Logs(ctx context.Context, t Target, opts kube.LogOptions, emit func(kube.LogLine)) error {
	for i := range f.logLines {
		emit(kube.LogLine{Pod: t.App.Name + "-0", Container: "c", Time: time.Unix(int64(i), 0), Line: fmt.Sprintf("line %d", i)})
	}
	if opts.Follow {
		<-ctx.Done()
	}
	return nil
}

func (f *fakeCluster) Watch(ctx context.Context, publish func([]InstanceView)) error {
	changed := make(chan struct{}, 1)
	f.mu.Lock()
	f.watchers = append(f.watchers, changed)
	f.mu.Unlock()
	for {
		publish(f.instances())
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		}
	}
}

// notify wakes every watch after a change of what runs.
func (f *fakeCluster) notify() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, ch := range f.watchers {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

func (f *fakeCluster) instances() []InstanceView {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []InstanceView
	for k := range f.running {
		out = append(out, InstanceView{App: k.App, Instance: k.Instance, Running: true, Health: Healthy, Context: "fake"})
	}
	return out
}

func (f *fakeCluster) Instances(context.Context) ([]InstanceView, error) { return f.instances(), nil }

func (f *fakeCluster) Running(_ context.Context, t Target) (string, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return "", f.running[t.Key()], nil
}

func (f *fakeCluster) Plan(_ context.Context, targets []Target, _ kube.ApplyOptions, report Reporter) ([]*Plan, error) {
	var plans []*Plan
	var errs []error
	for _, t := range targets {
		report.emit(Event{App: t.App.Name, Instance: t.Instance.Name, Step: StepRender})
		if err := f.record("plan " + t.App.Name); err != nil {
			errs = append(errs, &AppError{App: t.App.Name, Err: err})
			continue
		}
		report.emit(Event{App: t.App.Name, Instance: t.Instance.Name, Step: StepDryRun})
		plans = append(plans, &Plan{Target: t, Objects: 1})
	}
	return plans, errors.Join(errs...)
}

func (f *fakeCluster) Foundation(_ context.Context, plans []*Plan, _ kube.ApplyOptions, _ Reporter) (func() []kube.ObjectRef, error) {
	for _, p := range plans {
		if err := f.record("foundation " + p.Target.App.Name); err != nil {
			return nil, &FoundationError{Err: err}
		}
	}
	return func() []kube.ObjectRef { _ = f.record("undo"); return nil }, nil
}

func (f *fakeCluster) Apply(ctx context.Context, p *Plan, _ kube.ApplyOptions, report Reporter) error {
	app := p.Target.App.Name
	f.mu.Lock()
	f.inflight++
	f.peak = max(f.peak, f.inflight)
	start := time.Now()
	hold := f.hold[app]
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.inflight--
		f.spans[app] = [2]time.Time{start, time.Now()}
		f.mu.Unlock()
	}()
	if err := f.record("apply " + app); err != nil {
		return err
	}
	if hold != nil {
		select {
		case <-hold:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if !sleep(ctx, f.applyFor) && f.applyFor > 0 {
		return ctx.Err()
	}
	f.mu.Lock()
	f.running[p.Target.Key()] = true
	f.mu.Unlock()
	f.notify()
	report.emit(Event{App: app, Instance: p.Target.Instance.Name, Step: StepApply})
	return nil
}

func (f *fakeCluster) Wait(_ context.Context, p *Plan, _ time.Duration, report Reporter) error {
	if err := f.record("wait " + p.Target.App.Name); err != nil {
		return err
	}
	report.emit(Event{App: p.Target.App.Name, Instance: p.Target.Instance.Name, Step: StepReady})
	return nil
}

func (f *fakeCluster) Delete(_ context.Context, t Target, _ DownOptions, report Reporter) (DownResult, error) {
	if err := f.record("delete " + t.App.Name); err != nil {
		return DownResult{}, err
	}
	f.mu.Lock()
	running := f.running[t.Key()]
	delete(f.running, t.Key())
	f.mu.Unlock()
	f.notify()
	report.emit(Event{App: t.App.Name, Instance: t.Instance.Name, Step: StepDelete})
	return DownResult{App: t.App.Name, Instance: t.Instance.Name, Running: running, Deleted: 1}, nil
}

func (f *fakeCluster) Restart(_ context.Context, t Target, report Reporter) error {
	report.emit(Event{App: t.App.Name, Instance: t.Instance.Name, Step: StepRestart})
	return f.record("restart " + t.App.Name)
}

func (f *fakeCluster) Forward(spec forward.Spec, opts forward.Options) (Forwarder, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ff := &fakeForward{spec: spec, ready: make(chan struct{}), stop: make(chan struct{}), taken: f.taken[fmt.Sprint(spec.Ports)], onChange: opts.OnChange}
	f.forwards = append(f.forwards, ff)
	return ff, nil
}

// liveForwards returns the forwards of target that run now.
func (f *fakeCluster) liveForwards(target string) []*fakeForward {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*fakeForward
	for _, ff := range f.forwards {
		if ff.spec.Target == target && ff.isRunning() {
			out = append(out, ff)
		}
	}
	return out
}

// fakeForward binds nothing: it is Ready at once (or fails, when its ports are "taken") and
// runs until stopped.
type fakeForward struct {
	spec     forward.Spec
	ready    chan struct{}
	stop     chan struct{}
	stopOnce sync.Once
	taken    bool
	onChange func()
	mu       sync.Mutex
	state    forward.State
}

func (ff *fakeForward) Run(ctx context.Context) error {
	if ff.taken {
		ff.set(forward.Failed)
		return fmt.Errorf("local port %v is already in use", ff.spec.Ports)
	}
	ff.set(forward.Connected)
	close(ff.ready)
	select {
	case <-ctx.Done():
	case <-ff.stop:
	}
	ff.set(forward.Stopped)
	return nil
}

func (ff *fakeForward) set(s forward.State) {
	ff.mu.Lock()
	ff.state = s
	ff.mu.Unlock()
	if ff.onChange != nil {
		ff.onChange()
	}
}

func (ff *fakeForward) isRunning() bool {
	ff.mu.Lock()
	defer ff.mu.Unlock()
	return ff.state == forward.Connected
}

func (ff *fakeForward) Ready() <-chan struct{} { return ff.ready }
func (ff *fakeForward) Stop()                  { ff.stopOnce.Do(func() { close(ff.stop) }) }
func (ff *fakeForward) Status() forward.Status {
	ff.mu.Lock()
	defer ff.mu.Unlock()
	return forward.Status{Target: ff.spec.Target, Namespace: ff.spec.Namespace, State: ff.state}
}

// fakeWorkspace writes and loads a workspace of apps with manifests that are never rendered
// (the fake cluster does not render): name → app.json.
func fakeWorkspace(t testing.TB, apps map[string]string) *workspace.Workspace {
	t.Helper()
	files := map[string]string{"roro.json": `{"name": "fake", "members": ["apps/*"]}`}
	for name, app := range apps {
		files["apps/"+name+"/app.json"] = app
		files["apps/"+name+"/m.yaml"] = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: " + name + "\n"
	}
	ws, err := workspace.Load(testfs.Layout(t, files))
	if err != nil {
		t.Fatal(err)
	}
	return ws
}

// fakeEngine starts an engine over ws whose every environment is the fake cluster.
func fakeEngine(t testing.TB, ws *workspace.Workspace, fc *fakeCluster, mods ...func(*Options)) *Engine {
	t.Helper()
	opts := Options{Connect: func(context.Context, string, string) (Cluster, error) { return fc, nil }, Watch: true}
	for _, m := range mods {
		m(&opts)
	}
	e, err := New(ws, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	return e
}
