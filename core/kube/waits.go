package kube

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

// DefaultOutageGrace is how long requests may fail during a wait before the wait gives up:
// long enough for an API server restart, short enough that a lost cluster is said in
// seconds.
const DefaultOutageGrace = 10 * time.Second

// outage tells a blip of the API server from a lost cluster during a wait.
type outage struct{ since time.Time }

// failed records a failed request; it returns the error to end the wait with once failures
// have lasted outageGrace (an *UnreachableError when the server did not answer).
func (o *outage) failed(c *Cluster, err error) error {
	if o.since.IsZero() {
		o.since = time.Now()
	}
	grace := c.OutageGrace
	if grace <= 0 {
		grace = DefaultOutageGrace
	}
	if time.Since(o.since) < grace {
		return nil
	}
	if IsUnreachable(err) {
		var u *UnreachableError
		if errors.As(err, &u) {
			return u
		}
		return &UnreachableError{Context: c.Context, Server: c.Server, Err: err}
	}
	return err
}

// NamespaceState says whether a namespace exists and whether it is being deleted.
func (c *Cluster) NamespaceState(ctx context.Context, ns string) (exists, terminating bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	live, err := c.Kube.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return false, false, nil
	}
	if err != nil {
		return false, false, fmt.Errorf("namespace %s: %w", ns, explain(err))
	}
	return true, live.DeletionTimestamp != nil, nil
}

