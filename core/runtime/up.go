package runtime

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"

	"github.com/rorokube/roro/core/kube"
	"github.com/rorokube/roro/core/render"
	"github.com/rorokube/roro/core/workspace"
)

// UpOptions say what `up` runs and how.
type UpOptions struct {
	Selection
	// Values are the command line's values, the highest layer.
	Values map[string]any
	// ForceConflicts takes over fields other field managers own.
	ForceConflicts bool
	// NoWait returns once applied, without waiting for health.
	NoWait bool
	// Timeout bounds the wait for each app's health; default 5 minutes.
	Timeout time.Duration
	// Progress receives every step.
	Progress func(Event)
	// Forward starts each app's forwards in the background once it is healthy; they run as
	// long as this process does, or until down.
	Forward bool
	// Transport for the forwards: forward.TransportAuto when empty.
	Transport string
}

// plan is one app instance on its way up.
type plan struct {
	app     *workspace.App
	res     *render.Result
	set     kube.ApplySet
	cluster *kube.Cluster
	// foundation holds what other objects need to exist first: namespaces and CRDs.
	foundation []*unstructured.Unstructured
	// objects are the rest, applied in parallel once the foundation is in place.
	objects []*unstructured.Unstructured
	// deferred are objects the server cannot dry-run before the foundation exists.
	deferred []*unstructured.Unstructured
}

// isFoundation reports whether other objects may need obj to exist before they can be
// created or even validated.
func isFoundation(obj *unstructured.Unstructured) bool {
	gk := obj.GroupVersionKind().GroupKind()
	return gk == (schema.GroupKind{Kind: "Namespace"}) ||
		gk == (schema.GroupKind{Group: "apiextensions.k8s.io", Kind: "CustomResourceDefinition"})
}

// Up brings the selected apps (and the apps they depend on) up in dependency order:
// render with env resolved from the cluster, a server-side dry run of every object (nothing
// is written if any fails, and every failure is listed), namespaces and CRDs first, then the
// rest in parallel, prune what the instance owned before and no longer renders, and wait for
// health before the apps that depend on it start.
func (r *Runtime) Up(ctx context.Context, opts UpOptions) error {
	apps, err := r.ordered(opts.Apps, true)
	if err != nil {
		return err
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 5 * time.Minute
	}
	plans, err := r.plan(ctx, apps, opts)
	if err != nil {
		return err
	}
	if len(plans) == 0 {
		return nil
	}
	if err := r.dryRun(ctx, plans, opts); err != nil {
		return err
	}
	created, err := r.applyFoundation(ctx, plans, opts)
	if err != nil {
		return err
	}
	if err := r.dryRunDeferred(ctx, plans, opts); err != nil {
		r.rollback(ctx, created, opts.Progress)
		return err
	}
	for _, p := range plans {
		if err := r.applyApp(ctx, p, opts); err != nil {
			return err
		}
		if !opts.NoWait {
			if err := r.waitHealthy(ctx, p, opts); err != nil {
				return err
			}
		}
		if opts.Forward && len(p.app.File.Forwards) > 0 {
			sel := Selection{Environment: p.set.Environment, Instance: p.set.Instance}
			if err := r.StartForwards(ctx, p.app.Name, sel, opts.Transport); err != nil {
				return fmt.Errorf("app %s is up, but its forwards did not start: %w", p.app.Name, err)
			}
			emit(opts.Progress, Event{App: p.app.Name, Instance: p.set.Instance, Step: "forward", Message: fmt.Sprintf("%d forwards started", len(p.app.File.Forwards))})
		}
	}
	return nil
}

