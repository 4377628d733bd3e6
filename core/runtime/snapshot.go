package runtime

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rorokube/roro/core/kube"
	"github.com/rorokube/roro/forward"
)

// Snapshot is one immutable view of what roro runs in a cluster: every instance, its objects
// and their health. Readers must not modify it; a newer one replaces it whole.
type Snapshot struct {
	// Version grows by one with every snapshot a Watcher publishes.
	Version   uint64
	At        time.Time
	Instances []InstanceView
	// Forwards are the statuses of the port forwards this process runs, when the Watcher was
	// given a source of them.
	Forwards []forward.Status
}

// InstanceView is one instance in a Snapshot.
type InstanceView struct {
	App, Instance, Environment, Namespace, Workspace string
	// Health is Healthy, Progressing or Failed, from its objects.
	Health  string
	Objects []ObjectView
}

// ObjectView is one object of an instance, with its health.
type ObjectView struct {
	Kind, Namespace, Name string
	Health                kube.Health
}

// Instance returns the view of app's instance, or nil.
func (s *Snapshot) Instance(app, instance string) *InstanceView {
	for i := range s.Instances {
		if s.Instances[i].App == app && s.Instances[i].Instance == instance {
			return &s.Instances[i]
		}
	}
	return nil
}

// Watcher keeps a Snapshot of one cluster current from watches (no polling): one on roro's
// ApplySet parents, and one per kind those parents list, on the objects that carry an
// ApplySet label. Each change publishes a new Snapshot and signals subscribers.
type Watcher struct {
	cluster *kube.Cluster
	now     func() time.Time
	// Forwards, when set, supplies the forward statuses each snapshot carries (a Runtime's
	// ForwardStatuses); Poke republishes after they change.
	Forwards func() []forward.Status
	poke     chan struct{}

	current atomic.Pointer[Snapshot]
	ready   chan struct{}

	mu       sync.Mutex
	subs     map[chan struct{}]struct{}
	watching map[schema.GroupKind]cache.SharedIndexInformer
	parents  cache.SharedIndexInformer
	members  dynamicinformer.DynamicSharedInformerFactory
	version  uint64
	stop     chan struct{}
	stopOnce sync.Once
}

// NewWatcher returns a Watcher of cluster; Run starts it.
func NewWatcher(cluster *kube.Cluster, now func() time.Time) *Watcher {
	if now == nil {
		now = time.Now
	}
	w := &Watcher{cluster: cluster, now: now, ready: make(chan struct{}), poke: make(chan struct{}, 1), subs: map[chan struct{}]struct{}{},
		watching: map[schema.GroupKind]cache.SharedIndexInformer{}, stop: make(chan struct{})}
	w.current.Store(&Snapshot{At: now()})
	return w
}

// Ready is closed once the first complete Snapshot is published.
func (w *Watcher) Ready() <-chan struct{} { return w.ready }

// Snapshot returns the latest Snapshot; never nil.
func (w *Watcher) Snapshot() *Snapshot { return w.current.Load() }

// Subscribe returns a channel that receives a signal (never blocking the Watcher) after each
// new Snapshot, and a function that ends the subscription.
func (w *Watcher) Subscribe() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	w.mu.Lock()
	w.subs[ch] = struct{}{}
	w.mu.Unlock()
	return ch, func() {
		w.mu.Lock()
		delete(w.subs, ch)
		w.mu.Unlock()
	}
}

// Poke asks for a new snapshot, for changes the Watcher does not watch itself (forwards).
func (w *Watcher) Poke() {
	select {
	case w.poke <- struct{}{}:
	default:
	}
}

// Stop ends Run; calling it again does nothing.
func (w *Watcher) Stop() { w.stopOnce.Do(func() { close(w.stop) }) }

// Run watches until ctx ends or Stop is called.
func (w *Watcher) Run(ctx context.Context) error {
	factory := informers.NewSharedInformerFactoryWithOptions(w.cluster.Kube, 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.LabelSelector = kube.LabelManagedBy + "=" + kube.ManagedByValue + "," + kube.LabelApplySetID
		}))
	w.parents = factory.Core().V1().Secrets().Informer()
	w.members = dynamicinformer.NewFilteredDynamicSharedInformerFactory(w.cluster.Dynamic, 0, "",
		func(o *metav1.ListOptions) { o.LabelSelector = kube.LabelApplySetPartOf })
	changed := make(chan struct{}, 1)
	poke := func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	handler := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { poke() },
		UpdateFunc: func(any, any) { poke() },
		DeleteFunc: func(any) { poke() },
	}
	if _, err := w.parents.AddEventHandler(handler); err != nil {
		return err
	}
	stop := make(chan struct{})
	defer func() {
		close(stop) // first stop the informers, then wait for them
		factory.Shutdown()
		w.members.Shutdown()
	}()
	factory.Start(stop)
	if !cache.WaitForCacheSync(stop, w.parents.HasSynced) {
		return fmt.Errorf("watch roro's inventories: cache never synced")
	}
	first := true
	for {
		if err := w.follow(stop, handler); err != nil {
			return err
		}
		w.publish()
		if first {
			close(w.ready)
			first = false
		}
		select {
		case <-ctx.Done():
			return nil
		case <-w.stop:
			return nil
		case <-changed:
		case <-w.poke:
		}
	}
}

