package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"

	"github.com/rorokube/roro/core/kube"
	"github.com/rorokube/roro/core/render"
	"github.com/rorokube/roro/core/workspace"
	"github.com/rorokube/roro/forward"
)

// kubeCluster is the Cluster the engine uses for real: every call goes through core/kube.
type kubeCluster struct {
	c   *kube.Cluster
	now func() time.Time
}

var _ Cluster = (*kubeCluster)(nil)

// NewCluster returns the engine's Cluster over a connection of core/kube.
func NewCluster(c *kube.Cluster, now func() time.Time) Cluster {
	if now == nil {
		now = time.Now
	}
	return &kubeCluster{c: c, now: now}
}

// KubeConnector connects through kubeconfig: to the context override when it is set (the
// command line's --context), else the environment's "context" in roro.json, else the
// kubeconfig's current context.
func KubeConnector(kubeconfig, override string, timeout time.Duration, now func() time.Time, warnings io.Writer) Connector {
	return func(ctx context.Context, _, kubeContext string) (Cluster, error) {
		if override != "" {
			kubeContext = override
		}
		c, err := kube.Connect(ctx, kube.ConnectOptions{Kubeconfig: kubeconfig, Context: kubeContext, Timeout: timeout, Warnings: warnings})
		if err != nil {
			return nil, err
		}
		return NewCluster(c, now), nil
	}
}

func (k *kubeCluster) Context() string                { return k.c.Context }
func (k *kubeCluster) Server() string                 { return k.c.Server }
func (k *kubeCluster) Ping(ctx context.Context) error { return k.c.Ping(ctx) }
func (k *kubeCluster) Close()                         { k.c.Close() }

func (k *kubeCluster) Watch(ctx context.Context, publish func([]InstanceView)) error {
	w := kube.NewWatcher(k.c)
	w.OnChange = func(invs []kube.Inventory) { publish(k.views(invs)) }
	return w.Run(ctx)
}

func (k *kubeCluster) Instances(ctx context.Context) ([]InstanceView, error) {
	invs, err := k.c.Inventories(ctx)
	return k.views(invs), err
}

// views turns the cluster's inventories into instance views with a health summary.
func (k *kubeCluster) views(invs []kube.Inventory) []InstanceView {
	out := make([]InstanceView, 0, len(invs))
	for _, inv := range invs {
		set := inv.Parent.Set
		iv := InstanceView{App: set.App, Instance: set.Instance, Environment: set.Environment, Namespace: set.ParentNamespace,
			Context: k.c.Context, Workspace: set.Workspace, Running: true, Health: Healthy, Created: inv.Parent.Created}
		for _, o := range inv.Objects {
			iv.Objects = append(iv.Objects, ObjectView{Ref: o.Object, Health: o.Health})
			switch {
			case o.Health.Status == status.FailedStatus:
				iv.Health = Failed
			case o.Health.Status != status.CurrentStatus && iv.Health != Failed:
				iv.Health = Progressing
			}
		}
		out = append(out, iv)
	}
	return out
}

func (k *kubeCluster) Running(ctx context.Context, t Target) (string, bool, error) {
	p, err := findParent(ctx, k.c, t)
	if err != nil || p == nil {
		return "", false, err
	}
	return p.Set.Environment, true, nil
}

func (k *kubeCluster) Forward(spec forward.Spec, opts forward.Options) (Forwarder, error) {
	return forward.New(k.c.Config, k.c.Kube, spec, opts)
}

func (k *kubeCluster) Env(ctx context.Context, t Target) (*render.Env, error) {
	return render.ResolveEnv(ctx, t.App, t.Environment, t.LookupHost, kube.ObjectReader{Cluster: k.c})
}

func (k *kubeCluster) Render(ctx context.Context, t Target) (*render.Result, *render.Env, error) {
	return RenderTarget(ctx, t, kube.ObjectReader{Cluster: k.c})
}