// plan renders every selected app with its env resolved against the cluster of its
// environment. Every failure of every app is reported together.
func (r *Runtime) plan(ctx context.Context, apps []*workspace.App, opts UpOptions) ([]*plan, error) {
	clusters := map[string]*kube.Cluster{}
	var plans []*plan
	var errs []error
	for _, app := range apps {
		sel, onlyIfMissing := r.selectionFor(app, opts.Selection)
		inst, env, err := r.environmentOf(app, sel)
		if err != nil {
			errs = append(errs, fmt.Errorf("app %s: %w", app.Name, err))
			continue
		}
		cluster, ok := clusters[env]
		if !ok {
			if cluster, err = r.Connect(ctx, env); err != nil {
				return nil, err
			}
			clusters[env] = cluster
		}
		if onlyIfMissing {
			running, err := findParent(ctx, cluster, app.Name, inst)
			if err != nil {
				errs = append(errs, fmt.Errorf("app %s: %w", app.Name, err))
				continue
			}
			if running != nil {
				emit(opts.Progress, Event{App: app.Name, Instance: inst.Name, Step: "running", Message: "dependency already up in " + running.Set.Environment})
				continue
			}
		}
		where := "namespace " + inst.Namespace
		if env != "" {
			where = "environment " + env + ", " + where
		}
		emit(opts.Progress, Event{App: app.Name, Instance: inst.Name, Step: "render", Message: where})
		values := opts.Values
		if onlyIfMissing {
			values = nil // command-line values are for the apps named, not their dependencies
		}
		res, _, err := r.renderInstance(ctx, cluster, app, inst, env, values)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		p := &plan{app: app, res: res, set: r.applySet(res), cluster: cluster}
		for _, o := range res.Objects {
			if isFoundation(o) {
				p.foundation = append(p.foundation, o)
			} else {
				p.objects = append(p.objects, o)
			}
		}
		if !slices.ContainsFunc(p.foundation, func(o *unstructured.Unstructured) bool {
			return o.GetKind() == "Namespace" && o.GetName() == inst.Namespace
		}) {
			p.foundation = append([]*unstructured.Unstructured{instanceNamespace(res)}, p.foundation...)
		}
		plans = append(plans, p)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("nothing was applied:%s", joinErrs(errs))
	}
	return plans, nil
}

// selectionFor says which instance of app an up acts on. The apps named get the requested
// instance and environment. A dependency of a further instance (up api --instance pr-42) is
// its own default instance, brought up in its default environment only when it is not
// running already, so a second copy of an app never moves what the first one uses.
func (r *Runtime) selectionFor(app *workspace.App, sel Selection) (Selection, bool) {
	if len(sel.Apps) == 0 || slices.Contains(sel.Apps, app.Name) ||
		sel.Instance == "" || sel.Instance == workspace.DefaultInstance {
		return sel, false
	}
	return Selection{}, true
}

// instanceNamespace is the namespace roro creates for an instance when it does not exist.
// It is not an ApplySet member; its created-by label is what lets `down` remove it.
func instanceNamespace(res *render.Result) *unstructured.Unstructured {
	ns := &unstructured.Unstructured{}
	ns.SetAPIVersion("v1")
	ns.SetKind("Namespace")
	ns.SetName(res.Instance.Namespace)
	ns.SetLabels(map[string]string{kube.LabelManagedBy: kube.ManagedByValue})
	return ns
}

// dryRun asks the server to admit every object it can judge now; objects whose namespace or
// kind does not exist yet wait for dryRunDeferred.
func (r *Runtime) dryRun(ctx context.Context, plans []*plan, opts UpOptions) error {
	var errs []error
	existing := map[string]bool{}
	nsExists := func(c *kube.Cluster, ns string) (bool, error) {
		if ns == "" {
			return true, nil
		}
		if v, ok := existing[ns]; ok {
			return v, nil
		}
		ctx, cancel := context.WithTimeout(ctx, c.Timeout)
		defer cancel()
		live, err := c.Kube.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			existing[ns] = false
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("namespace %s: %w", ns, err)
		}
		if live.DeletionTimestamp != nil {
			// A down a moment ago: wait for the namespace to go, then create it afresh.
			emit(opts.Progress, Event{Step: "wait", Message: "namespace " + ns + " is still being deleted"})
			if err := waitNamespaceGone(ctx, c, ns, opts.Timeout); err != nil {
				return false, err
			}
			existing[ns] = false
			return false, nil
		}
		existing[ns] = true
		return true, nil
	}
	for _, p := range plans {
		emit(opts.Progress, Event{App: p.app.Name, Instance: p.set.Instance, Step: "dry-run", Message: fmt.Sprintf("%d objects", len(p.res.Objects))})
		var now []*unstructured.Unstructured
		for _, o := range append(slices.Clone(p.foundation), p.objects...) {
			if o.GetKind() == "Namespace" {
				now = append(now, o)
				continue
			}
			if _, err := p.cluster.Mapping(o); err != nil {
				p.deferred = append(p.deferred, o) // its CRD may come with this up
				continue
			}
			ok, err := nsExists(p.cluster, o.GetNamespace())
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if !ok {
				p.deferred = append(p.deferred, o)
				continue
			}
			now = append(now, o)
		}
		if _, err := p.cluster.ApplyAll(ctx, now, kube.ApplyOptions{DryRun: true, ForceConflicts: opts.ForceConflicts}); err != nil {
			errs = append(errs, fmt.Errorf("app %s: %w", p.app.Name, err))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("the dry run failed, nothing was applied:%s", joinErrs(errs))
	}
	return nil
}

