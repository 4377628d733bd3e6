package runtime

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"

	"github.com/rorokube/roro/core/kube"
)

// Watcher follows roro's instances in one cluster from watches (no polling): one on roro's
// ApplySet parents, and one per kind those parents list, on the objects that carry an
// ApplySet label. After each change it calls OnChange with every instance and its objects'
// health.
type Watcher struct {
	cluster *kube.Cluster
	now     func() time.Time
	// OnChange receives the instances after every change; it is called from Run's goroutine.
	OnChange func([]InstanceView)

	watching map[schema.GroupKind]cache.SharedIndexInformer
	parents  cache.SharedIndexInformer
	members  dynamicinformer.DynamicSharedInformerFactory
}

// NewWatcher returns a Watcher of cluster; Run starts it.
func NewWatcher(cluster *kube.Cluster, now func() time.Time) *Watcher {
	if now == nil {
		now = time.Now
	}
	return &Watcher{cluster: cluster, now: now, watching: map[schema.GroupKind]cache.SharedIndexInformer{}}
}

// Run watches until ctx ends, and returns then, whether or not the caches ever synced (an
// API server that does not answer never blocks it).
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
	defer func() {
		// ctx has ended: the informers stop, then Shutdown waits for their goroutines.
		factory.Shutdown()
		w.members.Shutdown()
	}()
	factory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), w.parents.HasSynced) {
		return ctx.Err()
	}
	for {
		if err := w.follow(ctx, handler); err != nil {
			return err
		}
		if ctx.Err() != nil {
			return nil
		}
		if w.OnChange != nil {
			w.OnChange(w.instances())
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		}
	}
}

// follow starts an informer for every kind a parent lists that is not watched yet, and waits
// for it to sync, so an instance never shows without its objects.
func (w *Watcher) follow(ctx context.Context, handler cache.ResourceEventHandler) error {
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
				return fmt.Errorf("watch %s: %w", gk, err)
			}
			w.watching[gk] = inf
			fresh = append(fresh, inf)
		}
	}
	if len(fresh) > 0 {
		w.members.Start(ctx.Done())
		for _, inf := range fresh {
			cache.WaitForCacheSync(ctx.Done(), inf.HasSynced)
		}
	}
	return nil
}

// instances builds the instance views from the informers' caches.
func (w *Watcher) instances() []InstanceView {
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
	var out []InstanceView
	for _, obj := range w.parents.GetStore().List() {
		s := obj.(*corev1.Secret)
		iv := InstanceView{App: s.Labels[kube.LabelApp], Instance: s.Labels[kube.LabelInstance],
			Environment: s.Labels[kube.LabelEnvironment], Namespace: s.Namespace, Context: w.cluster.Context,
			Workspace: s.Annotations[kube.AnnotationWorkspace], Running: true, Health: Healthy}
		for _, u := range byID[s.Labels[kube.LabelApplySetID]] {
			h := kube.HealthOf(u)
			iv.Objects = append(iv.Objects, ObjectView{Ref: kube.RefOf(u), Health: h})
			switch {
			case h.Status == status.FailedStatus:
				iv.Health = Failed
			case h.Status != status.CurrentStatus && iv.Health != Failed:
				iv.Health = Progressing
			}
		}
		sort.Slice(iv.Objects, func(i, j int) bool {
			a, b := iv.Objects[i].Ref, iv.Objects[j].Ref
			return a.Kind+"/"+a.Namespace+"/"+a.Name < b.Kind+"/"+b.Namespace+"/"+b.Name
		})
		out = append(out, iv)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		return a.App+"/"+a.Instance < b.App+"/"+b.Instance
	})
	return out
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
