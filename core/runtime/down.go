package runtime

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/rorokube/roro/core/kube"
	"github.com/rorokube/roro/core/render"
	"github.com/rorokube/roro/core/workspace"
)

// DownOptions say what `down` removes.
type DownOptions struct {
	Selection
	// Volumes also deletes PersistentVolumeClaims the instance owns or its namespace holds.
	Volumes bool
	// CRDs also deletes CustomResourceDefinitions the instance applied.
	CRDs bool
	// Progress receives every step.
	Progress func(Event)
}

// DownResult says what down did for one app.
type DownResult struct {
	App, Instance string
	// Running is false when the instance was not found in the cluster (nothing to do).
	Running bool
	Deleted int
	Kept    []string
}

// Down removes the selected instances, dependents first: what each owns is deleted in reverse
// order (workloads and the rest, then CRDs and namespaces), never a PersistentVolumeClaim, a CRD
// or a namespace roro did not create unless asked. The instance is found from the cluster's
// labels, so down works when the local state is lost.
func (r *Runtime) Down(ctx context.Context, opts DownOptions) ([]DownResult, error) {
	apps, err := r.ordered(opts.Apps, false)
	if err != nil {
		return nil, err
	}
	slices.Reverse(apps)
	var results []DownResult
	var errs []error
	for _, app := range apps {
		res, err := r.downApp(ctx, app, opts)
		if err != nil {
			errs = append(errs, fmt.Errorf("app %s: %w", app.Name, err))
		}
		results = append(results, res)
	}
	return results, errors.Join(errs...)
}

func (r *Runtime) downApp(ctx context.Context, app *workspace.App, opts DownOptions) (DownResult, error) {
	inst, env, err := r.environmentOf(app, opts.Selection)
	out := DownResult{App: app.Name, Instance: inst.Name}
	if err != nil {
		return out, err
	}
	r.StopForwards(app.Name, inst.Name) // forwards go first: their pods are about to
	c, err := r.Connect(ctx, env)
	if err != nil {
		return out, err
	}
	parent, err := findParent(ctx, c, app.Name, inst)
	if err != nil || parent == nil {
		return out, err
	}
	out.Running = true
	emit(opts.Progress, Event{App: app.Name, Instance: inst.Name, Step: "down", Message: "namespace " + parent.Set.ParentNamespace})
	members, err := c.Members(ctx, parent)
	if err != nil {
		return out, err
	}
	// Workloads and the rest first, then what they live in.
	slices.SortStableFunc(members, func(a, b *unstructured.Unstructured) int { return rank(a) - rank(b) })
	var errs []error
	var namespaces []*unstructured.Unstructured
	for _, o := range members {
		switch {
		case o.GetKind() == "PersistentVolumeClaim" && !opts.Volumes,
			o.GetKind() == "CustomResourceDefinition" && !opts.CRDs,
			o.GetKind() == "Namespace" && o.GetLabels()[kube.LabelNamespaceCreatedBy] != kube.NamespaceCreatedByValue:
			out.Kept = append(out.Kept, kube.Ref(o))
			emit(opts.Progress, Event{App: app.Name, Instance: inst.Name, Step: "kept", Message: kube.Ref(o)})
			continue
		case o.GetKind() == "Namespace":
			namespaces = append(namespaces, o)
			continue
		}
		if err := c.Delete(ctx, o); err != nil {
			errs = append(errs, err)
			continue
		}
		out.Deleted++
		emit(opts.Progress, Event{App: app.Name, Instance: inst.Name, Step: "delete", Message: kube.Ref(o)})
	}
	if len(errs) > 0 {
		return out, errors.Join(errs...)
	}
	secret := &unstructured.Unstructured{}
	secret.SetAPIVersion("v1")
	secret.SetKind("Secret")
	secret.SetName(parent.Set.ParentName)
	secret.SetNamespace(parent.Set.ParentNamespace)
	if err := c.Delete(ctx, secret); err != nil {
		return out, err
	}
	// The instance's own namespace goes when roro created it, unless it still holds volumes.
	ns := &unstructured.Unstructured{}
	ns.SetAPIVersion("v1")
	ns.SetKind("Namespace")
	ns.SetName(parent.Set.ParentNamespace)
	if live, err := c.Get(ctx, ns); err == nil && live != nil &&
		live.GetLabels()[kube.LabelNamespaceCreatedBy] == kube.NamespaceCreatedByValue && !slices.ContainsFunc(namespaces, func(o *unstructured.Unstructured) bool { return o.GetName() == ns.GetName() }) {
		namespaces = append(namespaces, live)
	}
	for _, n := range namespaces {
		if shared, err := r.namespaceShared(ctx, c, n.GetName(), parent.Set.ID); err != nil || shared {
			if err == nil {
				out.Kept = append(out.Kept, kube.Ref(n)+" (other roro instances use it)")
			}
			continue
		}
		pvcs, err := c.Kube.CoreV1().PersistentVolumeClaims(n.GetName()).List(ctx, metav1.ListOptions{})
		if err == nil && len(pvcs.Items) > 0 && !opts.Volumes {
			var names []string
			for _, p := range pvcs.Items {
				names = append(names, p.Name)
			}
			msg := fmt.Sprintf("%s (it holds PersistentVolumeClaims %s; --volumes deletes them)", kube.Ref(n), strings.Join(names, ", "))
			out.Kept = append(out.Kept, msg)
			emit(opts.Progress, Event{App: app.Name, Instance: inst.Name, Step: "kept", Message: msg})
			continue
		}
		if err := c.Delete(ctx, n); err != nil {
			return out, err
		}
		out.Deleted++
		emit(opts.Progress, Event{App: app.Name, Instance: inst.Name, Step: "delete", Message: kube.Ref(n)})
	}
	if r.Store != nil {
		_ = r.Store.Update(func(st *State) { st.Forget(app.Name, inst.Name) })
	}
	return out, nil
}

// namespaceShared reports whether another roro ApplySet has its parent in ns.
func (r *Runtime) namespaceShared(ctx context.Context, c *kube.Cluster, ns, id string) (bool, error) {
	list, err := c.Kube.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{LabelSelector: kube.LabelApplySetID})
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	for _, s := range list.Items {
		if s.Labels[kube.LabelApplySetID] != id {
			return true, nil
		}
	}
	return false, nil
}

// findParent finds an instance's ApplySet parent: where this workspace would put it, or, when
// the workspace has changed since, by the app and instance labels anywhere in the cluster.
func findParent(ctx context.Context, c *kube.Cluster, app string, inst render.InstanceInfo) (*kube.Parent, error) {
	set := render.NewApplySet(app, inst)
	p, err := c.ReadParent(ctx, kube.ApplySet{ParentName: set.ParentName, ParentNamespace: set.ParentNamespace, ID: set.ID})
	if err != nil || p != nil {
		return p, err
	}
	all, err := c.ListParents(ctx)
	if err != nil {
		return nil, err
	}
	for _, p := range all {
		if p.Set.App == app && p.Set.Instance == inst.Name {
			return p, nil
		}
	}
	return nil, nil
}

// rank orders deletion: workloads and everything else first, then namespaces and CRDs.
func rank(o *unstructured.Unstructured) int {
	switch o.GetKind() {
	case "Namespace":
		return 2
	case "CustomResourceDefinition":
		return 1
	}
	return 0
}
