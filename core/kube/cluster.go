// Package kube talks to clusters for roro: connection through kubeconfig contexts,
// server-side apply and dry run, ApplySet inventories and pruning, deletion, health with
// kstatus, and env read from objects with JSONPath. It knows nothing about the UI.
package kube

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sort"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"
)

// FieldManager is roro's server-side-apply field manager.
const FieldManager = "roro"

// DefaultTimeout bounds one request to the API server, and how long Connect waits for a
// cluster that does not answer.
const DefaultTimeout = 5 * time.Second

// ConnectOptions says which cluster to talk to, the way kubectl does.
type ConnectOptions struct {
	// Kubeconfig is a kubeconfig path; empty follows KUBECONFIG, then ~/.kube/config.
	Kubeconfig string
	// Context is the kubeconfig context; empty means the current one.
	Context string
	// Timeout bounds each request and the reachability check; default DefaultTimeout.
	Timeout time.Duration
	// Warnings receives the API server's warnings as kubectl prints them ("Warning: …",
	// each once); nil leaves client-go's default.
	Warnings io.Writer
}

// Cluster is a connection to one cluster.
type Cluster struct {
	// Context is the kubeconfig context in use, and Server the API server's URL.
	Context, Server string
	// Config has no overall request timeout (watches and log streams run long); Kube and
	// Dynamic calls are bounded by their context, which roro's callers always set.
	Config  *rest.Config
	Kube    kubernetes.Interface
	Dynamic dynamic.Interface
	Mapper  meta.ResettableRESTMapperWithContext
	Timeout time.Duration
	// OutageGrace is how long requests may fail during a wait (for health, a namespace, a
	// CRD) before it ends with the failure; default DefaultOutageGrace.
	OutageGrace time.Duration
	http        *http.Client
	dial        *dialer
}

// Connect loads the kubeconfig, builds clients and checks the API server answers within the
// timeout, so an unreachable cluster is a clear error, never a hang.
func Connect(ctx context.Context, opts ConnectOptions) (*Cluster, error) {
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if opts.Kubeconfig != "" {
		if _, err := os.Stat(opts.Kubeconfig); errors.Is(err, os.ErrNotExist) {
			return nil, &UnreachableError{Context: opts.Context, Server: opts.Kubeconfig,
				Err: fmt.Errorf("kubeconfig %s does not exist (yet: a cluster that is starting writes it)", opts.Kubeconfig)}
		}
		rules.ExplicitPath = opts.Kubeconfig
	}
	loader := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: opts.Context})
	raw, err := loader.RawConfig()
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig: %w", err)
	}
	name := opts.Context
	if name == "" {
		name = raw.CurrentContext
	}
	if _, ok := raw.Contexts[name]; !ok {
		if name == "" {
			return nil, errors.New("no kubeconfig context is set: pass --context, or set one with `kubectl config use-context`")
		}
		return nil, fmt.Errorf("kubeconfig has no context %q", name)
	}
	cfg, err := loader.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig context %s: %w", name, err)
	}
	cfg.QPS, cfg.Burst = 100, 200
	dial := &dialer{d: &net.Dialer{Timeout: opts.Timeout, KeepAlive: 30 * time.Second}}
	cfg.Dial = dial.DialContext
	cfg.UserAgent = "roro"
	if opts.Warnings != nil {
		cfg.WarningHandler = rest.NewWarningWriter(opts.Warnings, rest.WarningWriterOptions{Deduplicate: true})
	}
	c, err := newCluster(cfg, opts.Timeout)
	if err != nil {
		return nil, err
	}
	c.Context, c.dial = name, dial
	if err := c.Ping(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// NewCluster builds clients for cfg without checking that the API server answers (Connect
// does); each request is bounded by timeout.
func NewCluster(cfg *rest.Config, timeout time.Duration) (*Cluster, error) {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	return newCluster(cfg, timeout)
}

func newCluster(cfg *rest.Config, timeout time.Duration) (*Cluster, error) {
	// One HTTP client for both clients, so Close can drop its connections.
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, err
	}
	kube, err := kubernetes.NewForConfigAndClient(cfg, hc)
	if err != nil {
		return nil, err
	}
	dyn, err := dynamic.NewForConfigAndClient(cfg, hc)
	if err != nil {
		return nil, err
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(kube.Discovery()))
	return &Cluster{Server: cfg.Host, Config: cfg, Kube: kube, Dynamic: dyn, Mapper: mapper, Timeout: timeout, http: hc}, nil
}

