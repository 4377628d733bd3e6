package testcluster

import (
	"errors"
	"io"
	"net"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestBinderFollowsPods checks the binder behaves like a kubelet for port-forward tests:
// each pod gets its own server and a PortForward owned by the pod; deleting the pod cuts the
// open stream and the garbage collector removes the PortForward; the replacement pod gets a
// server of its own.
func TestBinderFollowsPods(t *testing.T) {
	c := Get(t)
	ctx := Context(t, 2*time.Minute)
	ns := c.Namespace(t, "binder")
	binder := StartBinder(t, c, ns, "app=smoke", Echo)
	objs, err := Decode([]byte(smokeObjects))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Apply(ctx, ns, objs...); err != nil {
		t.Fatal(err)
	}
	pods, err := c.WaitPods(ctx, ns, "app=smoke", 1)
	if err != nil {
		t.Fatal(err)
	}
	first := pods[0]
	server, err := binder.WaitBound(ctx, first.Name)
	if err != nil {
		t.Fatal(err)
	}
	pf, err := c.Dynamic.Resource(portForwardResource).Namespace(ns).Get(ctx, first.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("PortForward for pod %s: %v", first.Name, err)
	}
	if owners := pf.GetOwnerReferences(); len(owners) != 1 || owners[0].UID != first.UID {
		t.Errorf("PortForward owners %+v, want pod %s (%s)", owners, first.Name, first.UID)
	}

	local := forward(t, c.spdyDialer(t, ns, first.Name), 7000)
	conn, err := net.DialTimeout("tcp", local, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("echo through the pod: %q, %v", buf, err)
	}

	zero := int64(0)
	if err := c.Kube.CoreV1().Pods(ns).Delete(ctx, first.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
		t.Fatal(err)
	}
	if err := Poll(ctx, 10*time.Millisecond, func() (bool, error) { return server.Closed(), nil }); err != nil {
		t.Fatalf("the deleted pod's server is still open: %v", err)
	}
	if n := server.Open(); n != 0 {
		t.Errorf("the deleted pod's server still holds %d connections", n)
	}
	// kwok's tunnel notices the dead target on the client's next write (see Binder), then
	// the stream ends with EOF or a reset; it does not hang.
	_, _ = conn.Write([]byte("x"))
	_, err = conn.Read(buf)
	var nerr net.Error
	if err == nil || (errors.As(err, &nerr) && nerr.Timeout()) {
		t.Fatalf("read on a deleted pod's stream: %v, want EOF or reset", err)
	}

	err = Poll(ctx, 100*time.Millisecond, func() (bool, error) {
		_, err := c.Dynamic.Resource(portForwardResource).Namespace(ns).Get(ctx, first.Name, metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	if err != nil {
		t.Errorf("the deleted pod's PortForward was not garbage-collected: %v", err)
	}

	var next string
	err = Poll(ctx, 50*time.Millisecond, func() (bool, error) {
		pods, err := c.WaitPods(ctx, ns, "app=smoke", 1)
		if err != nil {
			return false, err
		}
		for _, p := range pods {
			if p.UID != first.UID {
				next = p.Name
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	replacement, err := binder.WaitBound(ctx, next)
	if err != nil {
		t.Fatal(err)
	}
	if replacement.Addr.String() == server.Addr.String() || replacement.Closed() {
		t.Errorf("replacement pod %s: server %s (closed %v), first server %s", next, replacement.Addr, replacement.Closed(), server.Addr)
	}
	if got := roundTrip(t, forward(t, c.spdyDialer(t, ns, next), 7000), []byte("pong")); string(got) != "pong" {
		t.Errorf("echo through the replacement pod: %q", got)
	}
}
