package forward

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
)

// Options are what a Forward needs beyond its Spec; zero values are sensible defaults.
type Options struct {
	// Transport is TransportAuto (default), TransportWebSocket or TransportSPDY.
	Transport string
	// Now is the clock; default time.Now.
	Now func() time.Time
	// OnChange is called, without blocking the forward for long, after each status change.
	OnChange func()
	// After waits out the backoff between attempts to connect to a pod: it is called with
	// each delay and its channel ends the wait; default time.After.
	After func(time.Duration) <-chan time.Time
	// Dial opens the upgraded connection to the portforward subresource of pod
	// namespace/name and returns it with the network connection under it (closed first when
	// the pod connection ends, so nothing of it outlives its pod); default: Transport, to the
	// API server of the rest.Config given to New. Dials run in the background, several at once.
	Dial func(ctx context.Context, namespace, name string) (httpstream.Connection, io.Closer, error)
}

// Forward forwards local ports to the pods of one target. New, then Run (blocking); Ready is
// closed once the listeners are bound; Stop is idempotent.
type Forward struct {
	spec   Spec
	target target
	ports  []portSpec
	cfg    *rest.Config
	kube   kubernetes.Interface
	opts   Options

	ready    chan struct{}
	stopOnce sync.Once
	stop     chan struct{}

	listeners []net.Listener
	handlers  sync.WaitGroup // one per accepted local connection
	bytesIn   atomic.Int64
	bytesOut  atomic.Int64
	openConns atomic.Int64
	total     atomic.Int64
	failures  atomic.Int64
	cut       atomic.Int64
	replayed  atomic.Int64
	retried   atomic.Int64

	mu       sync.Mutex
	state    State
	reason   string
	refused  bool // the state is Failed because the pod's port refuses
	since    time.Time
	events   []Event
	seq      uint64              // of the latest event
	current  *podConn            // where new connections go
	conns    map[string]*podConn // by pod UID, every open upgraded connection
	bound    []Port
	changed  chan struct{} // closed and replaced when current changes
	resolved *resolved

	// Owned by follow's goroutine.
	dialing    map[string]bool   // pod UIDs with a dial in flight
	triedAhead map[string]string // pod UID → the resourceVersion at which dialling it ahead failed
}

// New checks spec and returns a Forward that has not started.
func New(cfg *rest.Config, kube kubernetes.Interface, spec Spec, opts Options) (*Forward, error) {
	t, err := parseTarget(spec.Target)
	if err != nil {
		return nil, err
	}
	ports, err := parsePorts(spec.Ports)
	if err != nil {
		return nil, err
	}
	if spec.Address == "" {
		spec.Address = "127.0.0.1"
	}
	if spec.Hold <= 0 {
		spec.Hold = 30 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.After == nil {
		opts.After = time.After
	}
	if opts.Transport == "" {
		opts.Transport = TransportAuto
	}
	if opts.Dial == nil {
		opts.Dial = newDialer(cfg, opts.Transport).dial
	}
	f := &Forward{spec: spec, target: t, ports: ports, cfg: cfg, kube: kube, opts: opts,
		ready: make(chan struct{}), stop: make(chan struct{}), state: Starting, since: opts.Now(),
		conns: map[string]*podConn{}, changed: make(chan struct{}),
		dialing: map[string]bool{}, triedAhead: map[string]string{}}
	return f, nil
}

// Ready is closed once every local port is bound.
func (f *Forward) Ready() <-chan struct{} { return f.ready }

// Stop ends Run; calling it again does nothing.
func (f *Forward) Stop() { f.stopOnce.Do(func() { close(f.stop) }) }

// Ports returns the bound ports, valid once Ready is closed (a local port 0 is resolved).
func (f *Forward) Ports() []Port {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Port(nil), f.bound...)
}

// Status returns the forward's status now.
func (f *Forward) Status() Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := Status{Target: f.target.String(), Namespace: f.spec.Namespace, Address: f.spec.Address,
		Ports: append([]Port(nil), f.bound...), State: f.state, Reason: f.reason, Since: f.since,
		BytesIn: f.bytesIn.Load(), BytesOut: f.bytesOut.Load(), Open: f.openConns.Load(),
		Total: f.total.Load(), Failures: f.failures.Load(), Cut: f.cut.Load(),
		Replayed: f.replayed.Load(), Retried: f.retried.Load(), Events: append([]Event(nil), f.events...)}
	if f.current != nil {
		st.Pod = f.current.pod
	}
	return st
}

