package runtime

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rorokube/roro/core/render"
	"github.com/rorokube/roro/core/render/worker"
	"github.com/rorokube/roro/core/workspace"
)

// Options configure an Engine; zero values are sensible defaults except Connect.
type Options struct {
	// Connect connects to an environment's cluster (KubeConnector in the CLI and the window).
	Connect Connector
	// Store caches what runs where; nil keeps no cache.
	Store *Store
	// LookupHost reads host variables for env sources (os.LookupEnv outside tests).
	LookupHost func(string) (string, bool)
	// Now is the clock.
	Now func() time.Time
	// Transport is the forwards' transport: forward.TransportAuto when empty.
	Transport string
	// RetryMin and RetryMax bound the wait between attempts to reach a cluster
	// (default 500 ms and 15 s, doubling).
	RetryMin, RetryMax time.Duration
	// PingEvery is how often a connected cluster is checked (default 10 s).
	PingEvery time.Duration
	// KeepOperations is how many finished operations the snapshot keeps (default 20).
	KeepOperations int
	// AllowNonLoopback lets forwards listen on addresses beyond loopback when app.json asks
	// (the user's choice on their machine, never the workspace's).
	AllowNonLoopback bool
	// Watch turns on the watches that keep the snapshot's instances current (the window and
	// the tray want them; one-shot CLI commands do not).
	Watch bool
	// Render runs the templates. Nil: the engine runs them in a worker.Pool of its own with
	// the default bounds, stopped by Close.
	Render render.Executor
	// WatchFiles reloads the workspace when its files change (an editor, a pull, a push):
	// the window and `roro forward` want it. An edit that does not load keeps the last good
	// workspace and shows in the snapshot's Workspace.Problem.
	WatchFiles bool
	// Repo is the workspace's git repository: changes (SetValues, AddInstance, Revert, …) are
	// commits through it, and it syncs with the remote on demand (SyncNow) and in the
	// background every sync.interval of roro.json. Nil: no history, no sync.
	Repo Repo
	// Board, when set, receives the forwards after every change, for other roro processes
	// (`roro ps -o wide`) to read. The caller opens it; Close closes it.
	Board *Board
}

// Engine is the one long-lived core that the window, the tray and the CLI drive: it holds
// the loaded workspace, one connection per environment, the operations, and the forwards,
// and publishes all of it as one Snapshot. New starts it; Close stops every goroutine it
// started. Every method is safe for concurrent use.
type Engine struct {
	opts   Options
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	current atomic.Pointer[Snapshot]
	dirty   chan struct{}

	mu       sync.Mutex
	closed   bool
	ws       *workspace.Workspace
	conns    map[string]*conn
	ops      []*Operation // running and finished, oldest first
	busy     map[InstanceKey]*Operation
	nextOp   uint64
	forwards map[InstanceKey]*forwardSet
	fwErrs   map[InstanceKey]string // why an instance's forwards are not running
	logs     map[InstanceKey]*logFollower
	retired  []Cluster // of connections that ended while operations may still use them
	// contextOverride is the kubeconfig context the user picked for this session.
	contextOverride string
	git             GitView
	sharing         SharingView
	version         uint64
	// wsProblem is why the workspace's files, as they are now, do not load; nil when they do.
	wsProblem error

	subMu sync.Mutex
	subs  map[chan struct{}]struct{}

	// ownRender is the worker pool New made when Options.Render was nil; Close stops it.
	ownRender *worker.Pool
}

