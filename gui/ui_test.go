package gui

import (
	"context"
	"errors"
	"fmt"
	"image"
	"strings"
	"sync"
	"testing"
	"time"

	"gioui.org/f32"
	"gioui.org/io/input"
	"gioui.org/io/key"
	"gioui.org/io/pointer"
	"gioui.org/layout"
	"gioui.org/op"
	"gioui.org/unit"

	"github.com/rorokube/roro/core/kube"
	"github.com/rorokube/roro/core/render"
	"github.com/rorokube/roro/core/runtime"
	"github.com/rorokube/roro/core/store"
	"github.com/rorokube/roro/core/workspace"
	"github.com/rorokube/roro/forward"
	"github.com/rorokube/roro/themes"
)

// fakeEngine serves a fixed snapshot and records the calls the window makes.
type fakeEngine struct {
	mu      sync.Mutex
	snap    *runtime.Snapshot
	calls   []string
	upErr   error
	lastEnv string
}

func (f *fakeEngine) Snapshot() *runtime.Snapshot {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.snap
}
func (f *fakeEngine) Subscribe() (<-chan struct{}, func()) { return make(chan struct{}), func() {} }
func (f *fakeEngine) record(c string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, c)
}
func (f *fakeEngine) Up(r runtime.UpRequest) (*runtime.Operation, error) {
	f.lastEnv = r.Environment
	f.record("up " + strings.Join(r.Apps, ",") + " instance=" + r.Instance)
	return nil, f.upErr
}
func (f *fakeEngine) Down(r runtime.DownRequest) (*runtime.Operation, error) {
	f.record("down " + strings.Join(r.Apps, ",") + " instance=" + r.Instance)
	return nil, nil
}
func (f *fakeEngine) Restart(app string, sel runtime.Selection, _ runtime.Reporter) (*runtime.Operation, error) {
	f.record("restart " + app)
	return nil, nil
}
func (f *fakeEngine) Cancel(id uint64) bool { f.record("cancel"); return true }

// fakeHistory is the history the fake engine serves: two commits of api.
var fakeHistory = []store.Commit{
	{Hash: "1111111aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", Author: "Ada <ada@example.com>", When: time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC), Subject: "Set replicas=3 of app api"},
	{Hash: "2222222bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", Author: "Bo <bo@example.com>", When: time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC), Subject: "Create workspace demo"},
}

func (f *fakeEngine) History(app string, limit int) ([]store.Commit, error) {
	f.record("history " + app)
	return fakeHistory, nil
}
func (f *fakeEngine) Show(rev string) (store.Commit, string, error) {
	f.record("show " + rev)
	return fakeHistory[0], "--- a/apps/api/app.json\n+++ b/apps/api/app.json\n-    \"replicas\": 1\n+    \"replicas\": 3\n", nil
}
func (f *fakeEngine) Revert(rev string) (store.Commit, error) {
	f.record("revert " + rev)
	return store.Commit{}, errors.New(`Revert "Set replicas=3 of app api": not done, nothing was written: it does not apply cleanly: apps/api/app.json changed since 1111111`)
}
func (f *fakeEngine) SetValues(app string, sets []string, asString bool) (store.Commit, error) {
	f.record("set " + app + " " + strings.Join(sets, " "))
	if len(sets) == 0 {
		return store.Commit{}, errors.New("give at least one KEY=VALUE")
	}
	return store.Commit{Hash: "3333333cccccccccccccccccccccccccccccccccc", Subject: "Set " + strings.Join(sets, ", ") + " of app " + app}, nil
}
func (f *fakeEngine) AddInstance(app, name string, inst workspace.Instance) (store.Commit, error) {
	f.record("add instance " + app + " " + name + " env=" + inst.Environment)
	if name == "" {
		return store.Commit{}, errors.New(`"" is not a valid instance name`)
	}
	return store.Commit{Hash: "7777777ddddddddddddddddddddddddddddddddd", Subject: "Add instance " + name + " of app " + app}, nil
}
func (f *fakeEngine) RemoveInstance(app, name string) (store.Commit, error) {
	f.record("remove instance " + app + " " + name)
	return store.Commit{Hash: "8888888eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee", Subject: "Remove instance " + name + " of app " + app}, nil
}
func (f *fakeEngine) SyncNow(_ context.Context, opts store.SyncOptions) (store.SyncState, error) {
	f.record(fmt.Sprintf("sync push=%v", opts.Push))
	return store.SyncState{}, nil
}
func (f *fakeEngine) StartForwards(_ context.Context, app string, sel runtime.Selection) error {
	f.record("forward " + app)
	return nil
}
func (f *fakeEngine) StopForwards(app, inst string) { f.record("stop forwards " + app + "/" + inst) }
func (f *fakeEngine) Env(context.Context, string, runtime.Selection) (*render.Env, error) {
	f.record("env")
	return &render.Env{Values: map[string]string{"API_TOKEN": "s3cr3t-token", "LOG_LEVEL": "debug"}, Secret: map[string]bool{"API_TOKEN": true}}, nil
}
func (f *fakeEngine) Render(context.Context, string, runtime.Selection) (*render.Result, *render.Env, error) {
	return nil, nil, errors.New("not in the fake")
}
func (f *fakeEngine) Diff(context.Context, string, runtime.Selection, map[string]any) (string, error) {
	return "", nil
}
func (f *fakeEngine) FollowLogs(app string, _ runtime.Selection) error {
	f.record("follow logs " + app)
	return nil
}
func (f *fakeEngine) LogLines(string, string) runtime.LogBuffer { return runtime.LogBuffer{} }
func (f *fakeEngine) StopLogs(app, _ string)                    { f.record("stop logs " + app) }
func (f *fakeEngine) SetContext(name string) {
	f.mu.Lock()
	f.snap.Context = name
	f.mu.Unlock()
	f.record("context " + name)
}