// setState records a state change and its reason in the event log, when it is a change.
func (f *Forward) setState(s State, pod, reason string) { f.record(s, pod, reason, false) }

// setRefused records that the pod's port refuses connections.
func (f *Forward) setRefused(pod, reason string) { f.record(Failed, pod, reason, true) }

func (f *Forward) record(s State, pod, reason string, refused bool) {
	f.mu.Lock()
	if f.state == s && f.reason == reason {
		f.mu.Unlock()
		return
	}
	now := f.opts.Now()
	f.state, f.reason, f.since, f.refused = s, reason, now, refused
	f.seq++
	f.events = append(f.events, Event{Seq: f.seq, At: now, State: s, Pod: pod, Message: reason})
	if len(f.events) > maxEvents {
		f.events = f.events[len(f.events)-maxEvents:]
	}
	f.mu.Unlock()
	if f.opts.OnChange != nil {
		f.opts.OnChange()
	}
}

// Run binds the listeners, then forwards until ctx ends or Stop is called. It returns an error
// only when it cannot start: a bad target or a local port in use.
func (f *Forward) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-f.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	if err := f.listen(); err != nil {
		f.setState(Failed, "", err.Error())
		return err
	}
	defer f.shutdown()
	rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
	r, err := resolveTarget(rctx, f.kube, f.spec.Namespace, f.target)
	rcancel()
	if err != nil {
		f.setState(Failed, "", err.Error())
		return err
	}
	f.mu.Lock()
	f.resolved = r
	f.mu.Unlock()
	f.setState(Listening, "", "waiting for a Ready pod of "+f.target.String())
	close(f.ready)
	for i, ln := range f.listeners {
		// Counted with the connections, so no Add races the Wait in shutdown.
		f.handlers.Go(func() { f.accept(ctx, ln, f.ports[i]) })
	}
	return f.follow(ctx, r)
}

// listen binds every port, or none: a port in use is an error naming it, and what holds it.
func (f *Forward) listen() error {
	var bound []Port
	for _, p := range f.ports {
		ln, err := net.Listen("tcp", net.JoinHostPort(f.spec.Address, strconv.Itoa(p.Local)))
		if err != nil {
			for _, l := range f.listeners {
				l.Close()
			}
			f.listeners = nil
			if errors.Is(err, syscall.EADDRINUSE) {
				return fmt.Errorf("local port %d on %s is already in use%s: choose another local port (LOCAL:REMOTE) or stop it", p.Local, f.spec.Address, holderOf(p.Local))
			}
			return fmt.Errorf("listen on %s:%d: %w", f.spec.Address, p.Local, err)
		}
		f.listeners = append(f.listeners, ln)
		bound = append(bound, Port{Local: ln.Addr().(*net.TCPAddr).Port, Remote: p.Remote})
	}
	f.mu.Lock() // Status may be read while Run starts
	f.bound = bound
	f.mu.Unlock()
	return nil
}

func (f *Forward) shutdown() {
	for _, ln := range f.listeners {
		ln.Close()
	}
	f.mu.Lock()
	conns := make([]*podConn, 0, len(f.conns))
	for _, pc := range f.conns {
		conns = append(conns, pc)
	}
	f.current = nil
	f.mu.Unlock()
	// Closing writes to the network: never under f.mu, which Status needs.
	for _, pc := range conns {
		pc.close()
	}
	// Every local connection ends with its streams reset or its hold cut short; wait for
	// them (boundedly: a stop must not hang on one) so none outlives the forward.
	done := make(chan struct{})
	go func() { f.handlers.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Second):
	}
	f.setState(Stopped, "", "stopped")
}

