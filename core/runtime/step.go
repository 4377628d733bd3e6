package runtime

import (
	"fmt"
	"time"

	"github.com/rorokube/roro/core/kube"
	"github.com/rorokube/roro/core/workspace"
)

// Step is the kind of one step of an operation, a closed set a frontend can switch on.
type Step string

// The steps of up, down and restart, in about the order they happen.
const (
	// StepRunning: a dependency is already up and stays as it is.
	StepRunning Step = "running"
	// StepRender: the instance is rendered, with its env resolved.
	StepRender Step = "render"
	// StepDryRun: the server admitted every object without persisting it.
	StepDryRun Step = "dry-run"
	// StepCreate: a namespace or CRD was created.
	StepCreate Step = "create"
	// StepUndo: something this operation created was removed again after a later failure.
	StepUndo Step = "undo"
	// StepApply: the objects were applied.
	StepApply Step = "apply"
	// StepPrune: an object the instance no longer renders was deleted.
	StepPrune Step = "prune"
	// StepKept: an object that would go was kept (volumes, CRDs, foreign namespaces).
	StepKept Step = "kept"
	// StepWait: an object is not healthy yet (its kstatus message).
	StepWait Step = "wait"
	// StepReady: every object is healthy.
	StepReady Step = "ready"
	// StepForward: the instance's forwards started.
	StepForward Step = "forward"
	// StepDown: the instance is being taken down.
	StepDown Step = "down"
	// StepDelete: an object was deleted.
	StepDelete Step = "delete"
	// StepRestart: a workload's pods are being replaced.
	StepRestart Step = "restart"
	// StepWarning: something went wrong that did not stop the operation.
	StepWarning Step = "warning"
	// StepFailed: the instance's part of the operation failed (the error is in Err).
	StepFailed Step = "failed"
)

// Event is one step of an operation, for progress output and the operation log.
type Event struct {
	At            time.Time
	App, Instance string
	Step          Step
	// Object is the object the step is about, when it is about one.
	Object *kube.ObjectRef
	// Message says what happened, for people.
	Message string
}

func (e Event) String() string {
	who := e.App
	if e.Instance != "" && e.Instance != workspace.DefaultInstance {
		who += "[" + e.Instance + "]"
	}
	return fmt.Sprintf("%-14s %-8s %s", who, e.Step, e.Message)
}

// Reporter receives the events of an operation as they happen; it must not block for long.
type Reporter func(Event)

// emit reports e when report is set.
func (report Reporter) emit(e Event) {
	if report != nil {
		report(e)
	}
}

// objectEvent is an event about one object, its reference as the message.
func objectEvent(app, instance string, step Step, ref kube.ObjectRef, note string) Event {
	msg := ref.String()
	if note != "" {
		msg += note
	}
	return Event{App: app, Instance: instance, Step: step, Object: &ref, Message: msg}
}
