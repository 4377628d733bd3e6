package kube

import (
	"bufio"
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/watch"
)

// LogLine is one line of a container's log.
type LogLine struct {
	Pod       string `json:"pod"`
	Container string `json:"container"`
	// Time is when the container wrote the line, as the kubelet stamped it.
	Time time.Time `json:"time"`
	Line string    `json:"line"`
	// Err marks a line roro wrote itself: the stream of this container failed.
	Err bool `json:"err,omitempty"`
}

// LogOptions say which lines of each log to read.
type LogOptions struct {
	// Follow keeps streaming, and picks up pods that start later.
	Follow bool
	// Tail is the number of lines from the end of each log to start with; 0 means all.
	Tail int64
	// Since starts each log this long ago; 0 means from the start.
	Since time.Duration
}

// podSelector finds the pods of one workload.
type podSelector struct {
	owner     string
	namespace string
	selector  labels.Selector
}

// podSelectors returns a selector per workload of members, and one per bare pod.
func podSelectors(members []*unstructured.Unstructured) []podSelector {
	var out []podSelector
	for _, m := range members {
		switch m.GetKind() {
		case "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job":
			ml, found, _ := unstructured.NestedStringMap(m.Object, "spec", "selector", "matchLabels")
			if !found || len(ml) == 0 {
				continue
			}
			out = append(out, podSelector{owner: Ref(m), namespace: m.GetNamespace(), selector: labels.SelectorFromSet(ml)})
		case "Pod":
			out = append(out, podSelector{owner: Ref(m), namespace: m.GetNamespace(),
				selector: labels.SelectorFromSet(labels.Set(m.GetLabels()))})
		}
	}
	return out
}

// HasPods reports whether members include a workload or a pod whose logs StreamLogs reads.
func HasPods(members []*unstructured.Unstructured) bool { return len(podSelectors(members)) > 0 }

// StreamLogs reads the logs of every container of the pods that members' workloads select
// (and members' bare pods), calling emit with each line, from many goroutines but one line at
// a time. With Follow it runs until ctx ends, adding pods as they start. It returns only
// after every stream it started has ended, so emit is never called after it returns.
func (c *Cluster) StreamLogs(ctx context.Context, members []*unstructured.Unstructured, opts LogOptions, emit func(LogLine)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var emitMu sync.Mutex
	line := func(l LogLine) {
		emitMu.Lock()
		defer emitMu.Unlock()
		if ctx.Err() == nil || !opts.Follow {
			emit(l)
		}
	}
	// Every return below waits for wg after cancelling: no stream outlives the call.
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
				err := c.streamContainer(ctx, pod, ctr.Name, opts, line)
				if err != nil && ctx.Err() == nil {
					line(LogLine{Pod: pod.Name, Container: ctr.Name, Time: time.Now(), Line: "roro: " + err.Error(), Err: true})
				}
			})
		}
	}
	errc := make(chan error, 1)
	fail := func(err error) {
		select {
		case errc <- err:
		default:
		}
		cancel()
	}
	for _, sel := range podSelectors(members) {
		lctx, lcancel := context.WithTimeout(ctx, c.Timeout)
		list, err := c.Kube.CoreV1().Pods(sel.namespace).List(lctx, metav1.ListOptions{LabelSelector: sel.selector.String()})
		lcancel()
		if err != nil {
			fail(fmt.Errorf("list pods of %s: %w", sel.owner, explain(err)))
			break
		}
		for i := range list.Items {
			if podPhaseLogs(list.Items[i].Status.Phase) {
				start(&list.Items[i])
			}
		}
		if !opts.Follow {
			continue
		}
		wch, err := c.Kube.CoreV1().Pods(sel.namespace).Watch(ctx, metav1.ListOptions{LabelSelector: sel.selector.String(), ResourceVersion: list.ResourceVersion})
		if err != nil {
			fail(fmt.Errorf("watch pods of %s: %w", sel.owner, explain(err)))
			break
		}
		wg.Go(func() {
			defer wch.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case ev, ok := <-wch.ResultChan():
					if !ok {
						if ctx.Err() == nil {
							fail(fmt.Errorf("the watch of the pods of %s ended", sel.owner))
						}
						return
					}
					if ev.Type == watch.Error {
						fail(fmt.Errorf("watch pods of %s: %v", sel.owner, ev.Object))
						return
					}
					if pod, ok := ev.Object.(*corev1.Pod); ok && ev.Type != watch.Deleted && pod.Status.Phase == corev1.PodRunning {
						start(pod)
					}
				}
			}
		})
	}
	if opts.Follow {
		select {
		case <-ctx.Done():
		case err := <-errc:
			cancel()
			wg.Wait()
			return err
		}
	}
	wg.Wait()
	select {
	case err := <-errc:
		return err
	default:
		return nil
	}
}

func (c *Cluster) streamContainer(ctx context.Context, pod *corev1.Pod, container string, opts LogOptions, emit func(LogLine)) error {
	lo := &corev1.PodLogOptions{Container: container, Follow: opts.Follow, Timestamps: true}
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
	sc := bufio.NewScanner(rc)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		emit(parseLogLine(pod.Name, container, sc.Text()))
	}
	return sc.Err()
}

// parseLogLine splits the kubelet's RFC 3339 timestamp from a log line.
func parseLogLine(pod, container, s string) LogLine {
	l := LogLine{Pod: pod, Container: container, Line: s}
	if ts, rest, ok := strings.Cut(s, " "); ok {
		if t, err := time.Parse(time.RFC3339Nano, ts); err == nil {
			l.Time, l.Line = t, rest
		}
	}
	return l
}