func (f *fakeEngine) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

// demoSnapshot is a snapshot like the demo workspace's: db healthy, api with a failed up,
// web not running.
func demoSnapshot() *runtime.Snapshot {
	inst := func(app, name, ns string, h runtime.Health) runtime.InstanceView {
		return runtime.InstanceView{App: app, Instance: name, Namespace: ns, Environment: "dev", Declared: true, Running: h != runtime.NotRunning, Health: h}
	}
	return &runtime.Snapshot{
		Version:     7,
		Workspace:   runtime.WorkspaceView{Name: "demo", DefaultEnvironment: "dev", Environments: []string{"dev", "staging"}},
		Connections: []runtime.ConnectionView{{Environment: "dev", State: runtime.Connected, Context: "kind-dev", Synced: true}},
		Apps: []runtime.AppView{
			{Name: "api", Group: "backend", Engine: "go", Namespace: "demo-api", Health: runtime.Failed, Forwards: 1,
				Instances: []runtime.InstanceView{inst("api", "default", "demo-api", runtime.Failed), inst("api", "pr-42", "api-pr-42", runtime.NotRunning)}},
			{Name: "db", Group: "data", Engine: "jinja", Namespace: "demo-db", Health: runtime.Healthy,
				Instances: []runtime.InstanceView{inst("db", "default", "demo-db", runtime.Healthy)}},
			{Name: "web", Group: "frontend", Engine: "handlebars", Namespace: "demo-web", Health: runtime.NotRunning,
				Instances: []runtime.InstanceView{inst("web", "default", "demo-web", runtime.NotRunning)}},
		},
		Operations: []runtime.OperationView{{ID: 3, Kind: runtime.OpUp, State: runtime.OpFailed,
			Targets: []runtime.InstanceKey{{App: "api", Instance: "default"}},
			Problems: []error{&runtime.AppError{App: "api", Err: &kube.ObjectError{Op: "apply",
				Object: kube.ObjectRef{Kind: "Deployment", Namespace: "demo-api", Name: "api"}, Err: errors.New("spec.replicas: Invalid value: -1")}}}}},
	}
}

// screen drives a UI with an input.Router, as the window would, at 1200×800 dp.
type screen struct {
	t   *testing.T
	r   input.Router
	ui  *UI
	gtx layout.Context
}

func newScreen(t *testing.T, eng Engine) *screen {
	s := &screen{t: t, ui: NewUI(eng, Options{Theme: themes.Light})}
	s.gtx = layout.Context{Ops: new(op.Ops), Source: s.r.Source(), Metric: unit.Metric{PxPerDp: 1, PxPerSp: 1},
		Constraints: layout.Exact(image.Pt(1200, 800))}
	s.frame()
	return s
}

// frame lays the UI out once and hands the frame to the router.
func (s *screen) frame() {
	s.gtx.Reset()
	s.gtx.Source = s.r.Source()
	s.ui.Layout(s.gtx)
	s.r.Frame(s.gtx.Ops)
}

