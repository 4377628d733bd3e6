package runtime

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/rorokube/roro/core/kube"
)

// LogOptions say which logs to stream.
type LogOptions struct {
	Selection
	// Follow keeps streaming, and picks up pods that start later.
	Follow bool
	// Tail is the number of lines from the end of each log to start with; 0 means all.
	Tail int64
	// Since starts each log this long ago; 0 means from the start.
	Since time.Duration
}

// Logs streams the logs of every container of an app instance's pods to w, one line at a
// time, each prefixed with [pod/container]. Pods are those selected by the instance's
// workloads (and its bare pods). With Follow it runs until ctx ends, adding pods as they
// appear.
func (r *Runtime) Logs(ctx context.Context, app string, opts LogOptions, w io.Writer) error {
	a, err := r.WS.Lookup(app)
	if err != nil {
		return err
	}
	inst, env, err := r.environmentOf(a, opts.Selection)
	if err != nil {
		return err
	}
	c, err := r.Connect(ctx, env)
	if err != nil {
		return err
	}
	parent, err := findParent(ctx, c, a.Name, inst)
	if err != nil {
		return err
	}
	if parent == nil {
		return fmt.Errorf("%s (%s) is not running: start it with `roro up %s`", a.Name, inst.Name, a.Name)
	}
	members, err := c.Members(ctx, parent)
	if err != nil {
		return err
	}
	selectors := podSelectors(members)
	if len(selectors) == 0 {
		return fmt.Errorf("%s (%s) has no workloads with pods", a.Name, inst.Name)
	}
	out := &lineWriter{w: w}
	var wg sync.WaitGroup
	var mu sync.Mutex
	streaming := map[string]bool{}
	start := func(pod *corev1.Pod) {
		containers := append(append([]corev1.Container(nil), pod.Spec.InitContainers...), pod.Spec.Containers...)
		for _, ctr := range containers {
			key := pod.Namespace + "/" + pod.Name + "/" + ctr.Name
			mu.Lock()
			seen := streaming[key]
			streaming[key] = true
			mu.Unlock()
			if seen {
				continue
			}
			wg.Go(func() {
				err := streamContainer(ctx, c, pod, ctr.Name, opts, out)
				if err != nil && ctx.Err() == nil {
					out.line(fmt.Sprintf("[%s/%s] roro: %v", pod.Name, ctr.Name, err))
				}
			})
		}
	}
	for _, sel := range selectors {
		list, err := c.Kube.CoreV1().Pods(sel.namespace).List(ctx, metav1.ListOptions{LabelSelector: sel.selector.String()})
		if err != nil {
			return fmt.Errorf("list pods of %s: %w", sel.owner, err)
		}
		for i := range list.Items {
			if list.Items[i].Status.Phase == corev1.PodRunning || list.Items[i].Status.Phase == corev1.PodSucceeded || list.Items[i].Status.Phase == corev1.PodFailed {
				start(&list.Items[i])
			}
		}
		if opts.Follow {
			wch, err := c.Kube.CoreV1().Pods(sel.namespace).Watch(ctx, metav1.ListOptions{LabelSelector: sel.selector.String(), ResourceVersion: list.ResourceVersion})
			if err != nil {
				return fmt.Errorf("watch pods of %s: %w", sel.owner, err)
			}
			wg.Go(func() {
				defer wch.Stop()
				for ev := range wch.ResultChan() {
					if pod, ok := ev.Object.(*corev1.Pod); ok && ev.Type != watch.Deleted && pod.Status.Phase == corev1.PodRunning {
						start(pod)
					}
				}
			})
		}
	}
	wg.Wait()
	return nil
}

// podSelector finds the pods of one workload.
type podSelector struct {
	owner     string
	namespace string
	selector  labels.Selector
}

// podSelectors returns a selector per workload of the instance, and one per bare pod.
func podSelectors(members []*unstructured.Unstructured) []podSelector {
	var out []podSelector
	for _, m := range members {
		switch m.GetKind() {
		case "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job":
			ml, found, _ := unstructured.NestedStringMap(m.Object, "spec", "selector", "matchLabels")
			if !found || len(ml) == 0 {
				continue
			}
			out = append(out, podSelector{owner: kube.Ref(m), namespace: m.GetNamespace(), selector: labels.SelectorFromSet(ml)})
		case "Pod":
			out = append(out, podSelector{owner: kube.Ref(m), namespace: m.GetNamespace(),
				selector: labels.SelectorFromSet(labels.Set(m.GetLabels()))})
		}
	}
	return out
}

func streamContainer(ctx context.Context, c *kube.Cluster, pod *corev1.Pod, container string, opts LogOptions, out *lineWriter) error {
	lo := &corev1.PodLogOptions{Container: container, Follow: opts.Follow}
	if opts.Tail > 0 {
		lo.TailLines = &opts.Tail
	}
	if opts.Since > 0 {
		s := int64(opts.Since.Seconds())
		lo.SinceSeconds = &s
	}
	rc, err := c.Kube.CoreV1().Pods(pod.Namespace).GetLogs(pod.Name, lo).Stream(ctx)
	if err != nil {
		return err
	}
	defer rc.Close()
	prefix := "[" + pod.Name + "/" + container + "] "
	sc := bufio.NewScanner(rc)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		out.line(prefix + sc.Text())
	}
	return sc.Err()
}

// lineWriter writes whole lines from many goroutines without interleaving them.
type lineWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lineWriter) line(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintln(l.w, s)
}