// follow watches the target's pods and keeps an upgraded connection to the chosen one. Dials
// run in the background, so a slow one holds up nothing else; a failed one is retried with
// jittered backoff (50 ms doubling to 5 s, reset after a success). Watch events wake it at
// once; so do the loss of the connection and the end of a dial.
func (f *Forward) follow(ctx context.Context, r *resolved) error {
	opts := []informers.SharedInformerOption{informers.WithNamespace(f.spec.Namespace)}
	if r.podName != "" {
		opts = append(opts, informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.FieldSelector = "metadata.name=" + r.podName }))
	} else {
		opts = append(opts, informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = r.selector.String() }))
	}
	factory := informers.NewSharedInformerFactoryWithOptions(f.kube, 0, opts...)
	inf := factory.Core().V1().Pods().Informer()
	wake := make(chan struct{}, 1)
	poke := func() {
		select {
		case wake <- struct{}{}:
		default:
		}
	}
	_, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(any) { poke() }, UpdateFunc: func(any, any) { poke() }, DeleteFunc: func(any) { poke() },
	})
	if err != nil {
		return err
	}
	// follow returns only once ctx has ended, so every dial still running ends soon, closing
	// what it got; none outlives follow.
	var dialers sync.WaitGroup
	defer dialers.Wait()
	stop := make(chan struct{})
	defer func() { close(stop); factory.Shutdown() }()
	factory.Start(stop)

	dials := make(chan dialed)
	dial := func(pod *corev1.Pod, ports map[string]int, ahead bool) {
		f.dialing[string(pod.UID)] = true
		d := dialed{uid: string(pod.UID), pod: pod.Name, version: pod.ResourceVersion, ports: ports, ahead: ahead}
		dialers.Go(func() {
			d.conn, d.raw, d.err = f.opts.Dial(ctx, pod.Namespace, pod.Name)
			select {
			case dials <- d:
			case <-ctx.Done():
				if d.err == nil {
					newPodConn(d.pod, d.uid, d.conn, d.raw, d.ports).close()
				}
			}
		})
	}
	backoff := 50 * time.Millisecond
	var retry <-chan time.Time
	for {
		// After a failed dial the next waits for the backoff, or a watch event.
		f.reconcile(inf, r, dial, retry != nil)
		var lost <-chan struct{}
		f.mu.Lock()
		if f.current != nil {
			lost = f.current.done
		}
		f.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil
		case <-wake:
			retry = nil
		case <-retry:
			retry = nil
		case <-lost:
		case d := <-dials:
			delete(f.dialing, d.uid)
			switch {
			case d.err != nil && d.ahead:
				// The pod may not take connections before it runs; try again when it changes.
				f.triedAhead[d.uid] = d.version
			case d.err != nil:
				f.setState(Reconnecting, d.pod, "cannot reach pod "+d.pod+": "+d.err.Error())
				retry = f.opts.After(backoff/2 + rand.N(backoff/2+1))
				backoff = min(backoff*2, 5*time.Second)
			default:
				if !d.ahead {
					backoff, retry = 50*time.Millisecond, nil
				}
				pc := newPodConn(d.pod, d.uid, d.conn, d.raw, d.ports)
				f.mu.Lock()
				f.conns[pc.uid] = pc
				f.mu.Unlock()
			}
		}
	}
}

// dialed is the end of one dial to a pod, as follow receives it.
type dialed struct {
	uid, pod string
	version  string         // the pod's resourceVersion when the dial started
	ports    map[string]int // remote spec → the pod's port
	ahead    bool           // dialled before the pod was Ready (see dialAhead)
	conn     httpstream.Connection
	raw      io.Closer
	err      error
}