// find returns the bounds of the widget described as desc.
func (s *screen) find(desc string) (image.Rectangle, bool) {
	return findDescribed(s.r.AppendSemantics(nil), desc)
}

// click presses and releases the primary button on the widget described as desc, then lays
// the frame out again, so the UI handles the click.
func (s *screen) click(desc string) {
	s.t.Helper()
	b, ok := s.find(desc)
	if !ok {
		s.t.Fatalf("no widget %q on the screen", desc)
	}
	p := f32.Pt(float32(b.Min.X+b.Max.X)/2, float32(b.Min.Y+b.Max.Y)/2)
	s.r.Queue(
		pointer.Event{Kind: pointer.Press, Source: pointer.Mouse, Buttons: pointer.ButtonPrimary, Position: p},
		pointer.Event{Kind: pointer.Release, Source: pointer.Mouse, Buttons: pointer.ButtonPrimary, Position: p},
	)
	s.frame()
	s.frame()
}

// key presses and releases a key, then lays out.
func (s *screen) key(name key.Name, mods key.Modifiers) {
	s.r.Queue(key.Event{Name: name, Modifiers: mods, State: key.Press}, key.Event{Name: name, Modifiers: mods, State: key.Release})
	s.frame()
	s.frame()
}

// TestActionsCallTheEngine: Up, Down and Restart on an app's row call the engine for that app
// and select it.
func TestActionsCallTheEngine(t *testing.T) {
	eng := &fakeEngine{snap: demoSnapshot()}
	s := newScreen(t, eng)
	s.click("Up web")
	s.click("Down db")
	s.click("Restart api")
	want := []string{"up web instance=", "down db instance=", "restart api"}
	if got := eng.Calls(); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("calls %q, want %q", got, want)
	}
	if s.ui.Selected() != "api" {
		t.Errorf("selected %q after acting on api", s.ui.Selected())
	}
}

// TestFilter: typing in the filter (reached with /) hides the apps that do not match by name,
// group, instance or namespace; Esc clears it.
func TestFilter(t *testing.T) {
	eng := &fakeEngine{snap: demoSnapshot()}
	s := newScreen(t, eng)
	s.key("/", 0)
	s.r.Queue(key.EditEvent{Text: "front"})
	s.frame()
	s.frame()
	if _, ok := s.find("Up web"); !ok {
		t.Error("web (group frontend) is hidden by the filter \"front\"")
	}
	if _, ok := s.find("Up api"); ok {
		t.Error("api shows through the filter \"front\"")
	}
	s.key(key.NameReturn, 0) // Enter opens the first app the filter lets through
	if s.ui.Selected() != "web" {
		t.Errorf("Enter in the filter selected %q, want web", s.ui.Selected())
	}
	s.key(key.NameEscape, 0)
	if _, ok := s.find("Up api"); !ok {
		t.Error("Esc did not clear the filter")
	}
	s.ui.filter.SetText("pr-42") // an instance's name finds its app
	s.frame()
	if _, ok := s.find("Up api"); !ok {
		t.Error("the filter does not match instance names")
	}
	if _, ok := s.find("Up db"); ok {
		t.Error("db matches pr-42")
	}
}

// TestArrowsMoveTheSelection: Down and Up arrows walk the visible apps in sidebar order.
func TestArrowsMoveTheSelection(t *testing.T) {
	s := newScreen(t, &fakeEngine{snap: demoSnapshot()})
	if s.ui.Selected() != "api" {
		t.Fatalf("first selection %q", s.ui.Selected())
	}
	s.key(key.NameDownArrow, 0)
	s.key(key.NameDownArrow, 0)
	// Sidebar order is by group: backend (api), data (db), frontend (web).
	if s.ui.Selected() != "web" {
		t.Errorf("after two Down arrows: %q", s.ui.Selected())
	}
	s.key(key.NameDownArrow, 0)
	s.key(key.NameUpArrow, 0)
	if s.ui.Selected() != "db" {
		t.Errorf("after Down (at the end) then Up: %q", s.ui.Selected())
	}
}

