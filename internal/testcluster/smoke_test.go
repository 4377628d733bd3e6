package testcluster

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"
	"k8s.io/client-go/util/jsonpath"
)

const smokeObjects = `
apiVersion: apps/v1
kind: Deployment
metadata:
  name: smoke
spec:
  replicas: 1
  selector:
    matchLabels: {app: smoke}
  template:
    metadata:
      labels: {app: smoke}
    spec:
      containers:
      - name: echo
        image: example.invalid/echo:1
        ports:
        - {name: echo, containerPort: 7000}
---
apiVersion: v1
kind: Service
metadata:
  name: smoke
spec:
  selector: {app: smoke}
  ports:
  - {name: echo, port: 80, targetPort: echo}
`

// TestSmoke proves the test control plane does what Roro's tests rely on: server-side apply
// of built-in and custom objects through the dynamic client, pods that reach Running, a
// custom resource field read with JSONPath, and bytes through a port-forward to a pod over
// SPDY and WebSocket, checked byte for byte against the pod's own server.
func TestSmoke(t *testing.T) {
	c := Get(t)
	ctx := Context(t, 2*time.Minute)
	ns := c.Namespace(t, "smoke")
	binder := StartBinder(t, c, ns, "app=smoke", Echo)

	c.InstallDevEnvironments(t)
	objs, err := Decode([]byte(smokeObjects + `---
apiVersion: demo.roro.dev/v1
kind: DevEnvironment
metadata:
  name: dev
spec:
  database: {host: db.smoke.svc, port: 5432}
  tokens:
  - {name: web, value: w-1}
  - {name: api, value: a-2}
`))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Apply(ctx, ns, objs...); err != nil {
		t.Fatal(err)
	}
	// Server-side apply recorded our field manager on every object.
	for _, o := range objs {
		if got := managers(o); !strings.Contains(got, FieldManager) {
			t.Errorf("%s %s: managed fields %q lack %q", o.GetKind(), o.GetName(), got, FieldManager)
		}
	}

	// JSONPath over the custom resource, read back from the server.
	cr, err := c.Dynamic.Resource(devEnvResource).Namespace(ns).Get(ctx, "dev", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := jsonPathValue(t, cr, `{.spec.tokens[?(@.name=="api")].value}`); got != "a-2" {
		t.Errorf("token api = %q, want a-2", got)
	}
	if got := jsonPathValue(t, cr, `{.spec.database.host}`); got != "db.smoke.svc" {
		t.Errorf("database host = %q, want db.smoke.svc", got)
	}

	pods, err := c.WaitPods(ctx, ns, "app=smoke", 1)
	if err != nil {
		t.Fatal(err)
	}
	pod := pods[0].Name
	server, err := binder.WaitBound(ctx, pod)
	if err != nil {
		t.Fatal(err)
	}

	for _, tr := range []struct {
		name   string
		dialer func(t *testing.T) httpstream.Dialer
	}{
		{"spdy", func(t *testing.T) httpstream.Dialer { return c.spdyDialer(t, ns, pod) }},
		{"websocket", func(t *testing.T) httpstream.Dialer { return c.websocketDialer(t, ns, pod) }},
	} {
		t.Run(tr.name, func(t *testing.T) {
			before := server.Accepted()
			local := forward(t, tr.dialer(t), 7000)
			payload := make([]byte, 4<<20)
			if _, err := rand.Read(payload); err != nil {
				t.Fatal(err)
			}
			got := roundTrip(t, local, payload)
			if !bytes.Equal(got, payload) {
				t.Fatalf("echoed %d bytes differ from the %d sent (first difference at %d)", len(got), len(payload), firstDiff(got, payload))
			}
			if n := server.Accepted() - before; n != 1 {
				t.Errorf("pod %s's server accepted %d connections, want 1", pod, n)
			}
		})
	}
}

var devEnvResource = schema.GroupVersionResource{Group: "demo.roro.dev", Version: "v1", Resource: "devenvironments"}

func managers(o *unstructured.Unstructured) string {
	var names []string
	for _, m := range o.GetManagedFields() {
		names = append(names, m.Manager)
	}
	return strings.Join(names, ",")
}

func jsonPathValue(t *testing.T, obj *unstructured.Unstructured, expr string) string {
	t.Helper()
	jp := jsonpath.New("value")
	if err := jp.Parse(expr); err != nil {
		t.Fatalf("parse %s: %v", expr, err)
	}
	var buf bytes.Buffer
	if err := jp.Execute(&buf, obj.Object); err != nil {
		t.Fatalf("execute %s: %v", expr, err)
	}
	return buf.String()
}

func (c *Cluster) portForwardURL(ns, pod string) *url.URL {
	return c.Kube.CoreV1().RESTClient().Post().Resource("pods").Namespace(ns).Name(pod).SubResource("portforward").URL()
}

func (c *Cluster) spdyDialer(t *testing.T, ns, pod string) httpstream.Dialer {
	rt, upgrader, err := spdy.RoundTripperFor(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	return spdy.NewDialer(upgrader, &http.Client{Transport: rt}, http.MethodPost, c.portForwardURL(ns, pod))
}

func (c *Cluster) websocketDialer(t *testing.T, ns, pod string) httpstream.Dialer {
	d, err := portforward.NewSPDYOverWebsocketDialer(c.portForwardURL(ns, pod), c.Config)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// forward starts client-go's forwarder to remote port and returns the local address.
func forward(t *testing.T, d httpstream.Dialer, remote int) string {
	t.Helper()
	stop, ready := make(chan struct{}), make(chan struct{})
	pf, err := portforward.NewOnAddresses(d, []string{"127.0.0.1"}, []string{fmt.Sprintf("0:%d", remote)}, stop, ready, io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- pf.ForwardPorts() }()
	t.Cleanup(func() { close(stop); <-errc })
	select {
	case <-ready:
	case err := <-errc:
		t.Fatalf("port-forward ended before ready: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("port-forward not ready after 30 s")
	}
	ports, err := pf.GetPorts()
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("127.0.0.1:%d", ports[0].Local)
}

// roundTrip writes payload to addr, half-closes, and returns everything read back.
func roundTrip(t *testing.T, addr string, payload []byte) []byte {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(time.Minute))
	werr := make(chan error, 1)
	go func() {
		_, err := conn.Write(payload)
		if err == nil {
			err = conn.(*net.TCPConn).CloseWrite()
		}
		werr <- err
	}()
	got := make([]byte, 0, len(payload))
	buf := make([]byte, 64<<10)
	for len(got) < len(payload) {
		n, err := conn.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			break
		}
	}
	if err := <-werr; err != nil {
		t.Fatalf("write: %v", err)
	}
	return got
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
