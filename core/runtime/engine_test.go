package runtime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/rorokube/roro/core/kube"
	"github.com/rorokube/roro/core/render"
	"github.com/rorokube/roro/core/workspace"
	"github.com/rorokube/roro/forward"
	"github.com/rorokube/roro/internal/testfs"
)

// levelled is a workspace whose dependency levels are: db and cache (0), api and worker (1),
// web (2).
func levelled(t testing.TB) map[string]string {
	return map[string]string{
		"db":     `{"manifests": ["m.yaml"]}`,
		"cache":  `{"manifests": ["m.yaml"]}`,
		"api":    `{"manifests": ["m.yaml"], "dependsOn": ["db", "cache"]}`,
		"worker": `{"manifests": ["m.yaml"], "dependsOn": ["db"]}`,
		"web":    `{"manifests": ["m.yaml"], "dependsOn": ["api"], "forwards": [{"target": "service/web", "ports": ["0:80"]}]}`,
	}
}

// TestEngineUpLevels: up applies apps in dependency order, the apps of one level in
// parallel, each only after everything it depends on is applied and healthy.
func TestEngineUpLevels(t *testing.T) {
	fc := newFakeCluster()
	fc.applyFor = 100 * time.Millisecond
	e := fakeEngine(t, fakeWorkspace(t, levelled(t)), fc)
	ctx := context.Background()
	if err := runUp(ctx, e, UpRequest{}); err != nil {
		t.Fatal(err)
	}
	span := func(app string) [2]time.Time {
		fc.mu.Lock()
		defer fc.mu.Unlock()
		return fc.spans[app]
	}
	after := func(app string, deps ...string) {
		for _, d := range deps {
			if span(app)[0].Before(span(d)[1]) {
				t.Errorf("%s started before %s ended", app, d)
			}
		}
	}
	after("api", "db", "cache")
	after("worker", "db")
	after("web", "api")
	overlap := func(a, b string) bool { return span(a)[0].Before(span(b)[1]) && span(b)[0].Before(span(a)[1]) }
	if !overlap("db", "cache") || !overlap("api", "worker") {
		t.Errorf("the apps of one level did not run in parallel: %v", fc.spans)
	}
	// Everything is dry-run before anything is applied.
	calls := fc.Calls()
	lastPlan := slices.IndexFunc(calls, func(c string) bool { return strings.HasPrefix(c, "apply") })
	for _, c := range calls[lastPlan:] {
		if strings.HasPrefix(c, "plan") {
			t.Errorf("a plan after the first apply: %v", calls)
		}
	}
	// With only web named, its dependencies come first, and nothing else.
	fc2 := newFakeCluster()
	e2 := fakeEngine(t, fakeWorkspace(t, levelled(t)), fc2)
	if err := runUp(ctx, e2, UpRequest{Selection: Selection{Apps: []string{"web"}}}); err != nil {
		t.Fatal(err)
	}
	var applied []string
	for _, c := range fc2.Calls() {
		if a, ok := strings.CutPrefix(c, "apply "); ok {
			applied = append(applied, a)
		}
	}
	slices.Sort(applied[:2])
	if strings.Join(applied, ",") != "cache,db,api,web" {
		t.Errorf("applied %v, want cache and db, then api, then web", applied)
	}
}

// TestEngineUpStopsAtAFailedLevel: when an app of a level fails, its siblings finish, the
// next level never starts, and the error is typed and names the app.
func TestEngineUpStopsAtAFailedLevel(t *testing.T) {
	fc := newFakeCluster()
	conflict := &kube.ObjectError{Op: "apply", Object: kube.ObjectRef{Kind: "ConfigMap", Namespace: "db", Name: "db"}, Err: &kube.ConflictError{Err: errors.New("conflict")}}
	fc.fail["apply db"] = conflict
	e := fakeEngine(t, fakeWorkspace(t, levelled(t)), fc)
	err := runUp(context.Background(), e, UpRequest{})
	var ae *AppError
	var oe *kube.ObjectError
	var ce *kube.ConflictError
	if !errors.As(err, &ae) || ae.App != "db" || !errors.As(err, &oe) || oe.Object.Name != "db" || !errors.As(err, &ce) {
		t.Fatalf("error %v (%T): want an AppError of db holding the ObjectError and its ConflictError", err, err)
	}
	calls := fc.Calls()
	if !slices.Contains(calls, "apply cache") {
		t.Errorf("cache, in db's level, did not finish: %v", calls)
	}
	for _, c := range calls {
		if c == "apply api" || c == "apply worker" || c == "apply web" {
			t.Errorf("the next level started after a failure: %v", calls)
		}
	}
	op := e.Snapshot().Operations
	waitFor(t, e, 5*time.Second, func(s *Snapshot) bool {
		op = s.Operations
		return len(op) == 1 && op[0].State == OpFailed
	})
	if len(op[0].Problems) != 1 || !errors.As(op[0].Problems[0], &oe) || oe.Object.Kind != "ConfigMap" {
		t.Errorf("problems in the snapshot: %v", op[0].Problems)
	}
	if !slices.ContainsFunc(op[0].Log, func(ev Event) bool { return ev.Step == StepFailed && ev.App == "db" }) {
		t.Errorf("no failed step of db in the log: %v", op[0].Log)
	}
}