// TestBusyErrorShowsOnItsApp: an action refused at once says why, naming the app.
func TestBusyErrorShowsOnItsApp(t *testing.T) {
	eng := &fakeEngine{snap: demoSnapshot(), upErr: &runtime.BusyError{Instance: runtime.InstanceKey{App: "db", Instance: "default"}, Running: runtime.OpDown, ID: 9}}
	s := newScreen(t, eng)
	s.click("Up db")
	if !strings.Contains(s.ui.note, "db is busy: down #9 is running on it") || s.ui.noteApp != "db" {
		t.Errorf("note %q for %q", s.ui.note, s.ui.noteApp)
	}
}

// labels returns every text label on the screen.
func (s *screen) labels() []string {
	var out []string
	var walk func([]input.SemanticNode)
	walk = func(nodes []input.SemanticNode) {
		for _, n := range nodes {
			if n.Desc.Label != "" {
				out = append(out, n.Desc.Label)
			}
			walk(n.Children)
		}
	}
	walk(s.r.AppendSemantics(nil))
	return out
}

func (s *screen) shows(substr string) bool {
	for _, l := range s.labels() {
		if strings.Contains(l, substr) {
			return true
		}
	}
	return false
}

// TestFailedOperationShowsOnItsApp: the failed up of api shows on api's page, with the
// object it belongs to; db's page does not show it.
func TestFailedOperationShowsOnItsApp(t *testing.T) {
	s := newScreen(t, &fakeEngine{snap: demoSnapshot()})
	if !s.shows("app api: Deployment demo-api/api: spec.replicas: Invalid value: -1") || !s.shows("up api — failed") {
		t.Errorf("api's page lacks its failed up:\n%s", strings.Join(s.labels(), "\n"))
	}
	s.key(key.NameDownArrow, 0) // db
	if s.shows("spec.replicas") {
		t.Error("db's page shows api's error")
	}
	if !s.shows("db") || !s.shows("healthy") {
		t.Errorf("db's page:\n%s", strings.Join(s.labels(), "\n"))
	}
}

// TestConnectionStateInWords: the top bar says where the cluster stands, in words.
func TestConnectionStateInWords(t *testing.T) {
	snap := demoSnapshot()
	snap.Connections = []runtime.ConnectionView{{Environment: "dev", State: runtime.Unreachable, Reason: "connection refused"}}
	s := newScreen(t, &fakeEngine{snap: snap})
	if !s.shows("dev: unreachable: connection refused") {
		t.Errorf("top bar:\n%s", strings.Join(s.labels(), "\n"))
	}
}

// TestWorkspaceProblemShown: when the files on disk stop loading (an edit, a pull), the
// status bar says so with the place, over the last version that loaded.
func TestWorkspaceProblemShown(t *testing.T) {
	snap := demoSnapshot()
	snap.Workspace.Problem = "/ws/apps/api/app.json:3:3: unknown field \"forwrds\""
	s := newScreen(t, &fakeEngine{snap: snap})
	if !s.shows("The workspace's files do not load; showing the last version that did: /ws/apps/api/app.json:3:3: unknown field \"forwrds\"") || !s.shows("api") {
		t.Errorf("screen:\n%s", strings.Join(s.labels(), "\n"))
	}
}

// TestLocateMatchesTheScreen: Locate finds a button where the screen has it.
func TestLocateMatchesTheScreen(t *testing.T) {
	eng := &fakeEngine{snap: demoSnapshot()}
	s := newScreen(t, eng)
	want, ok := s.find("Up web")
	got, ok2 := Locate(eng, Options{Theme: themes.Light}, image.Pt(1200, 800), "Up web")
	if !ok || !ok2 || got != want || got.Empty() {
		t.Errorf("Locate %v %v, screen %v %v", got, ok2, want, ok)
	}
}

// until lays the screen out until cond holds (pages load in the background), for up to 2 s.
func (s *screen) until(cond func() bool) bool {
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		s.frame()
		if cond() {
			return true
		}
	}
	return false
}

