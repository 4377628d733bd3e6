package kube

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/rorokube/roro/core/render"
)

// ApplySet labels and annotations (KEP-3659), as kubectl reads them, and roro's own. The
// labels every rendered object carries are core/render's.
const (
	LabelApplySetID         = "applyset.kubernetes.io/id"
	LabelApplySetPartOf     = render.LabelApplySetPartOf
	AnnotationTooling       = "applyset.kubernetes.io/tooling"
	AnnotationGroupKinds    = "applyset.kubernetes.io/contains-group-kinds"
	AnnotationNamespaces    = "applyset.kubernetes.io/additional-namespaces"
	ToolingValue            = "roro/v1"
	LabelManagedBy          = render.LabelManagedBy
	ManagedByValue          = render.ManagedByValue
	LabelApp                = render.LabelApp
	LabelInstance           = render.LabelInstance
	LabelEnvironment        = "roro.dev/environment"
	AnnotationWorkspace     = "roro.dev/workspace"
	LabelNamespaceCreatedBy = "roro.dev/created-by"
	NamespaceCreatedByValue = "roro"
)

// ApplySet names one instance's ApplySet: its parent Secret and its ID.
type ApplySet struct {
	ParentName, ParentNamespace, ID string
	// App, Instance, Environment and Workspace label the parent, so `roro ps` can rebuild the
	// inventory from the cluster alone.
	App, Instance, Environment, Workspace string
}

// Parent is an ApplySet's parent as the cluster has it.
type Parent struct {
	Set        ApplySet
	GroupKinds []schema.GroupKind
	Namespaces []string // every namespace the set spans, the parent's first
	// Created is when the set was first applied (its parent's creation).
	Created time.Time
}

// ReadParent reads the set's parent Secret; a set never applied is (nil, nil).
func (c *Cluster) ReadParent(ctx context.Context, set ApplySet) (*Parent, error) {
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	s, err := c.Kube.CoreV1().Secrets(set.ParentNamespace).Get(ctx, set.ParentName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the inventory of %s/%s: %w", set.ParentNamespace, set.ParentName, explain(err))
	}
	return parentOf(s), nil
}

func parentOf(s *corev1.Secret) *Parent {
	p := &Parent{Set: ApplySet{
		ParentName: s.Name, ParentNamespace: s.Namespace, ID: s.Labels[LabelApplySetID],
		App: s.Labels[LabelApp], Instance: s.Labels[LabelInstance], Environment: s.Labels[LabelEnvironment],
		Workspace: s.Annotations[AnnotationWorkspace],
	}}
	for _, gk := range splitList(s.Annotations[AnnotationGroupKinds]) {
		p.GroupKinds = append(p.GroupKinds, schema.ParseGroupKind(gk))
	}
	p.Namespaces = append([]string{s.Namespace}, splitList(s.Annotations[AnnotationNamespaces])...)
	p.Created = s.CreationTimestamp.Time
	return p
}

// ListParents finds every roro ApplySet parent in the cluster: what runs, rebuilt from labels.
func (c *Cluster) ListParents(ctx context.Context) ([]*Parent, error) {
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	list, err := c.Kube.CoreV1().Secrets("").List(ctx, metav1.ListOptions{
		LabelSelector: LabelManagedBy + "=" + ManagedByValue + "," + LabelApplySetID,
	})
	if err != nil {
		return nil, fmt.Errorf("list roro's inventories: %w", explain(err))
	}
	out := make([]*Parent, 0, len(list.Items))
	for i := range list.Items {
		out = append(out, parentOf(&list.Items[i]))
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i].Set, out[j].Set
		return a.App+"/"+a.Instance < b.App+"/"+b.Instance
	})
	return out, nil
}

// WriteParent creates or updates the set's parent Secret with the kinds and namespaces the set
// spans. kubectl's rule: before an apply, write the union of the old and the new; after the
// prune, the new alone.
func (c *Cluster) WriteParent(ctx context.Context, set ApplySet, kinds []schema.GroupKind, namespaces []string) error {
	var gks []string
	for _, gk := range kinds {
		gks = append(gks, gk.String())
	}
	slices.Sort(gks)
	gks = slices.Compact(gks)
	var extra []string
	for _, ns := range namespaces {
		if ns != "" && ns != set.ParentNamespace {
			extra = append(extra, ns)
		}
	}
	slices.Sort(extra)
	extra = slices.Compact(extra)
	parent := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
		"metadata": map[string]any{
			"name": set.ParentName, "namespace": set.ParentNamespace,
			"labels": map[string]any{
				LabelApplySetID: set.ID, LabelManagedBy: ManagedByValue,
				LabelApp: set.App, LabelInstance: set.Instance, LabelEnvironment: set.Environment,
			},
			"annotations": map[string]any{
				AnnotationTooling: ToolingValue, AnnotationGroupKinds: strings.Join(gks, ","),
				AnnotationNamespaces: strings.Join(extra, ","), AnnotationWorkspace: set.Workspace,
			},
		},
	}}
	_, err := c.Apply(ctx, parent, ApplyOptions{ForceConflicts: true})
	if err != nil {
		return fmt.Errorf("write the inventory: %w", err)
	}
	return nil
}

// Members lists the live objects of a set, found by its part-of label in every kind and
// namespace the parent records. Kinds the cluster no longer serves are skipped.
func (c *Cluster) Members(ctx context.Context, p *Parent) ([]*unstructured.Unstructured, error) {
	var out []*unstructured.Unstructured
	var errs []error
	sel := metav1.ListOptions{LabelSelector: LabelApplySetPartOf + "=" + p.Set.ID}
	for _, gk := range p.GroupKinds {
		m, err := c.mapping(ctx, gk)
		if meta.IsNoMatchError(err) {
			continue // its CRD is gone, and with it every object of the kind
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		namespaces := p.Namespaces
		if m.Scope.Name() != meta.RESTScopeNameNamespace {
			namespaces = []string{""}
		}
		for _, ns := range namespaces {
			lctx, cancel := context.WithTimeout(ctx, c.Timeout)
			list, err := c.Dynamic.Resource(m.Resource).Namespace(ns).List(lctx, sel)
			cancel()
			if apierrors.IsNotFound(err) {
				continue
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("list %s in %q: %w", gk, ns, explain(err)))
				continue
			}
			for i := range list.Items {
				out = append(out, &list.Items[i])
			}
		}
	}
	return out, errors.Join(errs...)
}

func splitList(s string) []string {
	var out []string
	for _, x := range strings.Split(s, ",") {
		if x = strings.TrimSpace(x); x != "" {
			out = append(out, x)
		}
	}
	return out
}

// Key identifies an object across versions: group, kind, namespace and name.
func Key(obj *unstructured.Unstructured) string {
	gk := obj.GroupVersionKind().GroupKind()
	return gk.String() + "/" + obj.GetNamespace() + "/" + obj.GetName()
}