// TestEngineDryRunFailureAppliesNothing: a render or dry-run failure of any app means no
// foundation and no apply anywhere, and every failing app is listed.
func TestEngineDryRunFailureAppliesNothing(t *testing.T) {
	fc := newFakeCluster()
	fc.fail["plan web"] = errors.New("Deployment demo-web/web: spec.replicas: Invalid value")
	fc.fail["plan worker"] = errors.New("bad worker")
	e := fakeEngine(t, fakeWorkspace(t, levelled(t)), fc)
	err := runUp(context.Background(), e, UpRequest{})
	var dre *DryRunError
	if !errors.As(err, &dre) || len(Problems(err)) != 2 {
		t.Fatalf("error %v: want a DryRunError with two problems", err)
	}
	for _, c := range fc.Calls() {
		if !strings.HasPrefix(c, "plan") {
			t.Errorf("%q after a failed dry run", c)
		}
	}
}

// TestEngineOneOperationPerInstance: a second operation on an instance that one is working
// on is refused, saying which; operations on other instances run meanwhile; once the first
// ends, the instance is free again.
func TestEngineOneOperationPerInstance(t *testing.T) {
	fc := newFakeCluster()
	release := make(chan struct{})
	fc.hold["db"] = release
	e := fakeEngine(t, fakeWorkspace(t, levelled(t)), fc)
	first, err := e.Up(UpRequest{Selection: Selection{Apps: []string{"db"}}})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, e, 5*time.Second, func(s *Snapshot) bool {
		return s.App("db").Instances[0].Busy == first.ID()
	})
	for name, try := range map[string]func() (*Operation, error){
		"up":      func() (*Operation, error) { return e.Up(UpRequest{Selection: Selection{Apps: []string{"worker"}}}) }, // worker brings db
		"down":    func() (*Operation, error) { return e.Down(DownRequest{Selection: Selection{Apps: []string{"db"}}}) },
		"restart": func() (*Operation, error) { return e.Restart("db", Selection{}, nil) },
	} {
		_, err := try()
		var busy *BusyError
		if !errors.As(err, &busy) || busy.Instance.App != "db" || busy.ID != first.ID() || busy.Running != OpUp {
			t.Errorf("%s of a busy db: %v", name, err)
		} else if !strings.Contains(err.Error(), "db is busy: up #1 is running on it") {
			t.Errorf("%s: message %q", name, err)
		}
	}
	other, err := e.Up(UpRequest{Selection: Selection{Apps: []string{"cache"}}})
	if err != nil {
		t.Fatalf("up of another app while db is busy: %v", err)
	}
	if err := other.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	close(release)
	if err := first.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Restart("db", Selection{}, nil); err != nil {
		t.Errorf("db is still busy after its up ended: %v", err)
	}
}

// TestEngineCancel: cancelling an up stops it at the step it is in, the next level never
// starts, and the operation ends as cancelled.
func TestEngineCancel(t *testing.T) {
	fc := newFakeCluster()
	fc.hold["db"] = make(chan struct{}) // never released
	e := fakeEngine(t, fakeWorkspace(t, levelled(t)), fc)
	op, err := e.Up(UpRequest{})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, func() bool { return slices.Contains(fc.Calls(), "apply db") })
	if !e.Cancel(op.ID()) { // as a window does, from the snapshot's operation ID
		t.Fatal("Cancel found no running operation")
	}
	op.Cancel() // idempotent
	select {
	case <-op.Done():
	case <-time.After(2 * time.Second):
		t.Fatal("the operation did not end within 2 s of Cancel")
	}
	if !errors.Is(op.Err(), context.Canceled) {
		t.Errorf("error %v, want context.Canceled", op.Err())
	}
	s := waitFor(t, e, 5*time.Second, func(s *Snapshot) bool { return len(s.Operations) == 1 && s.Operations[0].State == OpCancelled })
	if s.Operations[0].Ended.IsZero() {
		t.Error("a cancelled operation without its end time")
	}
	if slices.Contains(fc.Calls(), "apply api") {
		t.Errorf("the next level started after Cancel: %v", fc.Calls())
	}
	if e.Cancel(op.ID()) || e.Cancel(999) {
		t.Error("Cancel of an ended or unknown operation reported a cancel")
	}
}

