package kube

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"sort"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/remotecommand"
	streamhttp "k8s.io/streaming/pkg/httpstream"
)

// ReadyPod is the first Ready pod, by name, that members' workloads select (or one of
// members' bare pods): where `roro exec` runs.
func (c *Cluster) ReadyPod(ctx context.Context, members []*unstructured.Unstructured) (*corev1.Pod, error) {
	var ready []corev1.Pod
	for _, sel := range podSelectors(members) {
		lctx, cancel := context.WithTimeout(ctx, c.Timeout)
		list, err := c.Kube.CoreV1().Pods(sel.namespace).List(lctx, metav1.ListOptions{LabelSelector: sel.selector.String()})
		cancel()
		if err != nil {
			return nil, fmt.Errorf("list pods of %s: %w", sel.owner, explain(err))
		}
		for _, p := range list.Items {
			if p.DeletionTimestamp == nil && podReady(&p) {
				ready = append(ready, p)
			}
		}
	}
	if len(ready) == 0 {
		return nil, errors.New("no pod is Ready: wait for the app to be healthy (roro ps)")
	}
	sort.Slice(ready, func(i, j int) bool { return ready[i].Name < ready[j].Name })
	return &ready[0], nil
}

var exitStatusRe = regexp.MustCompile(`exit status (\d+)$`)

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// ExitError is a command run in a container that ended with a non-zero status.
type ExitError struct{ Code int }

func (e *ExitError) Error() string { return fmt.Sprintf("the command exited with status %d", e.Code) }

// ExecIO is what a command run in a container is connected to, as kubectl exec's -i and -t
// connect it.
type ExecIO struct {
	// Stdin is passed to the command; nil passes none (kubectl exec without -i).
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// TTY gives the command a terminal (kubectl exec -t): its stderr then comes on Stdout,
	// and Sizes (may be nil) tells the terminal's size as it changes.
	TTY   bool
	Sizes remotecommand.TerminalSizeQueue
}

// Exec runs command in container of pod (its first container when empty), connected to streams,
// over WebSocket and else SPDY, as kubectl exec does. A command that ends with a non-zero
// status is an *ExitError.
func (c *Cluster) Exec(ctx context.Context, pod *corev1.Pod, container string, command []string, streams ExecIO) error {
	if container == "" {
		container = pod.Spec.Containers[0].Name
	}
	stderr := streams.Stderr
	if streams.TTY {
		stderr = nil // a terminal has one output
	}
	req := c.Kube.CoreV1().RESTClient().Post().Resource("pods").Namespace(pod.Namespace).Name(pod.Name).SubResource("exec").
		VersionedParams(&corev1.PodExecOptions{Container: container, Command: command, Stdin: streams.Stdin != nil, Stdout: true, Stderr: stderr != nil, TTY: streams.TTY}, scheme.ParameterCodec)
	ws, err := remotecommand.NewWebSocketExecutor(c.Config, http.MethodGet, req.URL().String())
	if err != nil {
		return err
	}
	spdy, err := remotecommand.NewSPDYExecutor(c.Config, http.MethodPost, req.URL())
	if err != nil {
		return err
	}
	exec, err := remotecommand.NewFallbackExecutor(ws, spdy, func(err error) bool {
		// client-go's WebSocket executor reports a refused upgrade as k8s.io/streaming's
		// UpgradeFailureError (kubectl checks that one); older paths, apimachinery's.
		return streamhttp.IsUpgradeFailure(err) || streamhttp.IsHTTPSProxyError(err) ||
			httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err)
	})
	if err != nil {
		return err
	}
	err = exec.StreamWithContext(ctx, remotecommand.StreamOptions{Stdin: streams.Stdin, Stdout: streams.Stdout, Stderr: stderr, Tty: streams.TTY, TerminalSizeQueue: streams.Sizes})
	var code interface{ ExitStatus() int }
	if errors.As(err, &code) {
		return &ExitError{Code: code.ExitStatus()}
	}
	// Runtimes that report the status only in words (kwok's local exec: "… exit status 4").
	if err != nil {
		if m := exitStatusRe.FindStringSubmatch(err.Error()); m != nil {
			n, _ := strconv.Atoi(m[1])
			return &ExitError{Code: n}
		}
	}
	if err != nil {
		return fmt.Errorf("exec in %s/%s (%s): %w", pod.Namespace, pod.Name, container, explain(err))
	}
	return nil
}