// reconcile makes the chosen pod current (dialling it when there is no connection to it yet),
// dials ahead to pods about to be Ready, and closes the connections of pods that are gone.
// It runs on follow's goroutine; dial starts a background dial whose end follow receives;
// while backingOff, the chosen pod is not dialled.
func (f *Forward) reconcile(inf cache.SharedIndexInformer, r *resolved, dial func(*corev1.Pod, map[string]int, bool), backingOff bool) {
	var pods []*corev1.Pod
	for _, o := range inf.GetStore().List() {
		pods = append(pods, o.(*corev1.Pod))
	}
	alive := map[string]bool{}
	for _, p := range pods {
		if p.DeletionTimestamp == nil {
			alive[string(p.UID)] = true
		}
	}
	for uid := range f.triedAhead {
		if !alive[uid] {
			delete(f.triedAhead, uid)
		}
	}
	f.mu.Lock()
	// Connections to deleted pods end now: their in-flight streams must not hang. Only the
	// current one's end is news: the others carried no new connections.
	var gone string
	var closing []*podConn
	for uid, pc := range f.conns {
		if !alive[uid] || pc.broken() {
			if f.current == pc {
				gone = "pod " + pc.pod + " was deleted"
				if alive[uid] {
					gone = "the connection to pod " + pc.pod + " broke"
				}
			}
			closing = append(closing, pc)
			delete(f.conns, uid)
		}
	}
	currentName := ""
	if f.current != nil && gone == "" {
		currentName = f.current.pod
	}
	f.mu.Unlock()
	for _, pc := range closing { // network writes, outside f.mu
		pc.close()
	}
	if gone != "" {
		f.setCurrent(nil)
		f.setState(Reconnecting, "", gone)
	}
	defer f.dialAhead(pods, r, dial)

	pod := choose(pods, currentName)
	if pod == nil {
		f.setCurrent(nil)
		// Listening until the first pod is connected: there is nothing to reconnect to.
		waiting := Reconnecting
		f.mu.Lock()
		if f.state == Listening {
			waiting = Listening
		}
		f.mu.Unlock()
		if len(pods) == 0 {
			f.setState(waiting, "", "no pod of "+f.target.String()+" exists")
		} else {
			f.setState(waiting, "", "no pod of "+f.target.String()+" is Ready")
		}
		return // watch events will wake us
	}
	f.mu.Lock()
	pc := f.conns[string(pod.UID)]
	f.mu.Unlock()
	if pc == nil {
		if !f.dialing[string(pod.UID)] && !backingOff {
			ports, err := f.podPorts(r, pod)
			if err != nil {
				f.setState(Failed, pod.Name, err.Error())
				return
			}
			dial(pod, ports, false)
		}
		return // the dial's end (or the backoff's) wakes us; until then connections go where they went
	}
	f.setCurrent(pc)
	f.mu.Lock()
	refused := f.refused
	f.mu.Unlock()
	if !refused { // a refusing port stays reported until a connection gets through
		f.setState(Connected, pc.pod, "connected to pod "+pc.pod)
	}
}

// podPorts resolves every port of the forward on pod.
func (f *Forward) podPorts(r *resolved, pod *corev1.Pod) (map[string]int, error) {
	ports := map[string]int{}
	for _, p := range f.ports {
		n, err := podPort(r, pod, p.Remote)
		if err != nil {
			return nil, err
		}
		ports[p.Remote] = n
	}
	return ports, nil
}

// maxAhead bounds the pods dialled before they are Ready (a rollout of many replicas makes
// many at once; the newest are dialled).
const maxAhead = 2

// dialAhead connects to pods that are scheduled but not Ready yet, so that the moment one
// becomes Ready (and so the pod new connections go to) it needs no dial: a replacement or a
// rollout's new pod takes connections as soon as the watch says it is Ready. A pod that
// refuses the dial (on a real cluster, one whose sandbox does not exist yet) is tried again
// when it changes.
func (f *Forward) dialAhead(pods []*corev1.Pod, r *resolved, dial func(*corev1.Pod, map[string]int, bool)) {
	var candidates []*corev1.Pod
	n := 0
	for _, p := range pods {
		uid := string(p.UID)
		if p.DeletionTimestamp != nil || usable(p) || p.Spec.NodeName == "" ||
			(p.Status.Phase != corev1.PodPending && p.Status.Phase != corev1.PodRunning) {
			continue
		}
		f.mu.Lock()
		connected := f.conns[uid] != nil
		f.mu.Unlock()
		switch {
		case connected || f.dialing[uid]:
			n++
		case f.triedAhead[uid] != p.ResourceVersion:
			candidates = append(candidates, p)
		}
	}
	sort.Slice(candidates, func(i, j int) bool {
		return candidates[j].CreationTimestamp.Before(&candidates[i].CreationTimestamp)
	})
	for _, p := range candidates {
		if n >= maxAhead {
			return
		}
		ports, err := f.podPorts(r, p)
		if err != nil {
			continue // said when the pod is chosen
		}
		dial(p, ports, true)
		n++
	}
}

func (f *Forward) setCurrent(pc *podConn) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.current == pc {
		return
	}
	f.current = pc
	if pc != nil && pc.chosen.IsZero() {
		pc.chosen = f.opts.Now()
	}
	for i := range f.bound {
		f.bound[i].Resolved = 0
		if pc != nil {
			f.bound[i].Resolved = pc.ports[f.bound[i].Remote]
		}
	}
	close(f.changed)
	f.changed = make(chan struct{})
}

