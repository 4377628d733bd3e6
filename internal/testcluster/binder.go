package testcluster

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"
)

// portForwardResource is kwok's PortForward: it maps the port-forward streams of the pod of
// the same name to a real local address.
var portForwardResource = schema.GroupVersionResource{Group: "kwok.x-k8s.io", Version: "v1alpha1", Resource: "portforwards"}

// Handler serves one connection that a port-forward to a pod delivered to the pod's server.
type Handler func(pod string, conn net.Conn)

// Echo is a Handler that writes back every byte it reads.
func Echo(_ string, conn net.Conn) { _, _ = io.Copy(conn, conn) }

// Binder plays the kubelet's part in port-forward tests. Every pod that matches its selector
// gets its own local TCP server and a kwok PortForward (owned by the pod, so the garbage
// collector removes it with the pod) that sends the pod's port-forward streams there. When
// the pod is deleted, the Binder closes that server and resets every connection it holds, as
// a dying container does.
//
// One difference from a real kubelet remains: kwok's tunnel waits for both directions, so it
// ends a stream whose target died only when the client next writes to it (containerd ends it
// within a second). Code under test must not rely on the kubelet to end streams of deleted
// pods; roro's forwards close them on the pod's deletion themselves.
type Binder struct {
	cluster *Cluster
	ns      string
	handler Handler
	t       testing.TB

	mu      sync.Mutex
	servers map[types.UID]*PodServer
	changed chan struct{} // closed and replaced on every change of servers
}

// PodServer is the local server that stands in for one pod's ports.
type PodServer struct {
	Pod  string
	UID  types.UID
	Addr *net.TCPAddr

	ln       net.Listener
	accepted atomic.Int64
	mu       sync.Mutex
	conns    map[net.Conn]struct{}
	closed   bool
}

// Accepted counts the connections this pod's server has accepted.
func (s *PodServer) Accepted() int64 { return s.accepted.Load() }

// Open counts the connections the server holds now.
func (s *PodServer) Open() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// Closed reports whether the pod is gone and its server closed.
func (s *PodServer) Closed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

func (s *PodServer) serve(h Handler) {
	for {
		conn, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			conn.Close()
			return
		}
		s.conns[conn] = struct{}{}
		s.mu.Unlock()
		s.accepted.Add(1)
		go func() {
			h(s.Pod, conn)
			conn.Close()
			s.mu.Lock()
			delete(s.conns, conn)
			s.mu.Unlock()
		}()
	}
}

// close stops the listener and cuts every open connection.
func (s *PodServer) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	s.ln.Close()
	for c := range s.conns {
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // a reset, like a killed container
		}
		c.Close()
		delete(s.conns, c)
	}
}

// StartBinder binds every pod in ns that matches the label selector, now and later, until
// the test ends.
func StartBinder(t testing.TB, c *Cluster, ns, selector string, h Handler) *Binder {
	t.Helper()
	b := &Binder{cluster: c, ns: ns, handler: h, t: t, servers: map[types.UID]*PodServer{}, changed: make(chan struct{})}
	factory := informers.NewSharedInformerFactoryWithOptions(c.Kube, 0, informers.WithNamespace(ns),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = selector }))
	inf := factory.Core().V1().Pods().Informer()
	_, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { b.bind(obj) },
		UpdateFunc: func(_, obj any) { b.bind(obj) },
		DeleteFunc: b.unbind,
	})
	if err != nil {
		t.Fatalf("binder: %v", err)
	}
	stop := make(chan struct{})
	factory.Start(stop)
	t.Cleanup(func() {
		close(stop)
		factory.Shutdown()
		b.mu.Lock()
		defer b.mu.Unlock()
		for _, s := range b.servers {
			s.close()
		}
	})
	return b
}

func (b *Binder) bind(obj any) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	b.mu.Lock()
	_, known := b.servers[pod.UID]
	b.mu.Unlock()
	if known || pod.DeletionTimestamp != nil {
		return
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.t.Errorf("binder: listen for pod %s: %v", pod.Name, err)
		return
	}
	s := &PodServer{Pod: pod.Name, UID: pod.UID, Addr: ln.Addr().(*net.TCPAddr), ln: ln, conns: map[net.Conn]struct{}{}}
	go s.serve(b.handler)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.cluster.Apply(ctx, b.ns, PortForwardFor(pod, s.Addr)); err != nil {
		s.close()
		b.t.Errorf("binder: %v", err)
		return
	}
	b.mu.Lock()
	b.servers[pod.UID] = s
	close(b.changed)
	b.changed = make(chan struct{})
	b.mu.Unlock()
}

func (b *Binder) unbind(obj any) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	b.mu.Lock()
	s := b.servers[pod.UID]
	b.mu.Unlock()
	if s != nil {
		s.close()
	}
}

// PortForwardFor is the kwok PortForward that sends every port of pod to addr, owned by the
// pod.
func PortForwardFor(pod *corev1.Pod, addr *net.TCPAddr) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "kwok.x-k8s.io/v1alpha1",
		"kind":       "PortForward",
		"metadata": map[string]any{
			"name":      pod.Name,
			"namespace": pod.Namespace,
			"ownerReferences": []any{map[string]any{
				"apiVersion": "v1", "kind": "Pod", "name": pod.Name, "uid": string(pod.UID),
			}},
		},
		"spec": map[string]any{
			"forwards": []any{map[string]any{
				"target": map[string]any{"port": int64(addr.Port), "address": addr.IP.String()},
			}},
		},
	}}
}

// WaitBound waits until the pod named pod has its server and PortForward, and returns the server.
func (b *Binder) WaitBound(ctx context.Context, pod string) (*PodServer, error) {
	for {
		b.mu.Lock()
		changed := b.changed
		for _, s := range b.servers {
			if s.Pod == pod && !s.Closed() {
				b.mu.Unlock()
				return s, nil
			}
		}
		b.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("pod %s/%s never bound: %w", b.ns, pod, ctx.Err())
		case <-changed:
		}
	}
}

// Servers returns every pod server the binder has made, open or closed.
func (b *Binder) Servers() []*PodServer {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]*PodServer, 0, len(b.servers))
	for _, s := range b.servers {
		out = append(out, s)
	}
	return out
}