// TestSecretsStayMaskedUntilRevealed: the env page masks a secret until its Reveal is
// clicked, hides it again, and Copy as .env puts the values on the clipboard.
func TestSecretsStayMaskedUntilRevealed(t *testing.T) {
	eng := &fakeEngine{snap: demoSnapshot()}
	s := newScreen(t, eng)
	s.click("Tab Env")
	if !s.until(func() bool { return s.shows("API_TOKEN=******") }) {
		t.Fatalf("the env page never showed the masked secret:\n%s", strings.Join(s.labels(), "\n"))
	}
	if s.shows("s3cr3t-token") {
		t.Fatal("the secret shows before it was revealed")
	}
	if !s.shows("LOG_LEVEL=debug") {
		t.Error("a plain value is not shown")
	}
	s.click("Reveal API_TOKEN")
	if !s.shows("API_TOKEN=s3cr3t-token") {
		t.Errorf("Reveal did not show the secret:\n%s", strings.Join(s.labels(), "\n"))
	}
	s.click("Hide API_TOKEN")
	if s.shows("s3cr3t-token") {
		t.Error("Hide left the secret shown")
	}
	s.click("Copy the env of api as .env")
	if _, data, ok := s.r.WriteClipboard(); !ok || !strings.Contains(string(data), `API_TOKEN='s3cr3t-token'`) {
		t.Errorf("clipboard %q %v", data, ok)
	}
}

// TestLogsFollowedOnlyWhileShown: the logs page has the engine follow the app's logs, and
// leaving it stops them.
func TestLogsFollowedOnlyWhileShown(t *testing.T) {
	eng := &fakeEngine{snap: demoSnapshot()}
	s := newScreen(t, eng)
	s.click("Tab Logs")
	s.click("Tab Overview")
	if got := strings.Join(eng.Calls(), "|"); got != "follow logs api|stop logs api" {
		t.Errorf("calls %q", got)
	}
}

// TestForwardActions: a live forward's address opens in the browser and copies.
func TestForwardActions(t *testing.T) {
	snap := demoSnapshot()
	snap.Apps[1].Forwards = 1 // db
	snap.Forwards = []runtime.ForwardView{{App: "db", Instance: "default", Status: forward.Status{Target: "service/db", Namespace: "demo-db",
		Address: "127.0.0.1", Ports: []forward.Port{{Local: 15432, Remote: "postgres"}}, State: forward.Connected, Pod: "db-0"}}}
	var opened []string
	s := newScreen(t, &fakeEngine{snap: snap})
	s.ui.openURL = func(u string) error { opened = append(opened, u); return nil }
	s.key(key.NameDownArrow, 0) // db
	if !s.shows("connected to pod db-0") {
		t.Fatalf("db's page:\n%s", strings.Join(s.labels(), "\n"))
	}
	s.click("Open 127.0.0.1:15432")
	if len(opened) != 1 || opened[0] != "http://127.0.0.1:15432" {
		t.Errorf("opened %v", opened)
	}
	s.click("Copy 127.0.0.1:15432")
	if _, data, ok := s.r.WriteClipboard(); !ok || string(data) != "127.0.0.1:15432" {
		t.Errorf("clipboard %q %v", data, ok)
	}
}

// TestCtrlRRefreshes: Ctrl+R loads the current page again.
func TestCtrlRRefreshes(t *testing.T) {
	eng := &fakeEngine{snap: demoSnapshot()}
	s := newScreen(t, eng)
	s.click("Tab Env")
	if !s.until(func() bool { return s.shows("LOG_LEVEL=debug") }) {
		t.Fatal("env never loaded")
	}
	s.key("R", key.ModShortcut)
	count := func() int { return strings.Count(strings.Join(eng.Calls(), "|"), "env") }
	if !s.until(func() bool { return count() == 2 }) {
		t.Errorf("env loaded %d times after Ctrl+R, want 2", count())
	}
}

// TestEnvironmentAndNewInstance: the environment switch cycles the workspace's
// environments, and actions carry it; a new instance's name brings that instance up.
func TestEnvironmentAndNewInstance(t *testing.T) {
	eng := &fakeEngine{snap: demoSnapshot()}
	s := newScreen(t, eng)
	s.click("Switch the environment actions run in") // default → dev
	s.click("Switch the environment actions run in") // → staging
	s.click("Up web")
	s.ui.newInst.SetText("pr-7")
	s.frame()
	s.click("Up a new instance of web")
	got := strings.Join(eng.Calls(), "|")
	if got != "up web instance=|up web instance=pr-7" {
		t.Errorf("calls %q", got)
	}
	if s.ui.env != "staging" || eng.lastEnv != "staging" {
		t.Errorf("env %q, the engine got %q; want staging", s.ui.env, eng.lastEnv)
	}
	s.click("Switch the environment actions run in") // → back to each instance's own
	if s.ui.env != "" {
		t.Errorf("env %q after the cycle, want the default", s.ui.env)
	}
}

