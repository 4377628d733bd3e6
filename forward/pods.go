package forward

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
)

// resolved is what a target names: how to find its pods, and (for a service) how its ports map
// to the pods' ports.
type resolved struct {
	selector labels.Selector
	podName  string // for pod/NAME
	service  *corev1.Service
}

// resolveTarget reads the target object once, for its pod selector.
func resolveTarget(ctx context.Context, kube kubernetes.Interface, ns string, t target) (*resolved, error) {
	notFound := func(err error) error {
		if apierrors.IsNotFound(err) {
			return fmt.Errorf("%s not found in namespace %s", t, ns)
		}
		return fmt.Errorf("read %s in namespace %s: %w", t, ns, err)
	}
	switch t.kind {
	case KindPod:
		return &resolved{podName: t.name, selector: labels.Everything()}, nil
	case KindService:
		svc, err := kube.CoreV1().Services(ns).Get(ctx, t.name, metav1.GetOptions{})
		if err != nil {
			return nil, notFound(err)
		}
		if len(svc.Spec.Selector) == 0 {
			return nil, fmt.Errorf("%s has no selector: roro forwards to pods, and this service selects none", t)
		}
		return &resolved{selector: labels.SelectorFromSet(svc.Spec.Selector), service: svc}, nil
	case KindDeployment:
		d, err := kube.AppsV1().Deployments(ns).Get(ctx, t.name, metav1.GetOptions{})
		if err != nil {
			return nil, notFound(err)
		}
		sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
		return &resolved{selector: sel}, err
	case KindStatefulSet:
		s, err := kube.AppsV1().StatefulSets(ns).Get(ctx, t.name, metav1.GetOptions{})
		if err != nil {
			return nil, notFound(err)
		}
		sel, err := metav1.LabelSelectorAsSelector(s.Spec.Selector)
		return &resolved{selector: sel}, err
	}
	return nil, fmt.Errorf("unknown kind %q", t.kind)
}

// usable reports whether new connections may go to pod: Running, Ready, not terminating.
func usable(pod *corev1.Pod) bool {
	if pod.DeletionTimestamp != nil || pod.Status.Phase != corev1.PodRunning {
		return false
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// choose picks the pod new connections go to: the usable pod that became Ready last, so a
// rollout's new pod takes new connections as soon as it is Ready; among equals, the current
// one, so a stable set of replicas does not flap.
func choose(pods []*corev1.Pod, current string) *corev1.Pod {
	var ok []*corev1.Pod
	for _, p := range pods {
		if usable(p) {
			ok = append(ok, p)
		}
	}
	if len(ok) == 0 {
		return nil
	}
	sort.Slice(ok, func(i, j int) bool {
		a, b := readySince(ok[i]), readySince(ok[j])
		if !a.Equal(b) {
			return a.After(b)
		}
		if (ok[i].Name == current) != (ok[j].Name == current) {
			return ok[i].Name == current
		}
		return ok[i].Name < ok[j].Name
	})
	return ok[0]
}

func readySince(p *corev1.Pod) time.Time {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.LastTransitionTime.Time
		}
	}
	return p.CreationTimestamp.Time
}

// podPort resolves a port spec's remote side on pod: a number as is; a name through the
// service's ports (for a service) and then the pod's named container ports.
func podPort(r *resolved, pod *corev1.Pod, remote string) (int, error) {
	if r.service != nil {
		for _, sp := range r.service.Spec.Ports {
			if sp.Name == remote || strconv.Itoa(int(sp.Port)) == remote {
				return targetPort(sp.TargetPort, sp.Port, pod)
			}
		}
		if n, err := strconv.Atoi(remote); err == nil {
			return 0, fmt.Errorf("service %s has no port %d", r.service.Name, n)
		}
		return 0, fmt.Errorf("service %s has no port named %q", r.service.Name, remote)
	}
	if n, err := strconv.Atoi(remote); err == nil {
		return n, nil
	}
	return namedPort(pod, remote)
}

func targetPort(tp intstr.IntOrString, port int32, pod *corev1.Pod) (int, error) {
	switch {
	case tp.Type == intstr.Int && tp.IntVal == 0:
		return int(port), nil
	case tp.Type == intstr.Int:
		return int(tp.IntVal), nil
	}
	return namedPort(pod, tp.StrVal)
}

func namedPort(pod *corev1.Pod, name string) (int, error) {
	for _, c := range pod.Spec.Containers {
		for _, p := range c.Ports {
			if p.Name == name {
				return int(p.ContainerPort), nil
			}
		}
	}
	return 0, fmt.Errorf("pod %s has no container port named %q", pod.Name, name)
}