// created is what applyFoundation created in this run, to undo if a later dry run fails.
type created struct {
	cluster *kube.Cluster
	obj     *unstructured.Unstructured
	app     string
}

// applyFoundation creates or updates namespaces and CRDs and waits for the CRDs to serve.
// A namespace roro creates is labelled so that `down` may delete it later.
func (r *Runtime) applyFoundation(ctx context.Context, plans []*plan, opts UpOptions) ([]created, error) {
	var made []created
	for _, p := range plans {
		for _, o := range p.foundation {
			live, err := p.cluster.Get(ctx, o)
			if err != nil {
				r.rollback(ctx, made, opts.Progress)
				return nil, err
			}
			if o.GetKind() == "Namespace" {
				labels := o.GetLabels()
				if labels == nil {
					labels = map[string]string{}
				}
				if live == nil || live.GetLabels()[kube.LabelNamespaceCreatedBy] == kube.NamespaceCreatedByValue {
					labels[kube.LabelNamespaceCreatedBy] = kube.NamespaceCreatedByValue
				}
				o.SetLabels(labels)
				if live != nil && !isMember(o) {
					continue // an existing namespace roro does not render: leave it be
				}
			}
			if _, err := p.cluster.Apply(ctx, o, kube.ApplyOptions{ForceConflicts: opts.ForceConflicts}); err != nil {
				r.rollback(ctx, made, opts.Progress)
				return nil, fmt.Errorf("app %s: %w", p.app.Name, err)
			}
			if live == nil {
				made = append(made, created{cluster: p.cluster, obj: o, app: p.app.Name})
				emit(opts.Progress, Event{App: p.app.Name, Instance: p.set.Instance, Step: "create", Message: kube.Ref(o)})
			}
		}
	}
	for _, p := range plans {
		for _, o := range p.foundation {
			if o.GetKind() != "CustomResourceDefinition" {
				continue
			}
			if err := waitEstablished(ctx, p.cluster, o.GetName()); err != nil {
				r.rollback(ctx, made, opts.Progress)
				return nil, fmt.Errorf("app %s: %w", p.app.Name, err)
			}
		}
	}
	return made, nil
}

func isMember(o *unstructured.Unstructured) bool {
	_, ok := o.GetLabels()[kube.LabelApplySetPartOf]
	return ok
}