// WaitNamespaceGone waits until a terminating namespace is deleted, up to timeout.
func (c *Cluster) WaitNamespaceGone(ctx context.Context, ns string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var down outage
	for {
		exists, _, err := c.NamespaceState(ctx, ns)
		if err == nil && !exists {
			return nil
		}
		if err != nil && ctx.Err() == nil {
			if err := down.failed(c, err); err != nil {
				return err
			}
		} else {
			down = outage{}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("namespace %s is still being deleted after %s: check what holds it (kubectl get namespace %s -o yaml)", ns, timeout, ns)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// WaitEstablished waits until a CRD serves its kinds, up to timeout, then refreshes discovery.
func (c *Cluster) WaitEstablished(ctx context.Context, name string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	crd := &unstructured.Unstructured{}
	crd.SetAPIVersion("apiextensions.k8s.io/v1")
	crd.SetKind("CustomResourceDefinition")
	crd.SetName(name)
	var down outage
	for {
		live, err := c.Get(ctx, crd)
		if err != nil && ctx.Err() == nil {
			if err := down.failed(c, err); err != nil {
				return err
			}
		} else {
			down = outage{}
		}
		if err == nil && live != nil {
			conds, _, _ := unstructured.NestedSlice(live.Object, "status", "conditions")
			for _, cond := range conds {
				if m, ok := cond.(map[string]any); ok && m["type"] == "Established" && m["status"] == "True" {
					c.Mapper.ResetWithContext(ctx)
					return nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("CRD %s was not established within %s", name, timeout)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// SharesNamespace reports whether an ApplySet other than id has its parent in ns.
func (c *Cluster) SharesNamespace(ctx context.Context, ns, id string) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	list, err := c.Kube.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{LabelSelector: LabelApplySetID})
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("list the inventories in %s: %w", ns, explain(err))
	}
	for _, s := range list.Items {
		if s.Labels[LabelApplySetID] != id {
			return true, nil
		}
	}
	return false, nil
}

// VolumeClaims lists the names of the PersistentVolumeClaims in ns.
func (c *Cluster) VolumeClaims(ctx context.Context, ns string) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	pvcs, err := c.Kube.CoreV1().PersistentVolumeClaims(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list the volume claims in %s: %w", ns, explain(err))
	}
	names := make([]string, len(pvcs.Items))
	for i, p := range pvcs.Items {
		names[i] = p.Name
	}
	return names, nil
}

// HealthChange is one object's health as a wait sees it change.
type HealthChange struct {
	Object ObjectRef
	Health Health
}

// NotHealthyError lists the objects a wait ended on: failed ones, or those still not ready
// when time ran out.
type NotHealthyError struct {
	// Failed is true when an object failed; false when the wait timed out.
	Failed  bool
	Timeout time.Duration
	Objects []HealthChange
}

func (e *NotHealthyError) Error() string {
	lines := make([]string, len(e.Objects))
	for i, o := range e.Objects {
		lines[i] = o.Object.String() + ": " + strings.TrimSpace(string(o.Health.Status)+" "+o.Health.Message)
		if e.Failed {
			lines[i] = o.Object.String() + ": " + o.Health.Message
		}
	}
	if e.Failed {
		return "not healthy:\n  " + strings.Join(lines, "\n  ")
	}
	return fmt.Sprintf("not healthy within %s; waiting on:\n  %s", e.Timeout, strings.Join(lines, "\n  "))
}

// WaitHealthy waits until every object of want is Current (kstatus) in the set of parent,
// calling onChange with each object's health when it changes. It ends with a
// *NotHealthyError when an object fails or timeout passes first.
func (c *Cluster) WaitHealthy(ctx context.Context, parent *Parent, want []*unstructured.Unstructured, timeout time.Duration, onChange func(HealthChange)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	last := map[string]status.Status{}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var down outage
	var notReady []HealthChange // as last seen
	for {
		live, err := c.Members(ctx, parent)
		if err != nil && ctx.Err() == nil {
			if err := down.failed(c, err); err != nil {
				return err
			}
		}
		if err == nil {
			down = outage{}
			byKey := map[string]*unstructured.Unstructured{}
			for _, o := range live {
				byKey[Key(o)] = o
			}
			var failed []HealthChange
			notReady = nil
			for _, w := range want {
				h := HealthOf(byKey[Key(w)])
				ch := HealthChange{Object: RefOf(w), Health: h}
				if last[Key(w)] != h.Status {
					last[Key(w)] = h.Status
					if onChange != nil {
						onChange(ch)
					}
				}
				switch h.Status {
				case status.CurrentStatus:
				case status.FailedStatus:
					failed = append(failed, ch)
				default:
					notReady = append(notReady, ch)
				}
			}
			if len(failed) > 0 {
				return &NotHealthyError{Failed: true, Objects: failed}
			}
			if len(notReady) == 0 {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			// The deadline may cut a request short: that is the timeout, not a failure of
			// the cluster; say what was not ready when last seen.
			if ctx.Err() == context.DeadlineExceeded && len(notReady) > 0 {
				return &NotHealthyError{Timeout: timeout, Objects: notReady}
			}
			if err != nil {
				return err
			}
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// restartedAt is the annotation `kubectl rollout restart` sets on a pod template.
const restartedAt = "kubectl.kubernetes.io/restartedAt"

// Restartable reports whether obj is a workload a rollout restart applies to.
func Restartable(obj *unstructured.Unstructured) bool {
	switch obj.GroupVersionKind().GroupKind().String() {
	case "Deployment.apps", "StatefulSet.apps", "DaemonSet.apps":
		return true
	}
	return false
}

// Restart does what `kubectl rollout restart` does to one workload: it stamps its pod
// template with the time, so its controller replaces the pods.
func (c *Cluster) Restart(ctx context.Context, obj *unstructured.Unstructured, at time.Time) error {
	if !Restartable(obj) {
		return &ObjectError{Op: "restart", Object: RefOf(obj), Err: errors.New("only Deployments, StatefulSets and DaemonSets restart")}
	}
	ri, _, err := c.Resource(ctx, obj)
	if err != nil {
		return &ObjectError{Op: "restart", Object: RefOf(obj), Err: err}
	}
	patch := fmt.Sprintf(`{"spec":{"template":{"metadata":{"annotations":{%q:%q}}}}}`, restartedAt, at.UTC().Format(time.RFC3339Nano))
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	if _, err := ri.Patch(ctx, obj.GetName(), types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{FieldManager: FieldManager + "-restart"}); err != nil {
		return objectError("restart", obj, err)
	}
	return nil
}

// podPhaseLogs reports whether a pod in phase has logs to read.
func podPhaseLogs(p corev1.PodPhase) bool {
	return p == corev1.PodRunning || p == corev1.PodSucceeded || p == corev1.PodFailed
}
