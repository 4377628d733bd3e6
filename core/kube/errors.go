package kube

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// ObjectRef names one object for messages and for a window that places an error on the
// object it belongs to.
type ObjectRef struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
}

// RefOf returns obj's reference.
func RefOf(obj *unstructured.Unstructured) ObjectRef {
	return ObjectRef{Kind: obj.GetKind(), Namespace: obj.GetNamespace(), Name: obj.GetName()}
}

// String is "Deployment demo-api/api", or "Namespace demo-api" for a cluster-scoped object.
func (r ObjectRef) String() string {
	if r.Namespace != "" {
		return r.Kind + " " + r.Namespace + "/" + r.Name
	}
	return r.Kind + " " + r.Name
}

// ObjectError is a failure that belongs to one object: its apply, dry run, read or deletion.
type ObjectError struct {
	// Op is what was done to the object: "apply", "dry-run", "get", "delete", "restart".
	Op     string
	Object ObjectRef
	Err    error
}

func (e *ObjectError) Error() string {
	if e.Op == "apply" || e.Op == "dry-run" {
		return e.Object.String() + ": " + e.Err.Error()
	}
	return e.Op + " " + e.Object.String() + ": " + e.Err.Error()
}

func (e *ObjectError) Unwrap() error { return e.Err }

// ConflictError is a server-side apply that another field manager's fields stopped; taking
// them over needs ForceConflicts.
type ConflictError struct{ Err error }

func (e *ConflictError) Error() string {
	return e.Err.Error() + "; another field manager owns these fields: rerun with --force-conflicts to take them over"
}

func (e *ConflictError) Unwrap() error { return e.Err }

// UnreachableError says a cluster did not answer: the context, the server and why.
type UnreachableError struct {
	Context, Server string
	Err             error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("cannot reach the cluster of context %q at %s: %v; check that it runs and that your kubeconfig points at it",
		e.Context, e.Server, e.Err)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// Reason is the short cause, for a status line: "connection refused", "no answer within 5s".
func (e *UnreachableError) Reason() string {
	var op *net.OpError
	if errors.As(e.Err, &op) && op.Err != nil {
		return op.Err.Error()
	}
	return e.Err.Error()
}

// IsUnreachable reports whether err says that a cluster did not answer: refused, timed out,
// or no route, as opposed to an answer that was a refusal.
func IsUnreachable(err error) bool {
	var u *UnreachableError
	if errors.As(err, &u) {
		return true
	}
	var op *net.OpError
	return errors.As(err, &op) || errors.Is(err, context.DeadlineExceeded) || apierrors.IsTimeout(err) ||
		apierrors.IsServerTimeout(err) || apierrors.IsServiceUnavailable(err)
}

// objectError wraps err as obj's failure, explained.
func objectError(op string, obj *unstructured.Unstructured, err error) error {
	return &ObjectError{Op: op, Object: RefOf(obj), Err: explain(err)}
}

// explain adds what to do to the API errors a user can act on.
func explain(err error) error {
	switch {
	case apierrors.IsConflict(err):
		return &ConflictError{Err: err}
	case apierrors.IsForbidden(err):
		return fmt.Errorf("forbidden: %w; ask for a Role that grants it, or use another context", err)
	case apierrors.IsUnauthorized(err):
		return fmt.Errorf("unauthorized: %w; your kubeconfig credentials were refused", err)
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("the API server did not answer in time: %w", err)
	}
	return err
}

// noAnswer turns a context deadline into a plain "no answer within" for messages.
func noAnswer(ctx context.Context, err error, timeout time.Duration) error {
	if ctx.Err() != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return &NoAnswerError{Timeout: timeout}
	}
	return err
}

// NoAnswerError is a request the API server did not answer within the timeout. It is a
// context.DeadlineExceeded, so callers can stop at once rather than ask again.
type NoAnswerError struct{ Timeout time.Duration }

func (e *NoAnswerError) Error() string { return fmt.Sprintf("no answer within %s", e.Timeout) }

// Is makes a NoAnswerError match context.DeadlineExceeded.
func (e *NoAnswerError) Is(target error) bool { return target == context.DeadlineExceeded }