// TestContextSwitch: the context button cycles the kubeconfig's contexts and back to each
// environment's own.
func TestContextSwitch(t *testing.T) {
	eng := &fakeEngine{snap: demoSnapshot()}
	s := newScreen(t, eng)
	s.ui.contexts = func() []string { return []string{"kind-dev", "minikube"} }
	s.frame()
	for range 3 {
		s.click("Switch the cluster context")
	}
	if got := strings.Join(eng.Calls(), "|"); got != "context kind-dev|context minikube|context " {
		t.Errorf("calls %q", got)
	}
}

// TestValuesCommit: values typed on the overview are set through the engine as one commit,
// and the commit (or the refusal, with why) shows under the field.
func TestValuesCommit(t *testing.T) {
	eng := &fakeEngine{snap: demoSnapshot()}
	s := newScreen(t, eng)
	s.ui.git.values.SetText("replicas=3 image.tag=2")
	s.frame()
	s.click("Set values of api")
	if !s.until(func() bool { return s.shows("committed 3333333 Set replicas=3, image.tag=2 of app api") }) {
		t.Fatalf("no commit shown:\n%s", strings.Join(s.labels(), "\n"))
	}
	if got := strings.Join(eng.Calls(), "|"); got != "set api replicas=3 image.tag=2" {
		t.Errorf("calls %q", got)
	}
	s.ui.git.values.SetText("")
	s.frame()
	s.click("Set values of api")
	if !s.until(func() bool { return s.shows("give at least one KEY=VALUE") }) {
		t.Errorf("no refusal shown:\n%s", strings.Join(s.labels(), "\n"))
	}
}

// TestHistoryPage: the History tab lists the app's commits; one opens to its diff, and its
// Revert's refusal shows with the reason. Where the workspace stands against its remote
// heads the page, both sides listed when they diverged; Sync and Push call the engine.
func TestHistoryPage(t *testing.T) {
	snap := demoSnapshot()
	snap.Git = runtime.GitView{State: store.SyncDiverged, Remote: "origin", Branch: "main", Ahead: 1, Behind: 2,
		Message: "the workspace and origin/main have diverged", AheadCommits: []string{"4444444 Add instance pr-9 of app api"},
		BehindCommits: []string{"5555555 Quieter logs", "6666666 Set image=nginx:2 of app web"}, Fetched: time.Now().Add(-3 * time.Minute)}
	eng := &fakeEngine{snap: snap}
	s := newScreen(t, eng)
	if !s.shows("origin/main: 1 ahead · 2 behind · fetched 3m ago") {
		t.Errorf("top bar:\n%s", strings.Join(s.labels(), "\n"))
	}
	s.click("Tab History")
	if !s.until(func() bool { return s.shows("Set replicas=3 of app api") }) {
		t.Fatalf("history never loaded:\n%s", strings.Join(s.labels(), "\n"))
	}
	for _, want := range []string{"Here, not on origin/main:", "4444444 Add instance pr-9 of app api", "On origin/main, not here:", "6666666 Set image=nginx:2 of app web", "1111111  2026-11-26", "Ada  Set replicas=3 of app api"} {
		if !s.shows(want) {
			t.Errorf("the page lacks %q:\n%s", want, strings.Join(s.labels(), "\n"))
		}
	}
	s.click("Commit 1111111")
	if !s.until(func() bool { return s.shows(`+    "replicas": 3`) }) {
		t.Fatalf("the commit's diff never showed:\n%s", strings.Join(s.labels(), "\n"))
	}
	s.click("Revert 1111111")
	if !s.until(func() bool { return s.shows("does not apply cleanly: apps/api/app.json changed since 1111111") }) {
		t.Errorf("the revert's refusal is not shown:\n%s", strings.Join(s.labels(), "\n"))
	}
	s.click("Sync the workspace with origin/main")
	s.click("Push local commits to origin/main")
	calls := strings.Join(eng.Calls(), "|")
	if !s.until(func() bool {
		calls = strings.Join(eng.Calls(), "|")
		return strings.Contains(calls, "sync push=false") && strings.Contains(calls, "sync push=true")
	}) {
		t.Errorf("calls %q", calls)
	}
	if !strings.Contains(calls, "history api") || !strings.Contains(calls, "show 1111111aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa") || !strings.Contains(calls, "revert 1111111aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa") {
		t.Errorf("calls %q", calls)
	}
}

