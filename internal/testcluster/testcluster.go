// Package testcluster gives Go tests clients for Roro's local test control plane: the
// etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok processes that
// `ci/cluster up` starts on 127.0.0.1 (and `ci/just test` starts for every test run).
//
// A test that needs the cluster calls Get. Without one, the test fails when CI=true and
// skips with a one-line reason otherwise, so `go test ./...` stays useful on a laptop.
package testcluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/rand"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"
)

// EnvKubeconfig names the variable that holds the test cluster's kubeconfig path;
// `ci/cluster env` prints it.
const EnvKubeconfig = "RORO_TEST_KUBECONFIG"

// FieldManager is the server-side-apply field manager of objects tests create through Apply.
const FieldManager = "roro-test"

// Cluster is a connection to the test control plane.
type Cluster struct {
	// Kubeconfig is the path of the cluster's kubeconfig file.
	Kubeconfig string
	Config     *rest.Config
	Kube       kubernetes.Interface
	Dynamic    dynamic.Interface
	// Mapper maps kinds to resources; Apply resets it when a kind is new (a fresh CRD).
	Mapper meta.ResettableRESTMapper
}

// Get returns a connection to the test cluster named by RORO_TEST_KUBECONFIG, after checking
// that its API server answers. Without a cluster the test fails when CI=true and skips
// otherwise.
func Get(t testing.TB) *Cluster {
	t.Helper()
	c, err := connect(os.Getenv(EnvKubeconfig))
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("test cluster required (CI=true): %v", err)
		}
		t.Skipf("no test cluster (%v); run `ci/just test`, or `ci/cluster up` and `eval $(ci/cluster env)`", err)
	}
	return c
}

func connect(kubeconfig string) (*Cluster, error) {
	if kubeconfig == "" {
		return nil, fmt.Errorf("%s is not set", EnvKubeconfig)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", kubeconfig, err)
	}
	cfg.QPS, cfg.Burst = 200, 400
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := kube.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx); err != nil {
		return nil, fmt.Errorf("API server of %s not ready: %w", kubeconfig, err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(kube.Discovery()))
	return &Cluster{Kubeconfig: kubeconfig, Config: cfg, Kube: kube, Dynamic: dyn, Mapper: mapper}, nil
}

// Context returns a context that ends after d or when the test ends.
func Context(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// UniqueName returns prefix with a random suffix: a namespace name no other test, run or
// person on the shared cluster uses, for a test whose code under test creates it.
func UniqueName(prefix string) string { return prefix + "-" + rand.String(5) }

// Namespace creates a namespace with a unique name that starts with prefix, and deletes it
// when the test ends. It returns once the namespace's default ServiceAccount exists: until
// kube-controller-manager makes it, the API server refuses every bare pod created there.
func (c *Cluster) Namespace(t testing.TB, prefix string) string {
	t.Helper()
	ctx := Context(t, 30*time.Second)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: UniqueName(prefix)}}
	if _, err := c.Kube.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create namespace %s: %v", ns.Name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		err := c.Kube.CoreV1().Namespaces().Delete(ctx, ns.Name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			t.Logf("delete namespace %s: %v", ns.Name, err)
		}
	})
	if err := Poll(ctx, 20*time.Millisecond, func() (bool, error) {
		_, err := c.Kube.CoreV1().ServiceAccounts(ns.Name).Get(ctx, "default", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		return err == nil, err
	}); err != nil {
		t.Fatalf("namespace %s: no default ServiceAccount: %v", ns.Name, err)
	}
	return ns.Name
}

// Apply server-side-applies objects in order (field manager FieldManager, conflicts forced).
// Objects without a namespace that are namespaced go into ns.
func (c *Cluster) Apply(ctx context.Context, ns string, objs ...*unstructured.Unstructured) error {
	for _, obj := range objs {
		if err := c.applyOne(ctx, ns, obj); err != nil {
			return fmt.Errorf("apply %s %s: %w", obj.GetKind(), obj.GetName(), err)
		}
	}
	return nil
}