// RenderTarget renders one instance as up applies it: env resolved with reader (nil leaves
// values read from cluster objects as placeholders), the layered values plus the target's,
// and env injected into the workloads when the app asks for it. `roro render` and `up` both
// come here, so what render prints is what up applies.
func RenderTarget(ctx context.Context, t Target, reader render.ObjectReader) (*render.Result, *render.Env, error) {
	if t.LookupHost == nil {
		t.LookupHost = func(string) (string, bool) { return "", false }
	}
	if t.Render == nil {
		return nil, nil, fmt.Errorf("render %s: no template executor", t.Key())
	}
	resolved, err := render.ResolveEnv(ctx, t.App, t.Environment, t.LookupHost, reader)
	if err != nil {
		return nil, nil, err
	}
	res, err := render.App(ctx, t.Render, t.WS, t.App, render.Request{Environment: t.Environment, Instance: t.Instance.Name, Values: t.Values, Env: resolved.Values})
	if err != nil {
		return nil, nil, render.MaskError(err, resolved.SecretValues())
	}
	if t.App.File.InjectEnv {
		render.InjectEnv(res, resolved)
	}
	return res, resolved, nil
}

// kubePlan is what kubeCluster keeps in a Plan.
type kubePlan struct {
	res *render.Result
	set kube.ApplySet
	// foundation holds what other objects need to exist first: namespaces and CRDs.
	foundation []*unstructured.Unstructured
	// objects are the rest, applied in parallel once the foundation is in place.
	objects []*unstructured.Unstructured
	// deferred are objects the server cannot dry-run before the foundation exists.
	deferred []*unstructured.Unstructured
	// secrets are the instance's secret env values, masked in every error: the server may
	// quote a value it refuses.
	secrets []string
}

func planOf(p *Plan) *kubePlan { return p.state.(*kubePlan) }

// isFoundation reports whether other objects may need obj to exist before they can be
// created or even validated.
func isFoundation(obj *unstructured.Unstructured) bool {
	gk := obj.GroupVersionKind().GroupKind()
	return gk == (schema.GroupKind{Kind: "Namespace"}) ||
		gk == (schema.GroupKind{Group: "apiextensions.k8s.io", Kind: "CustomResourceDefinition"})
}