// fakeSharing records the Sharing page's calls.
type fakeSharing struct {
	mu    sync.Mutex
	calls []string
}

func (f *fakeSharing) record(c string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, c)
}
func (f *fakeSharing) Start() error { f.record("start"); return nil }
func (f *fakeSharing) Stop()        { f.record("stop") }
func (f *fakeSharing) Approve(fp, role string) error {
	f.record("approve " + fp + " " + role)
	return nil
}
func (f *fakeSharing) Calls() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return strings.Join(f.calls, "|")
}

// TestSharingPage: the top bar says the server is on and a key waits; the Sharing page shows
// where teammates clone from (copied with one click), the keys with their roles, and the
// refused key with Approve; the switch and Approve call the server's switch.
func TestSharingPage(t *testing.T) {
	snap := demoSnapshot()
	snap.Sharing = runtime.SharingView{Available: true, Running: true, Addr: "127.0.0.1:2222", HostKey: "SHA256:host",
		CloneURLs: []string{"ssh://127.0.0.1:2222/demo"},
		Keys:      []runtime.SharingKey{{Fingerprint: "SHA256:alice", Comment: "alice@laptop", Role: "write"}},
		Refused:   []runtime.SharingKey{{Fingerprint: "SHA256:bob", Address: "10.0.0.7:50022", At: time.Now(), Attempts: 2}}}
	sh := &fakeSharing{}
	s := newScreen(t, &fakeEngine{snap: snap})
	s.ui.share = sh
	s.frame()
	if !s.shows("Sharing: on (1 waiting)") {
		t.Fatalf("top bar:\n%s", strings.Join(s.labels(), "\n"))
	}
	s.click("Share this workspace with teammates over git")
	for _, want := range []string{"Serving on 127.0.0.1:2222 (host key SHA256:host).", "git clone ssh://127.0.0.1:2222/demo",
		"write  SHA256:alice  alice@laptop", "SHA256:bob  from 10.0.0.7:50022", "(2 attempts)", "listens on this machine only"} {
		if !s.shows(want) {
			t.Errorf("the page lacks %q:\n%s", want, strings.Join(s.labels(), "\n"))
		}
	}
	s.click("Copy git clone ssh://127.0.0.1:2222/demo")
	if _, data, ok := s.r.WriteClipboard(); !ok || string(data) != "git clone ssh://127.0.0.1:2222/demo" {
		t.Errorf("clipboard %q %v", data, ok)
	}
	s.click("Approve SHA256:bob to read")
	s.click("Turn off the git server")
	if !s.until(func() bool {
		return sh.Calls() == "approve SHA256:bob read|stop" || sh.Calls() == "stop|approve SHA256:bob read"
	}) {
		t.Errorf("calls %q", sh.Calls())
	}
	s.click("Select api")
	if s.shows("Serving on") {
		t.Error("selecting an app did not leave the Sharing page")
	}
}

// TestInstancesInAppJSON: a name typed in the overview's field is declared in app.json as one
// commit (in the environment actions run in), and a declared instance that is not running
// leaves app.json from its line; each commit, or refusal, shows on the page.
func TestInstancesInAppJSON(t *testing.T) {
	snap := demoSnapshot()
	eng := &fakeEngine{snap: snap}
	s := newScreen(t, eng)
	s.click("Switch the environment actions run in") // default → dev
	s.ui.newInst.SetText("pr-9")
	s.frame()
	s.click("Declare a new instance of api")
	if !s.until(func() bool { return s.shows("committed 7777777 Add instance pr-9 of app api") }) {
		t.Fatalf("no commit shown:\n%s", strings.Join(s.labels(), "\n"))
	}
	s.click("Remove instance pr-42 of api")
	if !s.until(func() bool { return s.shows("committed 8888888 Remove instance pr-42 of app api") }) {
		t.Fatalf("no removal shown:\n%s", strings.Join(s.labels(), "\n"))
	}
	if got := strings.Join(eng.Calls(), "|"); got != "add instance api pr-9 env=dev|remove instance api pr-42" {
		t.Errorf("calls %q", got)
	}
	s.click("Declare a new instance of api") // the field is empty now
	if !s.until(func() bool { return s.shows(`"" is not a valid instance name`) }) {
		t.Errorf("no refusal shown:\n%s", strings.Join(s.labels(), "\n"))
	}
}
