package runtime

import (
	"errors"
	"fmt"
	"strings"

	"github.com/rorokube/roro/core/kube"
)

// AppError is a failure of one app's part of an operation; Err keeps its type (a
// *kube.ObjectError, a *kube.ConflictError, a *kube.UnreachableError, a render error…).
type AppError struct {
	App string
	Err error
}

func (e *AppError) Error() string {
	msg := e.Err.Error()
	if j, ok := e.Err.(interface{ Unwrap() []error }); ok && len(j.Unwrap()) > 1 {
		msg = ""
		for _, x := range j.Unwrap() {
			msg += "\n  " + indent(x.Error())
		}
		return "app " + e.App + ":" + msg
	}
	return "app " + e.App + ": " + msg
}

func (e *AppError) Unwrap() error { return e.Err }

// NotRunningError says an instance is not deployed where roro looked.
type NotRunningError struct{ Instance InstanceKey }

func (e *NotRunningError) Error() string {
	return fmt.Sprintf("%s (%s) is not running: start it with `roro up %s`", e.Instance.App, instanceName(e.Instance.Instance), e.Instance.App)
}

// BusyError refuses an operation on an instance another operation is working on.
type BusyError struct {
	Instance InstanceKey
	// Running is the operation that holds the instance.
	Running OperationKind
	ID      uint64
}

func (e *BusyError) Error() string {
	return fmt.Sprintf("%s is busy: %s #%d is running on it; wait for it to end or cancel it", e.Instance, e.Running, e.ID)
}

// ErrClosed is returned by an Engine's calls after Close.
var ErrClosed = errors.New("the engine is closed")

// errNoGit is a history, change or sync call on an engine given no Repo.
var errNoGit = errors.New("this workspace has no git history here: it is not a git repository (roro init makes one; or run git init in it)")

// DryRunError says the server refused objects in the dry run, so nothing was applied.
type DryRunError struct{ Err error }

func (e *DryRunError) Error() string {
	return "the dry run failed, nothing was applied:" + joinErrs(e.Err)
}

func (e *DryRunError) Unwrap() error { return e.Err }

// FoundationError says that creating the namespaces and CRDs an up needs failed, or the dry
// run of the objects that had to wait for them: nothing else was applied, and what this up
// had created was removed again, but for Left.
type FoundationError struct {
	// DryRun is true when the server refused objects in the dry run that followed.
	DryRun bool
	// Created is nonzero when this up had created namespaces or CRDs; Left lists those
	// that could not be removed again.
	Created int
	Left    []kube.ObjectRef
	Err     error
}

func (e *FoundationError) Error() string {
	head := "creating the namespaces and CRDs failed; nothing else was applied"
	if e.DryRun {
		head = "the dry run failed; nothing was applied"
	}
	switch {
	case len(e.Left) > 0:
		refs := make([]string, len(e.Left))
		for i, r := range e.Left {
			refs[i] = r.String()
		}
		head += ", but these, which this up created, could not be removed again (delete them yourself): " + strings.Join(refs, ", ")
	case e.Created > 0:
		head += ", and the namespaces and CRDs this up created were removed again"
	}
	return head + ":" + joinErrs(e.Err)
}

func (e *FoundationError) Unwrap() error { return e.Err }

func instanceName(s string) string {
	if s == "" {
		return "default"
	}
	return s
}

// joinErrs lists errors joined with errors.Join one per indented line.
func joinErrs(err error) string {
	var out string
	for _, e := range splitJoined(err) {
		out += "\n  " + indent(e.Error())
	}
	return out
}

func indent(s string) string { return strings.ReplaceAll(s, "\n", "\n  ") }

// splitJoined undoes errors.Join, recursively, so each problem stands alone.
func splitJoined(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, splitJoined(e)...)
		}
		return out
	}
	if d, ok := err.(*DryRunError); ok {
		return splitJoined(d.Err)
	}
	if f, ok := err.(*FoundationError); ok {
		return splitJoined(f.Err)
	}
	if a, ok := err.(*AppError); ok {
		if j, ok := a.Err.(interface{ Unwrap() []error }); ok {
			var out []error
			for _, e := range j.Unwrap() {
				for _, x := range splitJoined(e) {
					out = append(out, &AppError{App: a.App, Err: x})
				}
			}
			return out
		}
	}
	return []error{err}
}

// Problems lists every single problem in err, each with its app when it has one: the
// typed errors a window places on the object they belong to.
func Problems(err error) []error { return splitJoined(err) }

// UnreachableAppsError is one cluster that could not be reached, and the apps nothing was
// done for because of it: said once rather than once an app.
type UnreachableAppsError struct {
	Err  *kube.UnreachableError
	Apps []string
}

func (e *UnreachableAppsError) Error() string {
	return fmt.Sprintf("%v (nothing was done for %s)", e.Err, strings.Join(e.Apps, ", "))
}

func (e *UnreachableAppsError) Unwrap() error { return e.Err }

// sayUnreachableOnce folds the apps' errors that are the same unreachable cluster into one
// UnreachableAppsError each; the other errors stay as they are, in order.
func sayUnreachableOnce(err error) error {
	problems := splitJoined(err)
	if len(problems) < 2 {
		return err
	}
	var out []error
	seen := map[string]*UnreachableAppsError{}
	for _, p := range problems {
		var ae *AppError
		var ue *kube.UnreachableError
		if errors.As(p, &ae) && errors.As(ae.Err, &ue) {
			if u, ok := seen[ue.Error()]; ok {
				u.Apps = append(u.Apps, ae.App)
				continue
			}
			u := &UnreachableAppsError{Err: ue, Apps: []string{ae.App}}
			seen[ue.Error()] = u
			out = append(out, u)
			continue
		}
		out = append(out, p)
	}
	if len(out) == len(problems) {
		return err
	}
	return errors.Join(out...)
}
