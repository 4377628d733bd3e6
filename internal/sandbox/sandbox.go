// Package sandbox makes the pods of Roro's sandbox control plane (kwok: no containers) answer
// on their ports as the demo's images would, so that a forward shows, in a browser or a
// database client, which pod answered.
package sandbox

import (
	"context"
	"fmt"
	"log"
	"net"
	"net/http"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/rorokube/roro/internal/testcluster"
)

var portForwards = schema.GroupVersionResource{Group: "kwok.x-k8s.io", Version: "v1alpha1", Resource: "portforwards"}

// fieldManager marks the PortForwards the sandbox made.
const fieldManager = "roro-sandbox"

// ours reports whether the sandbox made an object (its only field manager).
func ours(managers []metav1.ManagedFieldsEntry) bool {
	for _, m := range managers {
		if m.Manager != fieldManager {
			return false
		}
	}
	return len(managers) > 0
}

// server answers one pod's port-forward streams.
type server struct {
	ln net.Listener
}

// Serve makes the pods of namespace (all when empty) answer on their ports, until ctx ends:
// each gets a local server that answers any HTTP request as the demo's echo image would
// (echoAnswer: the request, the pod's name, the env when the pod asks for it), through a
// kwok PortForward owned by the pod (kwok runs no container, so nothing else would answer).
func Serve(ctx context.Context, host, namespace string, kube kubernetes.Interface, dyn dynamic.Interface) error {
	tlsConfig, err := selfSignedTLS(time.Now()) // one certificate for every pod's HTTPS
	if err != nil {
		return fmt.Errorf("a certificate for the pods' HTTPS: %w", err)
	}
	var mu sync.Mutex
	servers := map[types.UID]*server{}
	bind := func(obj any) {
		pod, ok := obj.(*corev1.Pod)
		if !ok || pod.DeletionTimestamp != nil {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if _, ok := servers[pod.UID]; ok {
			return
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			log.Printf("listen for pod %s/%s: %v", pod.Namespace, pod.Name, err)
			return
		}
		name := pod.Namespace + "/" + pod.Name
		go func() { _ = http.Serve(newSniffListener(ln, tlsConfig), echoAnswer(pod)) }()
		pf := testcluster.PortForwardFor(pod, ln.Addr().(*net.TCPAddr))
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		// Create, never take over: a pod someone else binds (a test's binder) stays theirs; one
		// an earlier run of ours bound is bound again to this server.
		res := dyn.Resource(portForwards).Namespace(pod.Namespace)
		_, err = res.Create(actx, pf, metav1.CreateOptions{FieldManager: fieldManager})
		if apierrors.IsAlreadyExists(err) {
			live, gerr := res.Get(actx, pod.Name, metav1.GetOptions{})
			if gerr != nil || !ours(live.GetManagedFields()) {
				ln.Close()
				return
			}
			_, err = res.Apply(actx, pod.Name, pf, metav1.ApplyOptions{FieldManager: fieldManager, Force: true})
		}
		if err != nil {
			log.Printf("bind pod %s: %v", name, err)
			ln.Close()
			return
		}
		servers[pod.UID] = &server{ln: ln}
	}
	unbind := func(obj any) {
		if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = tomb.Obj
		}
		if pod, ok := obj.(*corev1.Pod); ok {
			mu.Lock()
			defer mu.Unlock()
			if s := servers[pod.UID]; s != nil {
				s.ln.Close()
				delete(servers, pod.UID)
			}
		}
	}
	factory := informers.NewSharedInformerFactoryWithOptions(kube, 0, informers.WithNamespace(namespace))
	inf := factory.Core().V1().Pods().Informer()
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: bind, UpdateFunc: func(_, o any) { bind(o) }, DeleteFunc: unbind,
	}); err != nil {
		return err
	}
	factory.Start(ctx.Done())
	log.Printf("answering for every pod of %s", host)
	<-ctx.Done()
	factory.Shutdown()
	mu.Lock()
	defer mu.Unlock()
	for _, s := range servers {
		s.ln.Close()
	}
	return nil
}