// follow starts an informer for every kind a parent lists that is not watched yet, and waits
// for it to sync, so a Snapshot never shows an instance without its objects.
func (w *Watcher) follow(stop chan struct{}, handler cache.ResourceEventHandler) error {
	var fresh []cache.SharedIndexInformer
	for _, obj := range w.parents.GetStore().List() {
		s := obj.(*corev1.Secret)
		for _, gk := range splitGroupKinds(s.Annotations[kube.AnnotationGroupKinds]) {
			if _, ok := w.watching[gk]; ok {
				continue
			}
			m, err := w.cluster.Mapper.RESTMapping(gk)
			if err != nil {
				w.cluster.Mapper.Reset()
				if m, err = w.cluster.Mapper.RESTMapping(gk); err != nil {
					continue // a kind the cluster does not serve (any more)
				}
			}
			inf := w.members.ForResource(m.Resource).Informer()
			if _, err := inf.AddEventHandler(handler); err != nil {
				return err
			}
			w.watching[gk] = inf
			fresh = append(fresh, inf)
		}
	}
	if len(fresh) > 0 {
		w.members.Start(stop)
		for _, inf := range fresh {
			cache.WaitForCacheSync(stop, inf.HasSynced)
		}
	}
	return nil
}

// publish builds a Snapshot from the informers' caches, stores it and signals subscribers.
func (w *Watcher) publish() {
	byID := map[string][]*unstructured.Unstructured{}
	for _, inf := range w.watching {
		for _, obj := range inf.GetStore().List() {
			u, ok := obj.(*unstructured.Unstructured)
			if !ok {
				continue
			}
			id := u.GetLabels()[kube.LabelApplySetPartOf]
			byID[id] = append(byID[id], u)
		}
	}
	w.version++
	snap := &Snapshot{Version: w.version, At: w.now()}
	for _, obj := range w.parents.GetStore().List() {
		s := obj.(*corev1.Secret)
		iv := InstanceView{App: s.Labels[kube.LabelApp], Instance: s.Labels[kube.LabelInstance],
			Environment: s.Labels[kube.LabelEnvironment], Namespace: s.Namespace,
			Workspace: s.Annotations[kube.AnnotationWorkspace], Health: Healthy}
		for _, u := range byID[s.Labels[kube.LabelApplySetID]] {
			h := kube.HealthOf(u)
			iv.Objects = append(iv.Objects, ObjectView{Kind: u.GetKind(), Namespace: u.GetNamespace(), Name: u.GetName(), Health: h})
			switch {
			case h.Status == status.FailedStatus:
				iv.Health = Failed
			case h.Status != status.CurrentStatus && iv.Health != Failed:
				iv.Health = Progressing
			}
		}
		sort.Slice(iv.Objects, func(i, j int) bool {
			a, b := iv.Objects[i], iv.Objects[j]
			return a.Kind+"/"+a.Namespace+"/"+a.Name < b.Kind+"/"+b.Namespace+"/"+b.Name
		})
		snap.Instances = append(snap.Instances, iv)
	}
	sort.Slice(snap.Instances, func(i, j int) bool {
		a, b := snap.Instances[i], snap.Instances[j]
		return a.App+"/"+a.Instance < b.App+"/"+b.Instance
	})
	if w.Forwards != nil {
		snap.Forwards = w.Forwards()
	}
	w.current.Store(snap)
	w.mu.Lock()
	for ch := range w.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	w.mu.Unlock()
}

func splitGroupKinds(s string) []schema.GroupKind {
	var out []schema.GroupKind
	for _, x := range strings.Split(s, ",") {
		if x = strings.TrimSpace(x); x != "" {
			out = append(out, schema.ParseGroupKind(x))
		}
	}
	return slices.Compact(out)
}