// Close ends the cluster's connections to the API server; call it once nothing uses the
// cluster any more (its watches, streams and forwards have ended). Later calls fail.
func (c *Cluster) Close() {
	if c.http != nil {
		// client-go wraps the transport in round trippers; this reaches the one beneath.
		utilnet.CloseIdleConnectionsFor(c.http.Transport)
	}
	if c.dial != nil {
		c.dial.closeAll()
	}
}

// Ping checks the API server answers /readyz within the timeout.
func (c *Cluster) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	if _, err := c.Kube.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx); err != nil {
		return &UnreachableError{Context: c.Context, Server: c.Server, Err: noAnswer(ctx, err, c.Timeout)}
	}
	return nil
}

// NotServedError is a kind the cluster does not serve (yet: its CRD may come with this up).
type NotServedError struct{ Kind schema.GroupVersionKind }

func (e *NotServedError) Error() string {
	return fmt.Sprintf("the cluster does not serve %s (is its CRD installed?)", e.Kind)
}

// Mapping returns how obj's kind maps to a resource, refreshing discovery once when the kind
// is new (a CRD applied a moment ago). Discovery is bounded by the timeout, as every request.
func (c *Cluster) Mapping(ctx context.Context, obj *unstructured.Unstructured) (*meta.RESTMapping, error) {
	gvk := obj.GroupVersionKind()
	m, err := c.mapping(ctx, gvk.GroupKind(), gvk.Version)
	if err != nil {
		if meta.IsNoMatchError(err) {
			return nil, &NotServedError{Kind: gvk}
		}
		return nil, fmt.Errorf("discover the API of %s: %w", gvk.GroupKind(), err)
	}
	return m, nil
}

// mapping maps gk (at version, or the preferred one), refreshing discovery once when the
// kind is unknown; discovery's requests are bounded by the timeout. A kind the cluster does
// not serve is a meta.NoKindMatchError; a server that does not answer, a deadline error.
func (c *Cluster) mapping(ctx context.Context, gk schema.GroupKind, version ...string) (*meta.RESTMapping, error) {
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	m, err := c.Mapper.RESTMappingWithContext(ctx, gk, version...)
	if meta.IsNoMatchError(err) {
		c.Mapper.ResetWithContext(ctx)
		m, err = c.Mapper.RESTMappingWithContext(ctx, gk, version...)
	}
	if err != nil && !meta.IsNoMatchError(err) {
		return nil, explain(noAnswer(ctx, err, c.Timeout))
	}
	return m, err
}

// Resource returns the dynamic client for obj, in obj's namespace when its kind is
// namespaced. A cluster-scoped object loses any namespace it was given.
func (c *Cluster) Resource(ctx context.Context, obj *unstructured.Unstructured) (dynamic.ResourceInterface, *meta.RESTMapping, error) {
	m, err := c.Mapping(ctx, obj)
	if err != nil {
		return nil, nil, err
	}
	if m.Scope.Name() != meta.RESTScopeNameNamespace {
		obj.SetNamespace("")
		return c.Dynamic.Resource(m.Resource), m, nil
	}
	if obj.GetNamespace() == "" {
		obj.SetNamespace("default")
	}
	return c.Dynamic.Resource(m.Resource).Namespace(obj.GetNamespace()), m, nil
}

// Contexts lists the kubeconfig's contexts, sorted, and the current one, as kubectl reads
// them (KUBECONFIG, then ~/.kube/config, unless kubeconfig names a file).
func Contexts(kubeconfig string) (names []string, current string, err error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if kubeconfig != "" {
		rules.ExplicitPath = kubeconfig
	}
	raw, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).RawConfig()
	if err != nil {
		return nil, "", fmt.Errorf("load kubeconfig: %w", err)
	}
	for name := range raw.Contexts {
		names = append(names, name)
	}
	sort.Strings(names)
	return names, raw.CurrentContext, nil
}