// New starts an engine on ws. It returns at once: clusters are reached in the background,
// and their state shows in the snapshot.
func New(ws *workspace.Workspace, opts Options) (*Engine, error) {
	if ws == nil {
		return nil, errors.New("runtime.New: no workspace")
	}
	if opts.Connect == nil {
		return nil, errors.New("runtime.New: no Connect")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.LookupHost == nil {
		opts.LookupHost = func(string) (string, bool) { return "", false }
	}
	if opts.RetryMin <= 0 {
		opts.RetryMin = 500 * time.Millisecond
	}
	if opts.RetryMax <= 0 {
		opts.RetryMax = 15 * time.Second
	}
	if opts.PingEvery <= 0 {
		opts.PingEvery = 10 * time.Second
	}
	if opts.KeepOperations <= 0 {
		opts.KeepOperations = 20
	}
	var own *worker.Pool
	if opts.Render == nil {
		own = worker.New(worker.Options{})
		opts.Render = own
	}
	ctx, cancel := context.WithCancel(context.Background())
	e := &Engine{opts: opts, ctx: ctx, cancel: cancel, dirty: make(chan struct{}, 1), ws: ws,
		conns: map[string]*conn{}, busy: map[InstanceKey]*Operation{}, forwards: map[InstanceKey]*forwardSet{}, fwErrs: map[InstanceKey]string{}, logs: map[InstanceKey]*logFollower{},
		subs: map[chan struct{}]struct{}{}, ownRender: own}
	e.mu.Lock()
	e.syncConnsLocked()
	e.mu.Unlock()
	e.current.Store(e.build())
	e.wg.Go(e.publisher)
	e.wg.Go(e.watchCounters)
	if opts.Repo != nil {
		e.wg.Go(e.syncLoop)
	}
	if opts.WatchFiles {
		w := workspace.NewWatcher(ws.Dir, workspace.WatchOptions{Loaded: e.reloaded, Failed: e.loadFailed})
		ended := make(chan struct{})
		e.wg.Go(func() {
			defer close(ended)
			if err := w.Run(e.ctx); err != nil {
				e.loadFailed(err)
			}
		})
		// Once New returns, every change to the files is seen.
		select {
		case <-w.Ready():
		case <-ended:
		}
	}
	return e, nil
}

// reloaded takes a workspace the file watcher loaded after a change.
func (e *Engine) reloaded(ws *workspace.Workspace) {
	e.mu.Lock()
	e.wsProblem = nil
	e.mu.Unlock()
	_ = e.Reload(ws) // ErrClosed only: the engine is going
}

// loadFailed keeps the last good workspace and publishes why the files do not load.
func (e *Engine) loadFailed(err error) {
	e.mu.Lock()
	e.wsProblem = err
	e.mu.Unlock()
	e.changed()
}

// countersEvery is how often the engine looks for forwards whose traffic counters moved.
const countersEvery = time.Second

// watchCounters publishes a snapshot when a forward's counters (connections, bytes) moved
// since the last look: they change with every connection, too often to publish each, and
// never while idle, so an idle engine still publishes nothing.
func (e *Engine) watchCounters() {
	tick := time.NewTicker(countersEvery)
	defer tick.Stop()
	var last []int64
	for {
		select {
		case <-e.ctx.Done():
			return
		case <-tick.C:
		}
		var now []int64
		e.mu.Lock()
		for _, key := range sortedInstanceKeys(e.forwards) {
			for _, f := range e.forwards[key].fws {
				st := f.Status()
				now = append(now, st.Total, st.Open, st.BytesIn, st.BytesOut, st.Failures, st.Cut)
			}
		}
		e.mu.Unlock()
		if !slices.Equal(now, last) {
			last = now
			e.changed()
		}
	}
}

// Close cancels every operation, stops every forward, watch and connection, and returns
// once every goroutine the engine started has ended. Calling it again does nothing.
func (e *Engine) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	e.mu.Unlock()
	e.cancel()
	e.wg.Wait()
	_ = e.opts.Board.Close()
	// Everything that used the clusters has ended: drop their connections.
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, c := range e.conns {
		if c.cluster != nil {
			c.cluster.Close()
		}
	}
	for _, c := range e.retired {
		c.Close()
	}
	if e.ownRender != nil {
		e.ownRender.Close()
	}
	return nil
}

// Workspace returns the loaded workspace. It must not be modified.
func (e *Engine) Workspace() *workspace.Workspace {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.ws
}

// Snapshot returns the latest snapshot; never nil.
func (e *Engine) Snapshot() *Snapshot { return e.current.Load() }

// Subscribe returns a channel that receives a signal after each new snapshot, and a function
// that ends the subscription. Signals coalesce: a subscriber that reads late gets one signal
// and reads the latest snapshot; one that never reads blocks nobody.
func (e *Engine) Subscribe() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	e.subMu.Lock()
	e.subs[ch] = struct{}{}
	e.subMu.Unlock()
	return ch, func() {
		e.subMu.Lock()
		delete(e.subs, ch)
		e.subMu.Unlock()
	}
}

// SetGit records the git sync state for the snapshot.
func (e *Engine) SetGit(g GitView) {
	e.mu.Lock()
	e.git = g
	e.mu.Unlock()
	e.changed()
}

// SetSharing publishes the embedded git server's state (the desktop runs the server).
func (e *Engine) SetSharing(v SharingView) {
	e.mu.Lock()
	e.sharing = v
	e.mu.Unlock()
	e.changed()
}

// Reload swaps the workspace (after its files changed, a pull or a push): connections follow
// the environments, and forwards whose spec changed restart while the others run on
// untouched. Running operations finish with the workspace they started with.
func (e *Engine) Reload(ws *workspace.Workspace) error {
	if ws == nil {
		return errors.New("reload: no workspace")
	}
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return ErrClosed
	}
	e.ws = ws
	e.syncConnsLocked()
	restart := e.reconcileForwardsLocked(ws)
	e.mu.Unlock()
	for _, r := range restart {
		r()
	}
	e.changed()
	return nil
}

// changed asks the publisher for a new snapshot; it never blocks.
func (e *Engine) changed() {
	select {
	case e.dirty <- struct{}{}:
	default:
	}
}

