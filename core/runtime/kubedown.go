package runtime

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/pmezard/go-difflib/difflib"
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
// the live objects, as a unified diff per object. Secret data and secret env values are
// masked on both sides. An object the cluster lacks shows as all added; an object the
// instance owns but no longer renders, as all removed.
func (k *kubeCluster) Diff(ctx context.Context, t Target) (string, error) {
	c := k.c
	res, resolved, err := k.Render(ctx, t)
	if err != nil {
		return "", err
	}
	secrets := resolved.SecretValues()
	var b strings.Builder
	seen := map[string]bool{}
	for _, o := range res.Objects {
		if !isMember(o) {
			continue
		}
		seen[kube.Key(o)] = true
		live, err := c.Get(ctx, o)
		if err != nil {
			return "", err
		}
		var after *unstructured.Unstructured
		if live == nil {
			after = o
		} else if after, err = c.Apply(ctx, o.DeepCopy(), kube.ApplyOptions{DryRun: true, ForceConflicts: true}); err != nil {
			return "", err
		}
		writeDiff(&b, kube.Ref(o), live, after, secrets)
	}
	if parent, err := findParent(ctx, c, t); err == nil && parent != nil {
		members, err := c.Members(ctx, parent)
		if err != nil {
			return "", err
		}
		for _, m := range members {
			if !seen[kube.Key(m)] {
				writeDiff(&b, kube.Ref(m)+" (pruned by the next up)", m, nil, secrets)
			}
		}
	}
	return b.String(), nil
}

// writeDiff appends the unified diff of one object's live and desired forms.
func writeDiff(b *strings.Builder, name string, live, want *unstructured.Unstructured, secrets []string) {
	from, to := comparable(live, secrets), comparable(want, secrets)
	if from == to {
		return
	}
	d, _ := difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
		A: difflib.SplitLines(from), B: difflib.SplitLines(to),
		FromFile: "live/" + name, ToFile: "rendered/" + name, Context: 3,
	})
	b.WriteString(d)
}

// comparable is an object as YAML without the fields the server owns, with secrets masked.
func comparable(o *unstructured.Unstructured, secrets []string) string {
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