// TestEngineSnapshotFollowsSteps: while an up runs, the snapshot shows it running with its
// current step and log; at the end, its result; every app of the workspace is in the snapshot
// before anything runs, with its group, instances and namespace.
func TestEngineSnapshotFollowsSteps(t *testing.T) {
	fc := newFakeCluster()
	release := make(chan struct{})
	fc.hold["db"] = release
	apps := levelled(t)
	apps["db"] = `{"manifests": ["m.yaml"], "group": "data", "namespace": "demo-db", "instances": {"blue": {"suffix": "-blue"}}}`
	e := fakeEngine(t, fakeWorkspace(t, apps), fc)
	s := waitFor(t, e, 5*time.Second, func(s *Snapshot) bool { return s.Connections[0].State == Connected && s.Connections[0].Synced })
	if len(s.Apps) != 5 || s.Workspace.Name != "fake" {
		t.Fatalf("apps before any operation: %+v", s.Apps)
	}
	db := *s.App("db")
	if db.Group != "data" || db.Health != NotRunning || len(db.Instances) != 2 || db.Instances[1].Instance != "blue" ||
		!db.Instances[1].Declared || db.Instances[0].Namespace != "demo-db" {
		t.Errorf("db before up: %+v", db)
	}
	op, err := e.Up(UpRequest{Selection: Selection{Apps: []string{"db"}}})
	if err != nil {
		t.Fatal(err)
	}
	s = waitFor(t, e, 5*time.Second, func(s *Snapshot) bool {
		return len(s.Operations) == 1 && s.Operations[0].Step == StepDryRun
	})
	if o := s.Operations[0]; o.State != OpRunning || o.Kind != OpUp || !slices.Equal(o.Targets, []InstanceKey{{"db", "default"}}) {
		t.Errorf("running operation: %+v", o)
	}
	close(release)
	if err := op.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	s = waitFor(t, e, 5*time.Second, func(s *Snapshot) bool {
		return len(s.Operations) == 1 && s.Operations[0].State == OpSucceeded && instanceOf(s, "db", "default").Running
	})
	var steps []Step
	for _, ev := range s.Operations[0].Log {
		steps = append(steps, ev.Step)
		if ev.At.IsZero() {
			t.Errorf("event without a time: %+v", ev)
		}
	}
	if want := []Step{StepRender, StepDryRun, StepApply, StepReady}; !slices.Equal(steps, want) {
		t.Errorf("steps %v, want %v", steps, want)
	}
	if h := s.App("db").Health; h != Healthy {
		t.Errorf("db's health after up: %s", h)
	}
}

