package kube

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"
)

// Inventory is one roro instance as a cluster has it: its ApplySet parent and the health of
// every object the set holds.
type Inventory struct {
	Parent  *Parent
	Objects []ObjectHealth
}

// ObjectHealth is one object of an inventory and its health.
type ObjectHealth struct {
	Object ObjectRef
	Health Health
}

// inventoryOf pairs a parent with its live members, objects sorted by kind, namespace, name.
func inventoryOf(p *Parent, members []*unstructured.Unstructured) Inventory {
	inv := Inventory{Parent: p, Objects: make([]ObjectHealth, 0, len(members))}
	for _, m := range members {
		inv.Objects = append(inv.Objects, ObjectHealth{Object: RefOf(m), Health: HealthOf(m)})
	}
	sort.Slice(inv.Objects, func(i, j int) bool {
		a, b := inv.Objects[i].Object, inv.Objects[j].Object
		return a.Kind+"/"+a.Namespace+"/"+a.Name < b.Kind+"/"+b.Namespace+"/"+b.Name
	})
	return inv
}

// Inventories lists every roro instance in the cluster with its objects' health, once.
func (c *Cluster) Inventories(ctx context.Context) ([]Inventory, error) {
	parents, err := c.ListParents(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Inventory, 0, len(parents))
	var errs []error
	for _, p := range parents {
		members, err := c.Members(ctx, p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, inventoryOf(p, members))
	}
	return out, errors.Join(errs...)
}

// Watcher follows roro's instances in one cluster from watches (no polling): one on roro's
// ApplySet parents, and one per kind those parents list, on the objects that carry an
// ApplySet label. After each change it calls OnChange with every inventory.
type Watcher struct {
	cluster *Cluster
	// OnChange receives the inventories after every change; it is called from Run's
	// goroutine.
	OnChange func([]Inventory)

	watching map[schema.GroupKind]cache.SharedIndexInformer
	parents  cache.SharedIndexInformer
	members  dynamicinformer.DynamicSharedInformerFactory
}

// NewWatcher returns a Watcher of c; Run starts it.
func NewWatcher(c *Cluster) *Watcher {
	return &Watcher{cluster: c, watching: map[schema.GroupKind]cache.SharedIndexInformer{}}
}

// Run watches until ctx ends, and returns then, whether or not the caches ever synced (an
// API server that does not answer never blocks it).
func (w *Watcher) Run(ctx context.Context) error {
	factory := informers.NewSharedInformerFactoryWithOptions(w.cluster.Kube, 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.LabelSelector = LabelManagedBy + "=" + ManagedByValue + "," + LabelApplySetID
		}))
	w.parents = factory.Core().V1().Secrets().Informer()
	w.members = dynamicinformer.NewFilteredDynamicSharedInformerFactory(w.cluster.Dynamic, 0, "",
		func(o *metav1.ListOptions) { o.LabelSelector = LabelApplySetPartOf })
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
		return fmt.Errorf("watch roro's inventories: %w", ctx.Err())
	}
	for {
		if err := w.follow(ctx, handler); err != nil {
			return err
		}
		if ctx.Err() != nil {
			return nil
		}
		if w.OnChange != nil {
			w.OnChange(w.inventories())
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
		for _, gk := range parentOf(obj.(*corev1.Secret)).GroupKinds {
			if _, ok := w.watching[gk]; ok {
				continue
			}
			m, err := w.cluster.mapping(ctx, gk)
			if err != nil {
				continue // a kind the cluster does not serve (any more), or no answer: the next change tries again
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
		// Bounded: a kind roro may not list (RBAC) must not freeze every other instance.
		sctx, cancel := context.WithTimeout(ctx, memberSyncTimeout)
		defer cancel()
		for _, inf := range fresh {
			cache.WaitForCacheSync(sctx.Done(), inf.HasSynced)
		}
	}
	return nil
}

// memberSyncTimeout bounds the wait for a newly watched kind's first list.
const memberSyncTimeout = 10 * time.Second

// inventories builds the inventories from the informers' caches.
func (w *Watcher) inventories() []Inventory {
	byID := map[string][]*unstructured.Unstructured{}
	for _, inf := range w.watching {
		for _, obj := range inf.GetStore().List() {
			if u, ok := obj.(*unstructured.Unstructured); ok {
				id := u.GetLabels()[LabelApplySetPartOf]
				byID[id] = append(byID[id], u)
			}
		}
	}
	var out []Inventory
	for _, obj := range w.parents.GetStore().List() {
		p := parentOf(obj.(*corev1.Secret))
		out = append(out, inventoryOf(p, byID[p.Set.ID]))
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i].Parent.Set, out[j].Parent.Set
		return a.App+"/"+a.Instance < b.App+"/"+b.Instance
	})
	return out
}