func (c *Cluster) applyOne(ctx context.Context, ns string, obj *unstructured.Unstructured) error {
	ri, err := c.Resource(obj, ns)
	if err != nil {
		return err
	}
	applied, err := ri.Apply(ctx, obj.GetName(), obj, metav1.ApplyOptions{FieldManager: FieldManager, Force: true})
	if err != nil {
		return err
	}
	obj.Object = applied.Object
	return nil
}

// Resource returns the dynamic client for obj's kind, namespaced to obj's namespace (or ns)
// when the kind is namespaced. A kind unknown to the cached discovery triggers one refresh.
func (c *Cluster) Resource(obj *unstructured.Unstructured, ns string) (dynamic.ResourceInterface, error) {
	gvk := obj.GroupVersionKind()
	mapping, err := c.Mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if meta.IsNoMatchError(err) {
		c.Mapper.Reset()
		mapping, err = c.Mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	}
	if err != nil {
		return nil, err
	}
	if mapping.Scope.Name() != meta.RESTScopeNameNamespace {
		return c.Dynamic.Resource(mapping.Resource), nil
	}
	if obj.GetNamespace() == "" {
		obj.SetNamespace(ns)
	}
	return c.Dynamic.Resource(mapping.Resource).Namespace(obj.GetNamespace()), nil
}

// Decode splits multi-document YAML or JSON into objects.
func Decode(data []byte) ([]*unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var objs []*unstructured.Unstructured
	for {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return objs, nil
			}
			return nil, err
		}
		if len(m) == 0 {
			continue
		}
		objs = append(objs, &unstructured.Unstructured{Object: m})
	}
}

// ApplyFile decodes a YAML or JSON file and applies its objects in order.
func (c *Cluster) ApplyFile(ctx context.Context, ns, path string) ([]*unstructured.Unstructured, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	objs, err := Decode(data)
	if err != nil {
		return nil, fmt.Errorf("decode %s: %w", path, err)
	}
	return objs, c.Apply(ctx, ns, objs...)
}

// WaitCRDEstablished waits until the named CustomResourceDefinition serves its kinds.
func (c *Cluster) WaitCRDEstablished(ctx context.Context, name string) error {
	gvr := crdResource
	return Poll(ctx, 50*time.Millisecond, func() (bool, error) {
		crd, err := c.Dynamic.Resource(gvr).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, unlessRetryable(err)
		}
		conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
		for _, cond := range conds {
			m, _ := cond.(map[string]any)
			if m["type"] == "Established" && m["status"] == "True" {
				return true, nil
			}
		}
		return false, nil
	})
}

// WaitPods waits until n pods matching selector in ns are Running and Ready, and returns them.
func (c *Cluster) WaitPods(ctx context.Context, ns, selector string, n int) ([]corev1.Pod, error) {
	var ready []corev1.Pod
	err := Poll(ctx, 50*time.Millisecond, func() (bool, error) {
		list, err := c.Kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
		if err != nil {
			return false, unlessRetryable(err)
		}
		ready = ready[:0]
		for _, p := range list.Items {
			if p.DeletionTimestamp == nil && p.Status.Phase == corev1.PodRunning && PodReady(&p) {
				ready = append(ready, p)
			}
		}
		return len(ready) >= n, nil
	})
	if err != nil {
		return nil, fmt.Errorf("wait for %d ready pods %q in %s (have %d): %w", n, selector, ns, len(ready), err)
	}
	return ready, nil
}

// PodReady reports whether the pod's Ready condition is True.
func PodReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// Poll calls cond every interval until it returns true or an error, or ctx ends.
func Poll(ctx context.Context, interval time.Duration, cond func() (bool, error)) error {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		ok, err := cond()
		if err != nil || ok {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// unlessRetryable turns an API error into nil when it is worth retrying (not found yet, timeouts),
// so Poll keeps waiting, and keeps it otherwise.
func unlessRetryable(err error) error {
	if apierrors.IsNotFound(err) || apierrors.IsTimeout(err) || apierrors.IsServerTimeout(err) ||
		apierrors.IsTooManyRequests(err) || strings.Contains(err.Error(), "connection refused") {
		return nil
	}
	return err
}

var crdResource = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
