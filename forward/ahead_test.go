package forward

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/httpstream"

	"github.com/rorokube/roro/internal/testcluster"
)

// dialRecord is one dial a forward made, as a recording Options.Dial saw it.
type dialRecord struct {
	pod string
	err error
}

// dialRecorder wraps a forward's dialer, recording every dial and failing the ones refuse
// picks.
type dialRecorder struct {
	mu     sync.Mutex
	dials  []dialRecord
	refuse func(pod string, n int) bool // n: the dials of pod before this one
	next   func(ctx context.Context, ns, name string) (httpstream.Connection, io.Closer, error)
}

func (r *dialRecorder) dial(ctx context.Context, ns, name string) (httpstream.Connection, io.Closer, error) {
	r.mu.Lock()
	refuse := r.refuse != nil && r.refuse(name, r.countLocked(name, false))
	r.mu.Unlock()
	var conn httpstream.Connection
	var raw io.Closer
	err := errors.New("refused by the test")
	if !refuse {
		conn, raw, err = r.next(ctx, ns, name)
	}
	r.mu.Lock()
	r.dials = append(r.dials, dialRecord{name, err})
	r.mu.Unlock()
	return conn, raw, err
}

// count is how many dials of pod have ended (only the successful ones when ok).
func (r *dialRecorder) count(pod string, ok bool) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.countLocked(pod, ok)
}

func (r *dialRecorder) countLocked(pod string, ok bool) int {
	n := 0
	for _, d := range r.dials {
		if d.pod == pod && (!ok || d.err == nil) {
			n++
		}
	}
	return n
}

