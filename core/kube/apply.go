package kube

import (
	"context"
	"errors"
	"fmt"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// ApplyOptions configure a server-side apply.
type ApplyOptions struct {
	// ForceConflicts takes over fields another field manager owns, instead of failing.
	ForceConflicts bool
	// DryRun asks the server to validate and admit the object without persisting it.
	DryRun bool
}

// Ref names an object for messages: "Deployment demo-api/api".
func Ref(obj *unstructured.Unstructured) string {
	if ns := obj.GetNamespace(); ns != "" {
		return obj.GetKind() + " " + ns + "/" + obj.GetName()
	}
	return obj.GetKind() + " " + obj.GetName()
}

// Apply server-side-applies obj with field manager roro and returns the object as the
// server has it. Errors name the object and say what would fix them.
func (c *Cluster) Apply(ctx context.Context, obj *unstructured.Unstructured, opts ApplyOptions) (*unstructured.Unstructured, error) {
	ri, _, err := c.Resource(obj)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", Ref(obj), err)
	}
	ao := metav1.ApplyOptions{FieldManager: FieldManager, Force: opts.ForceConflicts}
	if opts.DryRun {
		ao.DryRun = []string{metav1.DryRunAll}
	}
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	live, err := ri.Apply(ctx, obj.GetName(), obj, ao)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", Ref(obj), explain(err))
	}
	return live, nil
}

// explain adds what to do to the API errors a user can act on.
func explain(err error) error {
	switch {
	case apierrors.IsConflict(err):
		return fmt.Errorf("%w; another field manager owns these fields: rerun with --force-conflicts to take them over", err)
	case apierrors.IsForbidden(err):
		return fmt.Errorf("forbidden: %w; ask for a Role that grants it, or use another context", err)
	case apierrors.IsUnauthorized(err):
		return fmt.Errorf("unauthorized: %w; your kubeconfig credentials were refused", err)
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("the API server did not answer in time: %w", err)
	}
	return err
}

// ApplyAll applies objs in parallel (they must not depend on each other) and returns the
// live objects in the same order, and every failure.
func (c *Cluster) ApplyAll(ctx context.Context, objs []*unstructured.Unstructured, opts ApplyOptions) ([]*unstructured.Unstructured, error) {
	live := make([]*unstructured.Unstructured, len(objs))
	errs := make([]error, len(objs))
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for i, obj := range objs {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			live[i], errs[i] = c.Apply(ctx, obj, opts)
		})
	}
	wg.Wait()
	return live, errors.Join(errs...)
}

// Delete deletes obj (in the background for its dependents); an object already gone is not
// an error.
func (c *Cluster) Delete(ctx context.Context, obj *unstructured.Unstructured) error {
	ri, _, err := c.Resource(obj)
	if err != nil {
		return fmt.Errorf("delete %s: %w", Ref(obj), err)
	}
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	policy := metav1.DeletePropagationBackground
	err = ri.Delete(ctx, obj.GetName(), metav1.DeleteOptions{PropagationPolicy: &policy})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete %s: %w", Ref(obj), explain(err))
	}
	return nil
}

// Get reads the live form of obj; a missing object is (nil, nil).
func (c *Cluster) Get(ctx context.Context, obj *unstructured.Unstructured) (*unstructured.Unstructured, error) {
	ri, _, err := c.Resource(obj)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", Ref(obj), err)
	}
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	live, err := ri.Get(ctx, obj.GetName(), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", Ref(obj), explain(err))
	}
	return live, nil
}