// TestEngineSubscriberThatNeverReads: one subscriber never reads; the other still sees every
// change, and the engine never blocks.
func TestEngineSubscriberThatNeverReads(t *testing.T) {
	fc := newFakeCluster()
	e := fakeEngine(t, fakeWorkspace(t, levelled(t)), fc)
	_, stopLazy := e.Subscribe() // never read
	defer stopLazy()
	ch, stop := e.Subscribe()
	defer stop()
	for i := range 200 {
		e.SetGit(GitView{State: "synced", Ahead: i})
		deadline := time.After(2 * time.Second)
		for e.Snapshot().Git.Ahead != i {
			select {
			case <-ch:
			case <-deadline:
				t.Fatalf("change %d never reached the reading subscriber", i)
			}
		}
	}
	// An operation still runs to its end with the lazy subscriber holding its signal.
	op, err := e.Up(UpRequest{Selection: Selection{Apps: []string{"db"}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := op.Wait(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestEngineReloadKeepsUntouchedForwards: after a reload, forwards whose spec is the same
// run on untouched; those whose ports changed restart with the new spec; those of an app
// that is gone stop.
func TestEngineReloadKeepsUntouchedForwards(t *testing.T) {
	fc := newFakeCluster()
	apps := map[string]string{
		"a":    `{"manifests": ["m.yaml"], "forwards": [{"target": "service/a", "ports": ["0:80"]}]}`,
		"b":    `{"manifests": ["m.yaml"], "forwards": [{"target": "service/b", "ports": ["0:80"]}]}`,
		"gone": `{"manifests": ["m.yaml"], "forwards": [{"target": "service/gone", "ports": ["0:80"]}]}`,
	}
	e := fakeEngine(t, fakeWorkspace(t, apps), fc)
	ctx := context.Background()
	for _, app := range []string{"a", "b", "gone"} {
		if err := e.StartForwards(ctx, app, Selection{}); err != nil {
			t.Fatal(err)
		}
	}
	a := fc.liveForwards("service/a")
	b := fc.liveForwards("service/b")
	if len(a) != 1 || len(b) != 1 {
		t.Fatalf("forwards a %v, b %v", a, b)
	}
	delete(apps, "gone")
	apps["b"] = `{"manifests": ["m.yaml"], "forwards": [{"target": "service/b", "ports": ["0:8080"]}]}`
	if err := e.Reload(fakeWorkspace(t, apps)); err != nil {
		t.Fatal(err)
	}
	if now := fc.liveForwards("service/a"); len(now) != 1 || now[0] != a[0] {
		t.Errorf("a's forward was touched by a reload that did not change it")
	}
	if now := fc.liveForwards("service/b"); len(now) != 1 || now[0] == b[0] || now[0].spec.Ports[0] != "0:8080" {
		t.Errorf("b's forward did not restart with its new ports: %v", now)
	}
	if b[0].isRunning() {
		t.Error("b's old forward still runs")
	}
	if len(fc.liveForwards("service/gone")) != 0 {
		t.Error("the forward of an app the workspace lost still runs")
	}
	s := waitFor(t, e, 5*time.Second, func(s *Snapshot) bool { return len(s.Forwards) == 2 && s.Forwards[1].State == forward.Connected })
	if s.Forwards[0].App != "a" || s.Forwards[1].App != "b" || s.Forwards[0].State != forward.Connected {
		t.Errorf("forwards in the snapshot: %+v", s.Forwards)
	}
}

// TestEngineForwardThatCannotBind: a forward that cannot bind is an error, not a forward
// counted as running; its siblings stop; the snapshot says why; and the next start tries
// again (and works once the port is free).
func TestEngineForwardThatCannotBind(t *testing.T) {
	fc := newFakeCluster()
	fc.taken["[0:5432]"] = true
	apps := map[string]string{
		"db": `{"manifests": ["m.yaml"], "forwards": [{"target": "service/db", "ports": ["0:80"]}, {"target": "service/db-admin", "ports": ["0:5432"]}]}`,
	}
	e := fakeEngine(t, fakeWorkspace(t, apps), fc)
	ctx := context.Background()
	err := e.StartForwards(ctx, "db", Selection{})
	if err == nil || !strings.Contains(err.Error(), "already in use") {
		t.Fatalf("start with a taken port: %v", err)
	}
	if live := fc.liveForwards("service/db"); len(live) != 0 {
		t.Errorf("the sibling of a forward that could not bind still runs")
	}
	s := waitFor(t, e, 5*time.Second, func(s *Snapshot) bool { return len(s.Forwards) == 1 })
	if s.Forwards[0].Err == "" || !strings.Contains(s.Forwards[0].Err, "already in use") {
		t.Errorf("the snapshot does not say why: %+v", s.Forwards)
	}
	fc.mu.Lock()
	fc.taken = map[string]bool{}
	fc.mu.Unlock()
	if err := e.StartForwards(ctx, "db", Selection{}); err != nil {
		t.Fatalf("the second start, with the port free: %v", err)
	}
	waitFor(t, e, 5*time.Second, func(s *Snapshot) bool {
		return len(s.Forwards) == 2 && s.Forwards[0].Err == "" && s.Forwards[0].State == forward.Connected && s.Forwards[1].State == forward.Connected
	})
}

// TestEngineUpForwardRejectsBadPortsFirst: up --forward with a forward that cannot work is
// refused before anything is applied.
func TestEngineUpForwardRejectsBadPortsFirst(t *testing.T) {
	fc := newFakeCluster()
	apps := map[string]string{"web": `{"manifests": ["m.yaml"], "forwards": [{"target": "service/web", "ports": ["99999:80"]}]}`}
	e := fakeEngine(t, fakeWorkspace(t, apps), fc)
	_, err := e.Up(UpRequest{Forward: true})
	if err == nil || !strings.Contains(err.Error(), `app web: `) || !strings.Contains(err.Error(), `web/app.json: forwards[0]: port "99999:80"`) {
		t.Fatalf("error %v", err)
	}
	if calls := fc.Calls(); len(calls) != 0 {
		t.Errorf("calls after a refused up: %v", calls)
	}
}

// TestEngineDownOrder: down takes dependents down first, the apps of one level in parallel,
// and stops their forwards.
func TestEngineDownOrder(t *testing.T) {
	fc := newFakeCluster()
	e := fakeEngine(t, fakeWorkspace(t, levelled(t)), fc)
	ctx := context.Background()
	if err := runUp(ctx, e, UpRequest{Forward: true}); err != nil {
		t.Fatal(err)
	}
	if len(fc.liveForwards("service/web")) != 1 {
		t.Fatal("web's forward did not start with up")
	}
	before := len(fc.Calls())
	res, err := runDown(ctx, e, DownRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var deleted []string
	for _, c := range fc.Calls()[before:] {
		if a, ok := strings.CutPrefix(c, "delete "); ok {
			deleted = append(deleted, a)
		}
	}
	pos := func(a string) int { return slices.Index(deleted, a) }
	if len(deleted) != 5 || pos("web") != 0 || pos("api") > pos("db") || pos("api") > pos("cache") || pos("worker") > pos("db") {
		t.Errorf("deleted in the order %v: dependents first", deleted)
	}
	if len(res) != 5 || len(fc.liveForwards("service/web")) != 0 {
		t.Errorf("results %v, web's forwards %v", res, fc.liveForwards("service/web"))
	}
}

// TestEngineCloseStopsEverything: Close with an operation and forwards running returns
// within 2 s, and leaves no goroutine behind.
func TestEngineCloseStopsEverything(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	fc := newFakeCluster()
	fc.hold["db"] = make(chan struct{}) // never released
	ws := fakeWorkspace(t, levelled(t))
	e, err := New(ws, Options{Connect: func(context.Context, string, string) (Cluster, error) { return fc, nil }, Watch: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.StartForwards(context.Background(), "web", Selection{}); err != nil {
		t.Fatal(err)
	}
	if err := e.FollowLogs("web", Selection{}); err != nil {
		t.Fatal(err)
	}
	op, err := e.Up(UpRequest{})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, func() bool { return slices.Contains(fc.Calls(), "apply db") })
	_, stop := e.Subscribe()
	defer stop()
	start := time.Now()
	var wg sync.WaitGroup
	for range 3 { // concurrent and repeated Close calls are safe
		wg.Go(func() { _ = e.Close() })
	}
	wg.Wait()
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Close took %s", d)
	}
	select {
	case <-op.Done():
	default:
		t.Error("the operation did not end with Close")
	}
	if _, err := e.Up(UpRequest{}); !errors.Is(err, ErrClosed) {
		t.Errorf("up after Close: %v", err)
	}
}

// TestEngineUnreachableThenReachable: a cluster that does not answer shows as unreachable,
// with the reason, within 5 s; the workspace's apps are all there (health unknown); an
// operation fails with the typed error; and once the cluster answers, the engine connects by
// itself.
func TestEngineUnreachableThenReachable(t *testing.T) {
	fc := newFakeCluster()
	var mu sync.Mutex
	reachable := false
	connect := func(ctx context.Context, env, _ string) (Cluster, error) {
		mu.Lock()
		defer mu.Unlock()
		if !reachable {
			return nil, &kube.UnreachableError{Context: "kind-dev", Server: "https://127.0.0.1:1", Err: errors.New("connection refused")}
		}
		return fc, nil
	}
	e := fakeEngine(t, fakeWorkspace(t, levelled(t)), fc, func(o *Options) {
		o.Connect = connect
		o.RetryMin, o.RetryMax = 50*time.Millisecond, 200*time.Millisecond
	})
	s := waitFor(t, e, 5*time.Second, func(s *Snapshot) bool { return s.Connections[0].State == Unreachable })
	if c := s.Connections[0]; c.Reason != "connection refused" || c.String() != "unreachable: connection refused" || c.Since.IsZero() {
		t.Errorf("connection %+v", c)
	}
	if len(s.Apps) != 5 || s.Apps[0].Health != Unknown {
		t.Errorf("apps while unreachable: %+v", s.Apps)
	}
	err := runUp(context.Background(), e, UpRequest{})
	var u *kube.UnreachableError
	if !errors.As(err, &u) {
		t.Errorf("up while unreachable: %v (%T)", err, err)
	}
	mu.Lock()
	reachable = true
	mu.Unlock()
	s = waitFor(t, e, 5*time.Second, func(s *Snapshot) bool { return s.Connections[0].State == Connected })
	if s.Connections[0].String() != "connected to fake" {
		t.Errorf("connection %+v", s.Connections[0])
	}
	if err := runUp(context.Background(), e, UpRequest{}); err != nil {
		t.Errorf("up once reachable: %v", err)
	}
}

// TestForwardSpecsRefuseABadHold: a hold that is not a positive duration is an error where
// the specs are made, never silently the default.
func TestForwardSpecsRefuseABadHold(t *testing.T) {
	ws := fakeWorkspace(t, map[string]string{"a": `{"manifests": ["m.yaml"], "forwards": [{"target": "service/a", "ports": ["80"], "hold": "2m"}]}`})
	app := ws.App("a")
	specs, err := forwardSpecs(app, render.InstanceInfo{Name: "default", Namespace: "a"})
	if err != nil || specs[0].Hold != 2*time.Minute {
		t.Fatalf("specs %+v, %v", specs, err)
	}
	app.File.Forwards[0].Hold = "-5s" // past the loader, as a reload of a changed file might be
	if _, err := forwardSpecs(app, render.InstanceInfo{Name: "default", Namespace: "a"}); err == nil || !strings.Contains(err.Error(), `forwards[0].hold: "-5s" is not a positive duration`) {
		t.Errorf("bad hold: %v", err)
	}
}

// TestEngineLosesAndRegainsTheCluster: a cluster that stops answering after it was connected
// shows as unreachable with the reason, its instances' health as unknown (not the last
// healthy), an operation fails at once with the typed error instead of hanging, and the
// connection comes back by itself.
func TestEngineLosesAndRegainsTheCluster(t *testing.T) {
	fc := newFakeCluster()
	e := fakeEngine(t, fakeWorkspace(t, levelled(t)), fc, func(o *Options) { o.PingEvery = 50 * time.Millisecond })
	ctx := context.Background()
	if err := runUp(ctx, e, UpRequest{Selection: Selection{Apps: []string{"db"}}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, e, 5*time.Second, func(s *Snapshot) bool { return instanceOf(s, "db", "default").Health == Healthy })
	lost := &kube.UnreachableError{Context: "fake", Server: "https://fake.invalid", Err: errors.New("no answer within 5s")}
	fc.mu.Lock()
	fc.pingErr = lost
	fc.mu.Unlock()
	s := waitFor(t, e, 5*time.Second, func(s *Snapshot) bool { return s.Connections[0].State == Unreachable })
	if s.Connections[0].Reason != "no answer within 5s" {
		t.Errorf("reason %q", s.Connections[0].Reason)
	}
	if iv := instanceOf(s, "db", "default"); iv.Health != Unknown || !iv.Running {
		t.Errorf("db while the cluster is lost: %+v", iv)
	}
	done := make(chan error, 1)
	go func() { done <- runUp(ctx, e, UpRequest{Selection: Selection{Apps: []string{"cache"}}}) }()
	select {
	case err := <-done:
		var u *kube.UnreachableError
		if !errors.As(err, &u) {
			t.Errorf("up on a lost cluster: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("up on a lost cluster hung")
	}
	fc.mu.Lock()
	fc.pingErr = nil
	fc.mu.Unlock()
	waitFor(t, e, 5*time.Second, func(s *Snapshot) bool {
		return s.Connections[0].State == Connected && instanceOf(s, "db", "default").Health == Healthy
	})
}

// TestEngineLogBufferIsBounded: a followed instance's buffer keeps the latest 5,000 lines,
// counts what fell out, and stops with StopLogs.
func TestEngineLogBufferIsBounded(t *testing.T) {
	fc := newFakeCluster()
	fc.logLines = 6000
	e := fakeEngine(t, fakeWorkspace(t, levelled(t)), fc)
	if err := e.FollowLogs("web", Selection{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, func() bool { return len(e.LogLines("web", "").Lines) == 5000 && e.LogLines("web", "").Dropped == 1000 })
	buf := e.LogLines("web", "default")
	if !buf.Following || buf.Lines[0].Line != "line 1000" || buf.Lines[4999].Line != "line 5999" || buf.Lines[0].Pod != "web-0" {
		t.Errorf("buffer: following %v, first %+v, last %+v", buf.Following, buf.Lines[0], buf.Lines[4999])
	}
	if err := e.FollowLogs("web", Selection{}); err != nil { // already followed: nothing new
		t.Fatal(err)
	}
	e.StopLogs("web", "")
	if buf := e.LogLines("web", ""); len(buf.Lines) != 0 || buf.Following {
		t.Errorf("after StopLogs: %d lines, following %v", len(buf.Lines), buf.Following)
	}
}

// TestEngineParallelBound: Parallel 1 brings the apps of a level up one at a time; 0 all at
// once.
func TestEngineParallelBound(t *testing.T) {
	for _, tt := range []struct{ parallel, wantPeak int }{{1, 1}, {0, 2}} {
		fc := newFakeCluster()
		fc.applyFor = 50 * time.Millisecond
		e := fakeEngine(t, fakeWorkspace(t, levelled(t)), fc)
		if err := runUp(context.Background(), e, UpRequest{Parallel: tt.parallel}); err != nil {
			t.Fatal(err)
		}
		fc.mu.Lock()
		peak := fc.peak
		fc.mu.Unlock()
		if peak != tt.wantPeak {
			t.Errorf("Parallel %d: %d applies at once, want %d", tt.parallel, peak, tt.wantPeak)
		}
	}
}

// TestStoreUpdatesDoNotLoseEachOther: updates from parallel apps all land.
func TestStoreUpdatesDoNotLoseEachOther(t *testing.T) {
	st := NewStore(t.TempDir(), "/ws")
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			if err := st.Update(func(s *State) { s.Record(Deployed{App: fmt.Sprintf("app%02d", i), Instance: "default"}) }); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := len(st.Load().Deployed); n != 20 {
		t.Errorf("%d of 20 records survived", n)
	}
}

// TestStoreUpdatesAcrossProcesses: two roro processes (here two Stores of one file, each
// with its own mutex: the in-process lock does not cover them) updating the same workspace's
// state at once lose nothing (issue 13, item 15).
func TestStoreUpdatesAcrossProcesses(t *testing.T) {
	dir := t.TempDir()
	a, b := NewStore(dir, "/ws"), NewStore(dir, "/ws")
	var wg sync.WaitGroup
	for i := range 100 {
		for _, st := range []*Store{a, b} {
			wg.Go(func() {
				if err := st.Update(func(s *State) { s.Record(Deployed{App: fmt.Sprintf("app%03d", i), Instance: fmt.Sprintf("%p", st)}) }); err != nil {
					t.Error(err)
				}
			})
		}
	}
	wg.Wait()
	if n := len(a.Load().Deployed); n != 200 {
		t.Errorf("%d of 200 records survived", n)
	}
}

// TestStoreCorruptState: a state file that does not parse is said, kept aside for a look,
// and replaced by a good one holding the update (issue 13, item 15).
func TestStoreCorruptState(t *testing.T) {
	dir := t.TempDir()
	st := NewStore(dir, "/ws")
	if err := st.Update(func(s *State) { s.Workspace = "/ws" }); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(st.path, []byte(`{"workspace": "/ws", "deployed": [{"app": `), 0o600); err != nil {
		t.Fatal(err)
	}
	err := st.Update(func(s *State) { s.Record(Deployed{App: "web", Instance: "default"}) })
	var corrupt *CorruptStateError
	if !errors.As(err, &corrupt) || corrupt.Aside != st.path+".corrupt" || !strings.Contains(err.Error(), "was corrupt") {
		t.Fatalf("Update over a corrupt file: %v", err)
	}
	if kept, _ := os.ReadFile(corrupt.Aside); !strings.Contains(string(kept), `"deployed": [{"app": `) {
		t.Errorf("the corrupt file was not kept aside: %q", kept)
	}
	if got := st.Load(); len(got.Deployed) != 1 || got.Deployed[0].App != "web" {
		t.Errorf("state after the rebuild: %+v", got)
	}
	if err := st.Update(func(*State) {}); err != nil {
		t.Errorf("the next update: %v", err)
	}
}

// TestEngineSetContext: picking a kubeconfig context for the session reconnects every
// environment there; going back reconnects each to its own.
func TestEngineSetContext(t *testing.T) {
	fc := newFakeCluster()
	var mu sync.Mutex
	var asked []string
	connect := func(_ context.Context, env, kctx string) (Cluster, error) {
		mu.Lock()
		defer mu.Unlock()
		asked = append(asked, env+"@"+kctx)
		return fc, nil
	}
	files := map[string]string{"roro.json": `{"name": "ctx", "members": ["apps/*"], "environments": {"dev": {}, "prod": {"context": "prod-cluster"}}}`,
		"apps/a/app.json": `{"manifests": ["m.yaml"]}`, "apps/a/m.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n"}
	ws, err := workspace.Load(testfs.Layout(t, files))
	if err != nil {
		t.Fatal(err)
	}
	e := fakeEngine(t, ws, fc, func(o *Options) { o.Connect = connect })
	has := func(want ...string) bool {
		mu.Lock()
		defer mu.Unlock()
		for _, w := range want {
			if !slices.Contains(asked, w) {
				return false
			}
		}
		return true
	}
	eventually(t, 5*time.Second, func() bool { return has("dev@", "prod@prod-cluster") })
	e.SetContext("kind-dev")
	eventually(t, 5*time.Second, func() bool { return has("dev@kind-dev", "prod@kind-dev") })
	if s := waitFor(t, e, 5*time.Second, func(s *Snapshot) bool { return s.Context == "kind-dev" }); len(s.Connections) != 2 {
		t.Errorf("connections %+v", s.Connections)
	}
	mu.Lock()
	asked = nil
	mu.Unlock()
	e.SetContext("")
	eventually(t, 5*time.Second, func() bool { return has("dev@", "prod@prod-cluster") })
}

// TestForwardsStayOnLoopback: a workspace cannot make a forward listen beyond loopback; the
// user can allow it on their machine.
func TestForwardsStayOnLoopback(t *testing.T) {
	apps := map[string]string{"db": `{"manifests": ["m.yaml"], "forwards": [{"target": "service/db", "ports": ["0:5432"], "address": "0.0.0.0"}]}`}
	fc := newFakeCluster()
	e := fakeEngine(t, fakeWorkspace(t, apps), fc)
	err := e.StartForwards(context.Background(), "db", Selection{})
	if err == nil || !strings.Contains(err.Error(), `forwards[0].address "0.0.0.0" would open service/db to the network`) {
		t.Fatalf("start: %v", err)
	}
	if _, err := e.Up(UpRequest{Forward: true}); err == nil || !strings.Contains(err.Error(), "--allow-forward-address") {
		t.Errorf("up --forward: %v", err)
	}
	if len(fc.Calls()) != 0 {
		t.Errorf("calls %v", fc.Calls())
	}
	allowed := fakeEngine(t, fakeWorkspace(t, apps), newFakeCluster(), func(o *Options) { o.AllowNonLoopback = true })
	if err := allowed.StartForwards(context.Background(), "db", Selection{}); err != nil {
		t.Errorf("allowed: %v", err)
	}
	for _, a := range []string{"", "127.0.0.1", "127.0.0.5", "::1", "localhost"} {
		if !loopback(a) {
			t.Errorf("%q is loopback", a)
		}
	}
}

// TestEngineWatchesFiles: with WatchFiles, an edit on disk reloads the engine (a forward whose
// ports changed restarts, the other runs on untouched); an edit that does not load keeps
// the last good workspace and shows where it fails; fixing it clears that.
func TestEngineWatchesFiles(t *testing.T) {
	fc := newFakeCluster()
	ws := fakeWorkspace(t, map[string]string{
		"a": `{"manifests": ["m.yaml"], "forwards": [{"target": "service/a", "ports": ["0:80"]}]}`,
		"b": `{"manifests": ["m.yaml"], "forwards": [{"target": "service/b", "ports": ["0:80"]}]}`,
	})
	e := fakeEngine(t, ws, fc, func(o *Options) { o.WatchFiles = true })
	ctx := context.Background()
	for _, app := range []string{"a", "b"} {
		if err := e.StartForwards(ctx, app, Selection{}); err != nil {
			t.Fatal(err)
		}
	}
	a, b := fc.liveForwards("service/a"), fc.liveForwards("service/b")
	write := func(app, body string) {
		if err := os.WriteFile(filepath.Join(ws.Dir, "apps", app, "app.json"), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("b", `{"manifests": ["m.yaml"], "group": "edited", "forwards": [{"target": "service/b", "ports": ["0:8080"]}]}`)
	waitFor(t, e, 2*time.Second, func(s *Snapshot) bool { return s.App("b").Group == "edited" })
	eventually(t, 2*time.Second, func() bool {
		now := fc.liveForwards("service/b")
		return len(now) == 1 && now[0] != b[0] && now[0].spec.Ports[0] == "0:8080"
	})
	if now := fc.liveForwards("service/a"); len(now) != 1 || now[0] != a[0] {
		t.Error("a's forward was touched by an edit of b")
	}
	write("a", "{\n  \"manifests\": [\"m.yaml\"],\n  \"forwrds\": []\n}\n")
	s := waitFor(t, e, 2*time.Second, func(s *Snapshot) bool { return s.Workspace.Problem != "" })
	if want := filepath.Join(ws.Dir, "apps/a/app.json") + ":3:3"; !strings.Contains(s.Workspace.Problem, want) || len(s.Apps) != 2 {
		t.Errorf("problem %q (want it at %s), %d apps (want the last good 2)", s.Workspace.Problem, want, len(s.Apps))
	}
	if now := fc.liveForwards("service/a"); len(now) != 1 || now[0] != a[0] {
		t.Error("a broken edit touched a's forward")
	}
	write("a", `{"manifests": ["m.yaml"], "group": "fixed", "forwards": [{"target": "service/a", "ports": ["0:80"]}]}`)
	waitFor(t, e, 2*time.Second, func(s *Snapshot) bool { return s.Workspace.Problem == "" && s.App("a").Group == "fixed" })
}
