package runtime

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/rorokube/roro/core/kube"
	"github.com/rorokube/roro/core/render"
)

// DownOptions say what `down` removes.
type DownOptions struct {
	// Volumes also deletes PersistentVolumeClaims the instance owns or its namespace holds.
	Volumes bool
	// CRDs also deletes CustomResourceDefinitions the instance applied.
	CRDs bool
}

// DownResult says what down did for one instance.
type DownResult struct {
	App, Instance string
	// Running is false when the instance was not found in the cluster (nothing to do).
	Running bool
	Deleted int
	Kept    []string
}

func (k *kubeCluster) Delete(ctx context.Context, t Target, opts DownOptions, report Reporter) (DownResult, error) {
	app, inst := t.App.Name, t.Instance.Name
	out := DownResult{App: app, Instance: inst}
	c := k.c
	parent, err := findParent(ctx, c, t)
	if err != nil || parent == nil {
		return out, err
	}
	out.Running = true
	report.emit(Event{App: app, Instance: inst, Step: StepDown, Message: "namespace " + parent.Set.ParentNamespace})
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
			report.emit(objectEvent(app, inst, StepKept, kube.RefOf(o), ""))
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
		report.emit(objectEvent(app, inst, StepDelete, kube.RefOf(o), ""))
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
		if shared, err := c.SharesNamespace(ctx, n.GetName(), parent.Set.ID); err != nil || shared {
			if err == nil {
				out.Kept = append(out.Kept, kube.Ref(n)+" (other roro instances use it)")
			}
			continue
		}
		claims, err := c.VolumeClaims(ctx, n.GetName())
		if err == nil && len(claims) > 0 && !opts.Volumes {
			note := fmt.Sprintf(" (it holds PersistentVolumeClaims %s; --volumes deletes them)", strings.Join(claims, ", "))
			out.Kept = append(out.Kept, kube.Ref(n)+note)
			report.emit(objectEvent(app, inst, StepKept, kube.RefOf(n), note))
			continue
		}
		if err := c.Delete(ctx, n); err != nil {
			return out, err
		}
		out.Deleted++
		report.emit(objectEvent(app, inst, StepDelete, kube.RefOf(n), ""))
	}
	return out, nil
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

// Diff compares what an up would apply (a server-side dry run of the rendered objects) with
// the live objects, object by object. Secret data and secret env values are masked on both
// sides; a Secret's key whose value changed is marked so. An object the cluster lacks has no
// live form; one the instance owns but no longer renders, no rendered form. Objects that
// would not change are left out.
func (k *kubeCluster) Diff(ctx context.Context, t Target) ([]ObjectDiff, error) {
	c := k.c
	res, resolved, err := k.Render(ctx, t)
	if err != nil {
		return nil, err
	}
	secrets := resolved.SecretValues()
	var out []ObjectDiff
	add := func(name string, live, want *unstructured.Unstructured) {
		changed := changedSecretKeys(live, want)
		d := ObjectDiff{Name: name, Live: comparable(live, secrets, nil), Rendered: comparable(want, secrets, changed)}
		if d.Live != d.Rendered {
			out = append(out, d)
		}
	}
	seen := map[string]bool{}
	for _, o := range res.Objects {
		if !isMember(o) {
			continue
		}
		seen[kube.Key(o)] = true
		live, err := c.Get(ctx, o)
		if err != nil {
			return nil, err
		}
		var after *unstructured.Unstructured
		if live == nil {
			after = o
		} else if after, err = c.Apply(ctx, o.DeepCopy(), kube.ApplyOptions{DryRun: true, ForceConflicts: true}); err != nil {
			return nil, err
		}
		add(kube.Ref(o), live, after)
	}
	if parent, err := findParent(ctx, c, t); err == nil && parent != nil {
		members, err := c.Members(ctx, parent)
		if err != nil {
			return nil, err
		}
		for _, m := range members {
			if !seen[kube.Key(m)] {
				add(kube.Ref(m)+" (pruned by the next up)", m, nil)
			}
		}
	}
	return out, nil
}

// changedSecretKeys are the keys of a Secret's data whose values differ between its live
// and rendered forms (both as the server stores them, base64), or nil for other objects.
func changedSecretKeys(live, want *unstructured.Unstructured) map[string]bool {
	if live == nil || want == nil || want.GetKind() != "Secret" {
		return nil
	}
	before, _, _ := unstructured.NestedMap(live.Object, "data")
	after, _, _ := unstructured.NestedMap(want.Object, "data")
	out := map[string]bool{}
	for k, v := range after {
		if old, ok := before[k]; ok && old != v {
			out[k] = true
		}
	}
	return out
}

// comparable is an object as YAML without the fields the server owns, with secrets masked;
// a Secret's keys in changed are masked as changed.
func comparable(o *unstructured.Unstructured, secrets []string, changed map[string]bool) string {
	if o == nil {
		return ""
	}
	c := o.DeepCopy()
	for _, f := range []string{"managedFields", "resourceVersion", "uid", "creationTimestamp", "generation", "selfLink"} {
		unstructured.RemoveNestedField(c.Object, "metadata", f)
	}
	unstructured.RemoveNestedField(c.Object, "status")
	if anns := c.GetAnnotations(); anns != nil {
		delete(anns, "deployment.kubernetes.io/revision")
		if len(anns) == 0 {
			anns = nil
		}
		c.SetAnnotations(anns)
	}
	if c.GetKind() == "Secret" {
		for _, field := range []string{"data", "stringData"} {
			if m, ok := c.Object[field].(map[string]any); ok {
				for k := range m {
					m[k] = render.SecretMask
					if changed[k] {
						m[k] = render.SecretMask + " (changed)"
					}
				}
			}
		}
	}
	y, err := yaml.Marshal(c.Object)
	if err != nil {
		return err.Error()
	}
	return render.MaskString(string(y), secrets)
}