// publisher builds and publishes a snapshot after changes, coalescing bursts, until Close.
func (e *Engine) publisher() {
	for {
		select {
		case <-e.ctx.Done():
			return
		case <-e.dirty:
		}
		snap := e.build()
		e.current.Store(snap)
		_ = e.opts.Board.Publish(snap.Forwards) // a board that cannot be written hides forwards from ps only
		e.subMu.Lock()
		for ch := range e.subs {
			select {
			case ch <- struct{}{}:
			default:
			}
		}
		e.subMu.Unlock()
	}
}

// build makes a snapshot of the engine's state now.
func (e *Engine) build() *Snapshot {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.version++
	ws := e.ws
	s := &Snapshot{Version: e.version, At: e.opts.Now(), Git: e.git, Sharing: e.sharing, Context: e.contextOverride,
		Workspace: WorkspaceView{Name: ws.File.Name, Dir: ws.Dir, DefaultEnvironment: ws.File.DefaultEnvironment, Environments: ws.EnvironmentNames()}}
	if e.wsProblem != nil {
		s.Workspace.Problem = e.wsProblem.Error()
	}
	// Running instances, from every connected environment's watch.
	running := map[InstanceKey]InstanceView{}
	var orphans []InstanceView
	for _, env := range sortedKeys(e.conns) {
		c := e.conns[env]
		s.Connections = append(s.Connections, c.view())
		for _, iv := range c.instances {
			if iv.Workspace != "" && iv.Workspace != ws.File.Name {
				continue
			}
			if c.state != Connected {
				// Last seen running; what it is now, roro cannot tell.
				iv.Health = Unknown
			}
			if ws.App(iv.App) == nil {
				orphans = append(orphans, iv)
				continue
			}
			running[InstanceKey{iv.App, iv.Instance}] = iv
		}
	}
	for _, app := range ws.Apps {
		av := AppView{Name: app.Name, Group: app.File.Group, Engine: app.Engine(), Namespace: app.Namespace(),
			DependsOn: app.File.DependsOn, Health: NotRunning, Forwards: len(app.File.Forwards)}
		names := append([]string{workspace.DefaultInstance}, app.InstanceNames()...)
		for _, iv := range running {
			if iv.App == app.Name && !slices.Contains(names, iv.Instance) {
				names = append(names, iv.Instance)
			}
		}
		slices.Sort(names[1+len(app.File.Instances):])
		for i, name := range names {
			key := InstanceKey{app.Name, name}
			iv, ok := running[key]
			if !ok {
				iv = InstanceView{App: app.Name, Instance: name, Health: NotRunning}
				if info, env, err := render.ResolveInstance(ws, app, render.Request{Instance: name}); err == nil {
					iv.Namespace, iv.Environment = info.Namespace, env
				}
				if c := e.conns[iv.Environment]; c != nil && (c.state != Connected || !c.synced) {
					iv.Health = Unknown // roro has not seen (or cannot see) what runs
				}
			}
			iv.Declared = i <= len(app.File.Instances)
			if op := e.busy[key]; op != nil {
				iv.Busy = op.id
			}
			av.Health = worse(av.Health, iv.Health)
			av.Instances = append(av.Instances, iv)
		}
		s.Apps = append(s.Apps, av)
	}
	s.Orphans = orphans
	for i := len(e.ops) - 1; i >= 0; i-- {
		if e.ops[i].running() {
			s.Operations = append(s.Operations, e.ops[i].view())
		}
	}
	for i := len(e.ops) - 1; i >= 0; i-- {
		if !e.ops[i].running() {
			s.Operations = append(s.Operations, e.ops[i].view())
		}
	}
	for _, key := range sortedInstanceKeys(e.forwards) {
		s.Forwards = append(s.Forwards, e.forwards[key].views()...)
	}
	for _, key := range sortedInstanceKeys(e.fwErrs) {
		if e.forwards[key] == nil {
			s.Forwards = append(s.Forwards, ForwardView{App: key.App, Instance: key.Instance, Err: e.fwErrs[key]})
		}
	}
	return s
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func sortedInstanceKeys[V any](m map[InstanceKey]V) []InstanceKey {
	keys := make([]InstanceKey, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b InstanceKey) int {
		if a.App != b.App {
			return compare(a.App, b.App)
		}
		return compare(a.Instance, b.Instance)
	})
	return keys
}

// target resolves one instance of app for a selection against the current workspace.
func (e *Engine) target(ws *workspace.Workspace, app *workspace.App, environment, instance string, values map[string]any) (Target, error) {
	info, env, err := render.ResolveInstance(ws, app, render.Request{Environment: environment, Instance: instance})
	if err != nil {
		return Target{}, err
	}
	return Target{WS: ws, App: app, Instance: info, Environment: env, Values: values, LookupHost: e.opts.LookupHost, Render: e.opts.Render}, nil
}
