package kube

import (
	"context"
	"errors"
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
func Ref(obj *unstructured.Unstructured) string { return RefOf(obj).String() }

// Apply server-side-applies obj with field manager roro and returns the object as the
// server has it. Errors name the object and say what would fix them.
func (c *Cluster) Apply(ctx context.Context, obj *unstructured.Unstructured, opts ApplyOptions) (*unstructured.Unstructured, error) {
	op := "apply"
	if opts.DryRun {
		op = "dry-run"
	}
	ri, _, err := c.Resource(ctx, obj)
	if err != nil {
		return nil, &ObjectError{Op: op, Object: RefOf(obj), Err: err}
	}
	ao := metav1.ApplyOptions{FieldManager: FieldManager, Force: opts.ForceConflicts}
	if opts.DryRun {
		ao.DryRun = []string{metav1.DryRunAll}
	}
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	live, err := ri.Apply(ctx, obj.GetName(), obj, ao)
	if err != nil {
		return nil, objectError(op, obj, err)
	}
	return live, nil
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
	ri, _, err := c.Resource(ctx, obj)
	if err != nil {
		return &ObjectError{Op: "delete", Object: RefOf(obj), Err: err}
	}
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	policy := metav1.DeletePropagationBackground
	err = ri.Delete(ctx, obj.GetName(), metav1.DeleteOptions{PropagationPolicy: &policy})
	if err != nil && !apierrors.IsNotFound(err) {
		return objectError("delete", obj, err)
	}
	return nil
}

// Get reads the live form of obj; a missing object is (nil, nil).
func (c *Cluster) Get(ctx context.Context, obj *unstructured.Unstructured) (*unstructured.Unstructured, error) {
	ri, _, err := c.Resource(ctx, obj)
	if err != nil {
		return nil, &ObjectError{Op: "get", Object: RefOf(obj), Err: err}
	}
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	live, err := ri.Get(ctx, obj.GetName(), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, objectError("get", obj, err)
	}
	return live, nil
}