func (k *kubeCluster) Plan(ctx context.Context, targets []Target, opts kube.ApplyOptions, report Reporter) ([]*Plan, error) {
	var plans []*Plan
	var errs []error
	for _, t := range targets {
		where := "namespace " + t.Instance.Namespace
		if t.Environment != "" {
			where = "environment " + t.Environment + ", " + where
		}
		report.emit(Event{App: t.App.Name, Instance: t.Instance.Name, Step: StepRender, Message: where})
		res, env, err := k.Render(ctx, t)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		kp := &kubePlan{res: res, set: applySetOf(t.WS, res), secrets: env.SecretValues()}
		for _, o := range res.Objects {
			if isFoundation(o) {
				kp.foundation = append(kp.foundation, o)
			} else {
				kp.objects = append(kp.objects, o)
			}
		}
		if !slices.ContainsFunc(kp.foundation, func(o *unstructured.Unstructured) bool {
			return o.GetKind() == "Namespace" && o.GetName() == t.Instance.Namespace
		}) {
			kp.foundation = append([]*unstructured.Unstructured{instanceNamespace(res)}, kp.foundation...)
		}
		plans = append(plans, &Plan{Target: t, Objects: len(res.Objects), state: kp})
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return plans, k.dryRun(ctx, plans, opts, report)
}

// applySetOf turns a rendered result into the kube layer's ApplySet description.
func applySetOf(ws *workspace.Workspace, res *render.Result) kube.ApplySet {
	return kube.ApplySet{
		ParentName: res.ApplySet.ParentName, ParentNamespace: res.ApplySet.ParentNamespace, ID: res.ApplySet.ID,
		App: res.App, Instance: res.Instance.Name, Environment: res.Environment, Workspace: ws.File.Name,
	}
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
// kind does not exist yet wait for Foundation.
func (k *kubeCluster) dryRun(ctx context.Context, plans []*Plan, opts kube.ApplyOptions, report Reporter) error {
	var errs []error
	existing := map[string]bool{}
	nsExists := func(ns string) (bool, error) {
		if ns == "" {
			return true, nil
		}
		if v, ok := existing[ns]; ok {
			return v, nil
		}
		exists, terminating, err := k.c.NamespaceState(ctx, ns)
		if err != nil {
			return false, err
		}
		if terminating {
			// A down a moment ago: wait for the namespace to go, then create it afresh.
			report.emit(Event{Step: StepWait, Message: "namespace " + ns + " is still being deleted"})
			if err := k.c.WaitNamespaceGone(ctx, ns, 5*time.Minute); err != nil {
				return false, err
			}
			exists = false
		}
		existing[ns] = exists
		return exists, nil
	}
	opts.DryRun = true
	for _, p := range plans {
		kp := planOf(p)
		var now []*unstructured.Unstructured
		for _, o := range append(slices.Clone(kp.foundation), kp.objects...) {
			if o.GetKind() == "Namespace" {
				now = append(now, o)
				continue
			}
			var notServed *kube.NotServedError
			if _, err := k.c.Mapping(ctx, o); errors.As(err, &notServed) {
				kp.deferred = append(kp.deferred, o) // its CRD may come with this up
				continue
			} else if errors.Is(err, context.DeadlineExceeded) {
				return fmt.Errorf("%s: %w", kube.RefOf(o), err) // the cluster does not answer: asking for each object would take a timeout each
			} else if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", kube.RefOf(o), err))
				continue
			}
			ok, err := nsExists(o.GetNamespace())
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if !ok {
				kp.deferred = append(kp.deferred, o)
				continue
			}
			now = append(now, o)
		}
		if _, err := k.c.ApplyAll(ctx, now, opts); err != nil {
			errs = append(errs, planError(p, err))
			continue
		}
		report.emit(Event{App: p.Target.App.Name, Instance: p.Target.Instance.Name, Step: StepDryRun, Message: fmt.Sprintf("%d objects", p.Objects)})
	}
	return errors.Join(errs...)
}

// created is what Foundation created, to undo when a later step fails.
type created struct {
	obj      *unstructured.Unstructured
	app, ins string
}

func (k *kubeCluster) Foundation(ctx context.Context, plans []*Plan, opts kube.ApplyOptions, report Reporter) (func() []kube.ObjectRef, error) {
	var made []created
	undo := func() []kube.ObjectRef { return k.rollback(ctx, made, report) }
	fail := func(err error, dryRun bool) error {
		return &FoundationError{DryRun: dryRun, Created: len(made), Left: undo(), Err: err}
	}
	for _, p := range plans {
		kp := planOf(p)
		for _, o := range kp.foundation {
			live, err := k.c.Get(ctx, o)
			if err != nil {
				return nil, fail(err, false)
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
			if _, err := k.c.Apply(ctx, o, opts); err != nil {
				return nil, fail(planError(p, err), false)
			}
			if live == nil {
				made = append(made, created{obj: o, app: p.Target.App.Name, ins: p.Target.Instance.Name})
				report.emit(objectEvent(p.Target.App.Name, p.Target.Instance.Name, StepCreate, kube.RefOf(o), ""))
			}
		}
	}
	for _, p := range plans {
		for _, o := range planOf(p).foundation {
			if o.GetKind() != "CustomResourceDefinition" {
				continue
			}
			if err := k.c.WaitEstablished(ctx, o.GetName(), 30*time.Second); err != nil {
				return nil, fail(planError(p, err), false)
			}
		}
	}
	var errs []error
	dry := opts
	dry.DryRun = true
	for _, p := range plans {
		if kp := planOf(p); len(kp.deferred) > 0 {
			if _, err := k.c.ApplyAll(ctx, kp.deferred, dry); err != nil {
				errs = append(errs, planError(p, err))
			}
		}
	}
	if len(errs) > 0 {
		return nil, fail(errors.Join(errs...), true)
	}
	return undo, nil
}

// rollback deletes what this run created, newest first, and returns what it could not.
func (k *kubeCluster) rollback(ctx context.Context, made []created, report Reporter) []kube.ObjectRef {
	ctx = context.WithoutCancel(ctx)
	var left []kube.ObjectRef
	for i := len(made) - 1; i >= 0; i-- {
		c := made[i]
		if err := k.c.Delete(ctx, c.obj); err != nil {
			left = append(left, kube.RefOf(c.obj))
			report.emit(objectEvent(c.app, c.ins, StepWarning, kube.RefOf(c.obj), " could not be removed again: "+err.Error()))
			continue
		}
		report.emit(objectEvent(c.app, c.ins, StepUndo, kube.RefOf(c.obj), ""))
	}
	return left
}

func isMember(o *unstructured.Unstructured) bool {
	_, ok := o.GetLabels()[kube.LabelApplySetPartOf]
	return ok
}

func (k *kubeCluster) Apply(ctx context.Context, p *Plan, opts kube.ApplyOptions, report Reporter) error {
	kp := planOf(p)
	app, inst := p.Target.App.Name, p.Target.Instance.Name
	old, err := k.c.ReadParent(ctx, kp.set)
	if err != nil {
		return err
	}
	kinds, namespaces := spans(kp.res.Objects)
	if old != nil {
		kinds = append(kinds, old.GroupKinds...)
		namespaces = append(namespaces, old.Namespaces...)
	}
	if err := k.c.WriteParent(ctx, kp.set, kinds, namespaces); err != nil {
		return err
	}
	if _, err := k.c.ApplyAll(ctx, kp.objects, opts); err != nil {
		return render.MaskError(err, kp.secrets)
	}
	report.emit(Event{App: app, Instance: inst, Step: StepApply, Message: fmt.Sprintf("%d objects", len(kp.objects))})
	if err := k.prune(ctx, p, kinds, namespaces, report); err != nil {
		return err
	}
	newKinds, newNamespaces := spans(kp.res.Objects)
	return k.c.WriteParent(ctx, kp.set, newKinds, newNamespaces)
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

// parentFor describes the ApplySet of kp spanning kinds and namespaces, each once.
func parentFor(kp *kubePlan, kinds []schema.GroupKind, namespaces []string) *kube.Parent {
	ns := append([]string{kp.set.ParentNamespace}, namespaces...)
	slices.Sort(ns[1:])
	ns = slices.Compact(ns)
	if i := slices.Index(ns[1:], kp.set.ParentNamespace); i >= 0 {
		ns = slices.Delete(ns, i+1, i+2)
	}
	return &kube.Parent{Set: kp.set, GroupKinds: uniqueKinds(kinds), Namespaces: ns}
}

// prune deletes the set's live members the render no longer has. PersistentVolumeClaims and
// CRDs are kept (and reported): their loss is not undone by another up.
func (k *kubeCluster) prune(ctx context.Context, p *Plan, kinds []schema.GroupKind, namespaces []string, report Reporter) error {
	kp := planOf(p)
	app, inst := p.Target.App.Name, p.Target.Instance.Name
	live, err := k.c.Members(ctx, parentFor(kp, kinds, namespaces))
	if err != nil {
		return err
	}
	want := map[string]bool{}
	for _, o := range kp.res.Objects {
		want[kube.Key(o)] = true
	}
	var errs []error
	for _, o := range live {
		if want[kube.Key(o)] {
			continue
		}
		if keep(o) {
			report.emit(objectEvent(app, inst, StepKept, kube.RefOf(o), " is no longer rendered; delete it yourself if you mean to"))
			continue
		}
		if err := k.c.Delete(ctx, o); err != nil {
			errs = append(errs, err)
			continue
		}
		report.emit(objectEvent(app, inst, StepPrune, kube.RefOf(o), ""))
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

func (k *kubeCluster) Wait(ctx context.Context, p *Plan, timeout time.Duration, report Reporter) error {
	kp := planOf(p)
	app, inst := p.Target.App.Name, p.Target.Instance.Name
	kinds, namespaces := spans(kp.res.Objects)
	var want []*unstructured.Unstructured
	for _, o := range kp.res.Objects {
		if isMember(o) {
			want = append(want, o)
		}
	}
	start := k.now()
	err := k.c.WaitHealthy(ctx, parentFor(kp, kinds, namespaces), want, timeout, func(ch kube.HealthChange) {
		if ch.Health.Status != status.CurrentStatus {
			report.emit(objectEvent(app, inst, StepWait, ch.Object, ": "+strings.TrimSpace(string(ch.Health.Status)+" "+ch.Health.Message)))
		}
	})
	if err != nil {
		return err
	}
	report.emit(Event{App: app, Instance: inst, Step: StepReady,
		Message: fmt.Sprintf("%d objects healthy in %s", len(want), k.now().Sub(start).Round(time.Millisecond))})
	return nil
}

// running finds a deployed instance's inventory and its live objects; an instance that is
// not deployed is a *NotRunningError.
func (k *kubeCluster) running(ctx context.Context, t Target) (*kube.Parent, []*unstructured.Unstructured, error) {
	parent, err := findParent(ctx, k.c, t)
	if err != nil {
		return nil, nil, err
	}
	if parent == nil {
		return nil, nil, &NotRunningError{Instance: t.Key()}
	}
	members, err := k.c.Members(ctx, parent)
	return parent, members, err
}

func (k *kubeCluster) Restart(ctx context.Context, t Target, report Reporter) error {
	parent, members, err := k.running(ctx, t)
	if err != nil {
		return err
	}
	at := k.now()
	var errs []error
	n := 0
	for _, m := range members {
		if !kube.Restartable(m) {
			continue
		}
		n++
		if err := k.c.Restart(ctx, m, at); err != nil {
			errs = append(errs, err)
			continue
		}
		report.emit(objectEvent(t.App.Name, t.Instance.Name, StepRestart, kube.RefOf(m), ""))
	}
	if n == 0 {
		return fmt.Errorf("%s has no Deployment, StatefulSet or DaemonSet to restart", t.Key())
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	var want []*unstructured.Unstructured
	for _, m := range members {
		if kube.Restartable(m) {
			want = append(want, m)
		}
	}
	start := k.now()
	// The controllers first notice the new template; then kstatus sees the rollout through.
	err = k.c.WaitHealthy(ctx, parent, want, 5*time.Minute, func(ch kube.HealthChange) {
		if ch.Health.Status != status.CurrentStatus {
			report.emit(objectEvent(t.App.Name, t.Instance.Name, StepWait, ch.Object, ": "+strings.TrimSpace(string(ch.Health.Status)+" "+ch.Health.Message)))
		}
	})
	if err != nil {
		return err
	}
	report.emit(Event{App: t.App.Name, Instance: t.Instance.Name, Step: StepReady,
		Message: fmt.Sprintf("%d workloads restarted in %s", n, k.now().Sub(start).Round(time.Millisecond))})
	return nil
}

func (k *kubeCluster) Logs(ctx context.Context, t Target, opts kube.LogOptions, emit func(kube.LogLine)) error {
	_, members, err := k.running(ctx, t)
	if err != nil {
		return err
	}
	if !kube.HasPods(members) {
		return fmt.Errorf("%s has no workloads with pods", t.Key())
	}
	return k.c.StreamLogs(ctx, members, opts, emit)
}

func (k *kubeCluster) Exec(ctx context.Context, t Target, container string, command []string, streams kube.ExecIO) error {
	_, members, err := k.running(ctx, t)
	if err != nil {
		return err
	}
	if !kube.HasPods(members) {
		return fmt.Errorf("%s has no workloads with pods", t.Key())
	}
	pod, err := k.c.ReadyPod(ctx, members)
	if err != nil {
		return fmt.Errorf("%s: %w", t.Key(), err)
	}
	return k.c.Exec(ctx, pod, container, command, streams)
}

// findParent finds an instance's ApplySet parent: where this workspace would put it, or, when
// the workspace has changed since, by the app and instance labels anywhere in the cluster —
// never another workspace's instance of an app of the same name.
func findParent(ctx context.Context, c *kube.Cluster, t Target) (*kube.Parent, error) {
	app, inst := t.App.Name, t.Instance
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
		if p.Set.App == app && p.Set.Instance == inst.Name && (p.Set.Workspace == "" || p.Set.Workspace == t.WS.File.Name) {
			return p, nil
		}
	}
	return nil, nil
}

// planError is err about p's instance, named by its app (keeping its type for errors.As),
// with the instance's secrets masked.
func planError(p *Plan, err error) error {
	return render.MaskError(&AppError{App: p.Target.App.Name, Err: err}, planOf(p).secrets)
}