// movesOn reports whether new connections are leaving pc: they already go elsewhere, or do
// within a short wait (the watch reporting the pod's deletion right after the kubelet dropped
// its port).
func (f *Forward) movesOn(pc *podConn, changed <-chan struct{}, wait time.Duration) bool {
	f.mu.Lock()
	moved := f.current != pc
	f.mu.Unlock()
	if moved {
		return true
	}
	select {
	case <-changed:
		return true
	case <-time.After(wait):
		return false
	}
}

// accept takes local connections for one port until the listener closes.
func (f *Forward) accept(ctx context.Context, ln net.Listener, p portSpec) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		f.total.Add(1)
		f.openConns.Add(1)
		f.handlers.Go(func() {
			defer f.openConns.Add(-1)
			defer c.Close()
			f.serve(ctx, c, p)
		})
	}
}

// startGrace is how long a pod that has just become Ready may refuse connections before its
// refusals count: without a readiness probe a pod is Ready once its containers start, often
// before its program listens. A connection refused in that time that had no answer yet is
// tried again every graceRetry (within its hold time), on that pod or on the one replacing it.
const (
	startGrace = 3 * time.Second
	graceRetry = 50 * time.Millisecond
)

// serve sends one local connection to the current pod, holding it while there is none (up to
// the hold time), and moving it to a fresh connection when the pod's broke before any byte
// moved.
func (f *Forward) serve(ctx context.Context, conn net.Conn, p portSpec) {
	deadline := time.NewTimer(f.spec.Hold)
	defer deadline.Stop()
	c := newReplayConn(conn)
	replay := false // the last attempt ended before the pod answered: this one replays it
	for attempt := 0; ; attempt++ {
		if attempt > 0 && !c.rewind() {
			f.cut.Add(1)
			return
		}
		if replay {
			f.replayed.Add(1)
		}
		replay = false
		f.mu.Lock()
		pc, changed := f.current, f.changed
		f.mu.Unlock()
		if pc == nil || pc.broken() {
			select {
			case <-changed:
				continue
			case <-deadline.C:
				f.failures.Add(1)
				return
			case <-ctx.Done():
				return
			}
		}
		answered := func() {
			c.answered()
			f.mu.Lock()
			recovered := f.refused
			f.mu.Unlock()
			if recovered {
				f.setState(Connected, pc.pod, "pod port answers again on pod "+pc.pod)
			}
		}
		moved, err := pc.serve(c, pc.ports[p.Remote], counters{in: &f.bytesIn, out: &f.bytesOut, answered: answered})
		var refused *refusedError
		switch {
		case err == nil && !moved && attempt < 3 && f.movesOn(pc, changed, 500*time.Millisecond):
			// The pod closed the connection without a word as it went away: the next pod
			// gets it instead. The watch may report the deletion well after the pod's port
			// went (117 ms in one churn run under load, which failed a request when this
			// wait was 100 ms); a pod that stays and closes without a word costs its client
			// this wait once.
			replay = true
			continue
		case err == nil:
			answered()
			return
		case errors.As(err, &refused) && !moved && f.opts.Now().Sub(pc.chosen) < startGrace:
			// Refused by a pod that has only just become Ready: its program may not listen
			// yet. Try again shortly, on it or on the pod that replaces it.
			select {
			case <-changed:
			case <-f.opts.After(graceRetry):
			case <-deadline.C:
				f.failures.Add(1)
				f.setRefused(pc.pod, refused.Error())
				return
			case <-ctx.Done():
				return
			}
			f.retried.Add(1)
			continue
		case errors.As(err, &refused) && !moved && attempt < 3 && f.movesOn(pc, changed, 500*time.Millisecond):
			// The pod refused, but it is being replaced (its deletion not seen yet a moment
			// ago): the connection goes to the next pod instead of failing.
			replay = true
			continue
		case errors.As(err, &refused) && moved && f.movesOn(pc, changed, 500*time.Millisecond):
			// Reset by a pod that is going, after it had answered: in flight when its pod
			// went, it ends as it would on the pod itself; the port did not refuse.
			f.cut.Add(1)
			return
		case errors.As(err, &refused):
			f.failures.Add(1)
			f.setRefused(pc.pod, refused.Error())
			return
		case errors.Is(err, errBroken) && !moved && attempt < 3:
			pc.close() // follow notices and reconnects; this connection goes to the next pod
			replay = true
			continue
		case errors.Is(err, errBroken):
			f.cut.Add(1) // in flight when its pod went: it ends, as it would on the pod itself
			return
		default:
			f.failures.Add(1)
			return
		}
	}
}