// TestPodDialledBeforeItIsReady proves dialling ahead: a pod that runs but is not Ready yet
// is connected to before it is, so when it becomes Ready new connections go there with no
// dial in between; a dial ahead that fails is not retried until the pod changes.
func TestPodDialledBeforeItIsReady(t *testing.T) {
	tc := testcluster.Get(t)
	ctx := testcluster.Context(t, time.Minute)
	ns := tc.Namespace(t, "ahead")
	rec := &podRecorder{got: map[string]int64{}}
	testcluster.StartBinder(t, tc, ns, "app=replay", rec.handle)
	applyYAML(t, tc, ns, replayService)
	applyYAML(t, tc, ns, fmt.Sprintf(replayPod, "first", "replay"))
	if _, err := tc.WaitPods(ctx, ns, "app=replay", 1); err != nil {
		t.Fatal(err)
	}
	dials := &dialRecorder{next: newDialer(tc.Config, TransportAuto).dial,
		refuse: func(pod string, n int) bool { return pod == "next" && n == 0 }}
	f := startForward(t, tc, Spec{Namespace: ns, Target: "service/replay", Ports: []string{"0:tcp"}}, Options{Dial: dials.dial})
	waitState(t, f, Connected, "first")
	if err := echoOnce(addr(f), []byte("to first")); err != nil {
		t.Fatal(err)
	}
	pods := tc.Kube.CoreV1().Pods(ns)
	selectNotReady(t, ctx, tc, ns, "next")

	// The first dial ahead fails (the test refuses it): none follows while the pod is as it
	// was. A forward retrying it in a loop would dial many times in this half second.
	if err := testcluster.Poll(ctx, 5*time.Millisecond, func() (bool, error) { return dials.count("next", false) == 1, nil }); err != nil {
		t.Fatalf("next was never dialled while not Ready: %v", err)
	}
	time.Sleep(500 * time.Millisecond)
	if n := dials.count("next", false); n != 1 {
		t.Fatalf("%d dials of next before it changed, want 1 (a failed dial ahead waits for the pod to change)", n)
	}
	// A change to the pod (here an annotation) is a new chance.
	if _, err := pods.Patch(ctx, "next", types.MergePatchType, []byte(`{"metadata":{"annotations":{"roro-test/poke":"1"}}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := testcluster.Poll(ctx, 5*time.Millisecond, func() (bool, error) { return dials.count("next", true) == 1, nil }); err != nil {
		t.Fatalf("next was not dialled again after it changed: %v", err)
	}
	if st := f.Status(); st.Pod != "first" || st.State != Connected {
		t.Fatalf("while next is not Ready: %s on %q, want connected to first; events:\n%s", st.State, st.Pod, events(st))
	}

	readyAfter(t, ctx, pods, "next", "first")
	if err := testcluster.Poll(ctx, 5*time.Millisecond, func() (bool, error) { return f.Status().Pod == "next", nil }); err != nil {
		st := f.Status()
		t.Fatalf("new connections never went to next: %s on %q; events:\n%s", st.State, st.Pod, events(st))
	}
	if n := dials.count("next", false); n != 2 {
		t.Fatalf("%d dials of next, want 2 (one refused, one ahead): a Ready pod dialled ahead needs no dial", n)
	}
	if err := echoOnce(addr(f), []byte("to next")); err != nil {
		t.Fatal(err)
	}
	if rec.received("next") == 0 {
		t.Fatal("next's server received nothing")
	}
	if n := dials.count("first", false); n != 1 {
		t.Fatalf("%d dials of first, want 1", n)
	}
}

// selectNotReady brings pod name up running but not Ready behind replayService. kwok makes a
// pod Ready as soon as it runs, so it comes up unselected (app=waiting), is made not-Ready
// through its status (kwok leaves a running pod's conditions alone), and is then selected.
func selectNotReady(t *testing.T, ctx context.Context, tc *testcluster.Cluster, ns, name string) {
	t.Helper()
	applyYAML(t, tc, ns, fmt.Sprintf(replayPod, name, "waiting"))
	if _, err := tc.WaitPods(ctx, ns, "app=waiting", 1); err != nil {
		t.Fatal(err)
	}
	pods := tc.Kube.CoreV1().Pods(ns)
	setReady(t, ctx, pods, name, corev1.ConditionFalse, time.Time{})
	if _, err := pods.Patch(ctx, name, types.MergePatchType, []byte(`{"metadata":{"labels":{"app":"replay"}}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
}

// readyAfter makes pod name Ready a second after pod first became Ready: the condition's time
// has whole seconds, and the newest Ready pod takes new connections.
func readyAfter(t *testing.T, ctx context.Context, pods podStatuses, name, first string) {
	t.Helper()
	p, err := pods.Get(ctx, first, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	setReady(t, ctx, pods, name, corev1.ConditionTrue, readySince(p).Add(time.Second))
}

// podStatuses is what setReady needs of a namespace's pods.
type podStatuses interface {
	Get(context.Context, string, metav1.GetOptions) (*corev1.Pod, error)
	UpdateStatus(context.Context, *corev1.Pod, metav1.UpdateOptions) (*corev1.Pod, error)
}

// setReady sets pod's Ready and ContainersReady conditions through its status, as a kubelet
// does; at is the transition time (now when zero).
func setReady(t *testing.T, ctx context.Context, pods podStatuses, name string, status corev1.ConditionStatus, at time.Time) {
	t.Helper()
	if at.IsZero() {
		at = time.Now()
	}
	p, err := pods.Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady || c.Type == corev1.ContainersReady {
			p.Status.Conditions[i].Status = status
			p.Status.Conditions[i].LastTransitionTime = metav1.NewTime(at)
		}
	}
	if _, err := pods.UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// TestDialsResumeTLSSessions proves a forward's dials after the first resume their TLS
// session with the API server (a full handshake costs a third of a dial on the test
// cluster), on each transport.
func TestDialsResumeTLSSessions(t *testing.T) {
	tc, _, ns := echoFixture(t)
	ctx := testcluster.Context(t, time.Minute)
	pods, err := tc.WaitPods(ctx, ns, "app=echo", 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, transport := range []string{TransportWebSocket, TransportSPDY} {
		t.Run(transport, func(t *testing.T) {
			d := newDialer(tc.Config, transport)
			for i := range 3 {
				conn, raw, err := d.dial(ctx, ns, pods[0].Name)
				if err != nil {
					t.Fatal(err)
				}
				rc, ok := raw.(*rawConn)
				if !ok || rc.tls == nil {
					t.Fatalf("dial %d: no TLS connection under %T", i+1, raw)
				}
				resumed := rc.tls.ConnectionState().DidResume
				_ = raw.Close()
				_ = conn.Close()
				if want := i > 0; resumed != want {
					t.Fatalf("dial %d: resumed %v, want %v", i+1, resumed, want)
				}
			}
		})
	}
}

// TestSlowDialHoldsUpNothing: dials run in the background, so a dial that never ends (here,
// to a pod dialled ahead, held by the test's dialer until the forward stops) does not keep
// the forward from dialling and moving to another pod that becomes Ready meanwhile.
func TestSlowDialHoldsUpNothing(t *testing.T) {
	tc := testcluster.Get(t)
	ctx := testcluster.Context(t, time.Minute)
	ns := tc.Namespace(t, "slowdial")
	rec := &podRecorder{got: map[string]int64{}}
	testcluster.StartBinder(t, tc, ns, "app=replay", rec.handle)
	applyYAML(t, tc, ns, replayService)
	applyYAML(t, tc, ns, fmt.Sprintf(replayPod, "first", "replay"))
	if _, err := tc.WaitPods(ctx, ns, "app=replay", 1); err != nil {
		t.Fatal(err)
	}
	var stuck sync.WaitGroup // the dial of "stuck" has begun
	stuck.Add(1)
	real := newDialer(tc.Config, TransportAuto).dial
	dials := &dialRecorder{next: func(ctx context.Context, ns, name string) (httpstream.Connection, io.Closer, error) {
		if name == "stuck" {
			stuck.Done()
			<-ctx.Done() // until the forward stops
			return nil, nil, ctx.Err()
		}
		return real(ctx, ns, name)
	}}
	f := startForward(t, tc, Spec{Namespace: ns, Target: "service/replay", Ports: []string{"0:tcp"}}, Options{Dial: dials.dial})
	waitState(t, f, Connected, "first")

	// "stuck" runs, not Ready, and is selected: the forward dials it ahead, and that dial hangs.
	selectNotReady(t, ctx, tc, ns, "stuck")
	stuck.Wait()

	// "third" becomes Ready, the newest.
	pods := tc.Kube.CoreV1().Pods(ns)
	applyYAML(t, tc, ns, fmt.Sprintf(replayPod, "third", "replay"))
	if err := testcluster.Poll(ctx, 10*time.Millisecond, func() (bool, error) {
		p, err := pods.Get(ctx, "third", metav1.GetOptions{})
		return err == nil && testcluster.PodReady(p), nil
	}); err != nil {
		t.Fatal(err)
	}
	readyAfter(t, ctx, pods, "third", "first")
	if err := testcluster.Poll(ctx, 10*time.Millisecond, func() (bool, error) { return f.Status().Pod == "third", nil }); err != nil {
		st := f.Status()
		t.Fatalf("never moved to third while the dial of stuck hung: %s on %q; events:\n%s", st.State, st.Pod, events(st))
	}
	if n := dials.count("stuck", false); n != 0 {
		t.Fatalf("%d dials of stuck ended, want none (it hangs until the forward stops)", n)
	}
	if err := echoOnce(addr(f), []byte("to third")); err != nil {
		t.Fatal(err)
	}
	if rec.received("third") == 0 {
		t.Fatal("third's server received nothing")
	}
}