// dryRunDeferred dry-runs what had to wait for namespaces and CRDs.
func (r *Runtime) dryRunDeferred(ctx context.Context, plans []*plan, opts UpOptions) error {
	var errs []error
	for _, p := range plans {
		if len(p.deferred) == 0 {
			continue
		}
		if _, err := p.cluster.ApplyAll(ctx, p.deferred, kube.ApplyOptions{DryRun: true, ForceConflicts: opts.ForceConflicts}); err != nil {
			errs = append(errs, fmt.Errorf("app %s: %w", p.app.Name, err))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("the dry run failed; nothing was applied, and the namespaces and CRDs this run created were removed:%s", joinErrs(errs))
	}
	return nil
}

// rollback deletes what this run created, newest first.
func (r *Runtime) rollback(ctx context.Context, made []created, progress func(Event)) {
	ctx = context.WithoutCancel(ctx)
	for i := len(made) - 1; i >= 0; i-- {
		c := made[i]
		if err := c.cluster.Delete(ctx, c.obj); err == nil {
			emit(progress, Event{App: c.app, Step: "undo", Message: kube.Ref(c.obj)})
		}
	}
}

// applyApp applies one app's objects, prunes what it no longer renders and records it.
func (r *Runtime) applyApp(ctx context.Context, p *plan, opts UpOptions) error {
	c := p.cluster
	old, err := c.ReadParent(ctx, p.set)
	if err != nil {
		return err
	}
	kinds, namespaces := spans(p.res.Objects)
	if old != nil {
		kinds = append(kinds, old.GroupKinds...)
		namespaces = append(namespaces, old.Namespaces...)
	}
	if err := c.WriteParent(ctx, p.set, kinds, namespaces); err != nil {
		return fmt.Errorf("app %s: %w", p.app.Name, err)
	}
	emit(opts.Progress, Event{App: p.app.Name, Instance: p.set.Instance, Step: "apply", Message: fmt.Sprintf("%d objects", len(p.objects))})
	if _, err := c.ApplyAll(ctx, p.objects, kube.ApplyOptions{ForceConflicts: opts.ForceConflicts}); err != nil {
		return fmt.Errorf("app %s:%s", p.app.Name, joinErrs(splitJoined(err)))
	}
	if err := r.prune(ctx, p, kinds, namespaces, opts.Progress); err != nil {
		return fmt.Errorf("app %s: %w", p.app.Name, err)
	}
	newKinds, newNamespaces := spans(p.res.Objects)
	if err := c.WriteParent(ctx, p.set, newKinds, newNamespaces); err != nil {
		return fmt.Errorf("app %s: %w", p.app.Name, err)
	}
	if r.Store != nil {
		d := Deployed{App: p.app.Name, Instance: p.set.Instance, Environment: p.set.Environment, Context: c.Context,
			Namespace: p.set.ParentNamespace, ApplySetID: p.set.ID, Objects: len(p.res.Objects), UpdatedAt: r.now()}
		if err := r.Store.Update(func(st *State) { st.Workspace = r.WS.Dir; st.Record(d) }); err != nil {
			emit(opts.Progress, Event{App: p.app.Name, Step: "warning", Message: "local state not saved: " + err.Error()})
		}
	}
	return nil
}

// spans lists, each once, the group-kinds and namespaces of objs, as the ApplySet parent
// records them.
func spans(objs []*unstructured.Unstructured) ([]schema.GroupKind, []string) {
	kinds := map[schema.GroupKind]bool{}
	namespaces := map[string]bool{}
	for _, o := range objs {
		if !isMember(o) {
			continue
		}
		kinds[o.GroupVersionKind().GroupKind()] = true
		if ns := o.GetNamespace(); ns != "" {
			namespaces[ns] = true
		}
	}
	return uniqueKinds(slices.Collect(maps.Keys(kinds))), slices.Sorted(maps.Keys(namespaces))
}

// uniqueKinds sorts kinds and drops repeats.
func uniqueKinds(kinds []schema.GroupKind) []schema.GroupKind {
	slices.SortFunc(kinds, func(a, b schema.GroupKind) int { return strings.Compare(a.String(), b.String()) })
	return slices.Compact(kinds)
}

// parentFor describes the ApplySet of p spanning kinds and namespaces, each once.
func parentFor(p *plan, kinds []schema.GroupKind, namespaces []string) *kube.Parent {
	ns := append([]string{p.set.ParentNamespace}, namespaces...)
	slices.Sort(ns[1:])
	ns = slices.Compact(ns)
	if i := slices.Index(ns[1:], p.set.ParentNamespace); i >= 0 {
		ns = slices.Delete(ns, i+1, i+2)
	}
	return &kube.Parent{Set: p.set, GroupKinds: uniqueKinds(kinds), Namespaces: ns}
}

// prune deletes the set's live members the render no longer has. PersistentVolumeClaims and
// CRDs are kept (and reported): their loss is not undone by another up.
func (r *Runtime) prune(ctx context.Context, p *plan, kinds []schema.GroupKind, namespaces []string, progress func(Event)) error {
	live, err := p.cluster.Members(ctx, parentFor(p, kinds, namespaces))
	if err != nil {
		return err
	}
	want := map[string]bool{}
	for _, o := range p.res.Objects {
		want[kube.Key(o)] = true
	}
	var errs []error
	for _, o := range live {
		if want[kube.Key(o)] {
			continue
		}
		if keep(o) {
			emit(progress, Event{App: p.app.Name, Instance: p.set.Instance, Step: "kept", Message: kube.Ref(o) + " is no longer rendered; delete it yourself if you mean to"})
			continue
		}
		if err := p.cluster.Delete(ctx, o); err != nil {
			errs = append(errs, err)
			continue
		}
		emit(progress, Event{App: p.app.Name, Instance: p.set.Instance, Step: "prune", Message: kube.Ref(o)})
	}
	return errors.Join(errs...)
}

// keep reports whether pruning must leave obj: volumes, CRDs, and namespaces roro did not
// create.
func keep(o *unstructured.Unstructured) bool {
	switch o.GetKind() {
	case "PersistentVolumeClaim", "CustomResourceDefinition":
		return true
	case "Namespace":
		return o.GetLabels()[kube.LabelNamespaceCreatedBy] != kube.NamespaceCreatedByValue
	}
	return false
}

// waitHealthy waits until every object of the instance is Current (kstatus), reporting each
// change, or fails on a Failed object or the timeout with what is not ready.
func (r *Runtime) waitHealthy(ctx context.Context, p *plan, opts UpOptions) error {
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	kinds, namespaces := spans(p.res.Objects)
	parent := parentFor(p, kinds, namespaces)
	last := map[string]status.Status{}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	start := r.now()
	for {
		live, err := p.cluster.Members(ctx, parent)
		if err == nil {
			notReady, failed := r.checkHealth(p, live, last, opts.Progress)
			if len(failed) > 0 {
				return fmt.Errorf("app %s is not healthy:%s", p.app.Name, "\n  "+strings.Join(failed, "\n  "))
			}
			if len(notReady) == 0 {
				emit(opts.Progress, Event{App: p.app.Name, Instance: p.set.Instance, Step: "ready",
					Message: fmt.Sprintf("%d objects healthy in %s", len(live), r.now().Sub(start).Round(time.Millisecond))})
				return nil
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("app %s was not healthy within %s; waiting on:\n  %s", p.app.Name, opts.Timeout, strings.Join(notReady, "\n  "))
			case <-tick.C:
			}
			continue
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("app %s: %w", p.app.Name, err)
		case <-tick.C:
		}
	}
}

func (r *Runtime) checkHealth(p *plan, live []*unstructured.Unstructured, last map[string]status.Status, progress func(Event)) (notReady, failed []string) {
	byKey := map[string]*unstructured.Unstructured{}
	for _, o := range live {
		byKey[kube.Key(o)] = o
	}
	for _, want := range p.res.Objects {
		if !isMember(want) {
			continue
		}
		h := kube.HealthOf(byKey[kube.Key(want)])
		if last[kube.Key(want)] != h.Status {
			last[kube.Key(want)] = h.Status
			if h.Status != status.CurrentStatus {
				emit(progress, Event{App: p.app.Name, Instance: p.set.Instance, Step: "wait", Message: fmt.Sprintf("%s: %s %s", kube.Ref(want), h.Status, h.Message)})
			}
		}
		switch h.Status {
		case status.CurrentStatus:
		case status.FailedStatus:
			failed = append(failed, fmt.Sprintf("%s: %s", kube.Ref(want), h.Message))
		default:
			notReady = append(notReady, fmt.Sprintf("%s: %s %s", kube.Ref(want), h.Status, h.Message))
		}
	}
	return notReady, failed
}

// waitNamespaceGone waits until a terminating namespace is deleted.
func waitNamespaceGone(ctx context.Context, c *kube.Cluster, ns string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		_, err := c.Kube.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("namespace %s is still being deleted after %s: check what holds it (kubectl get namespace %s -o yaml)", ns, timeout, ns)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// waitEstablished waits until a CRD serves its kinds.
func waitEstablished(ctx context.Context, c *kube.Cluster, name string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		crd := &unstructured.Unstructured{}
		crd.SetAPIVersion("apiextensions.k8s.io/v1")
		crd.SetKind("CustomResourceDefinition")
		crd.SetName(name)
		live, err := c.Get(ctx, crd)
		if err == nil && live != nil {
			conds, _, _ := unstructured.NestedSlice(live.Object, "status", "conditions")
			for _, cond := range conds {
				if m, ok := cond.(map[string]any); ok && m["type"] == "Established" && m["status"] == "True" {
					c.Mapper.Reset()
					return nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("CRD %s was not established within 30 s", name)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func joinErrs(errs []error) string {
	var b strings.Builder
	for _, e := range errs {
		for _, line := range splitJoined(e) {
			b.WriteString("\n  ")
			b.WriteString(strings.ReplaceAll(line.Error(), "\n", "\n  "))
		}
	}
	return b.String()
}

func splitJoined(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, splitJoined(e)...)
		}
		return out
	}
	return []error{err}
}
