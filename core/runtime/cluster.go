package runtime

import (
	"context"
	"time"

	"github.com/rorokube/roro/core/kube"
	"github.com/rorokube/roro/core/render"
	"github.com/rorokube/roro/core/workspace"
	"github.com/rorokube/roro/forward"
)

// InstanceKey names one instance of one app.
type InstanceKey struct{ App, Instance string }

// keyOf is the key of app's instance; "" is the default instance.
func keyOf(app, instance string) InstanceKey {
	if instance == "" {
		instance = workspace.DefaultInstance
	}
	return InstanceKey{app, instance}
}

func (k InstanceKey) String() string {
	if k.Instance == "" || k.Instance == workspace.DefaultInstance {
		return k.App
	}
	return k.App + "[" + k.Instance + "]"
}

// Target is one instance an operation acts on, resolved: the app, its instance (name,
// namespace, suffix) and environment, and the command line's values.
type Target struct {
	WS          *workspace.Workspace
	App         *workspace.App
	Instance    render.InstanceInfo
	Environment string
	// Values are the command line's values, the highest layer.
	Values map[string]any
	// LookupHost reads host variables for env sources.
	LookupHost func(string) (string, bool)
	// Render runs the templates.
	Render render.Executor
}

// Key is the target's instance key.
func (t Target) Key() InstanceKey { return InstanceKey{t.App.Name, t.Instance.Name} }

// Plan is one instance rendered and admitted by a dry run, on its way up. Its cluster keeps
// what it needs in it.
type Plan struct {
	Target Target
	// Objects is how many objects the instance renders to.
	Objects int
	state   any
}

// Forwarder is one running port forward: forward.Forward, or a test's fake.
type Forwarder interface {
	Run(ctx context.Context) error
	Ready() <-chan struct{}
	Stop()
	Status() forward.Status
}

var _ Forwarder = (*forward.Forward)(nil)

// Cluster is the cluster work the engine composes into operations, for one environment's
// cluster. kubeCluster does it through core/kube; the engine's tests use a fake. Every method
// reports its steps to report, which may be nil.
type Cluster interface {
	// Context and Server name the cluster: its kubeconfig context and API server URL.
	Context() string
	Server() string
	// Ping checks the API server answers; an unreachable one is a *kube.UnreachableError.
	Ping(ctx context.Context) error
	// Close drops the cluster's connections, once nothing uses it.
	Close()
	// Watch reports roro's instances in the cluster, with their objects' health, after
	// every change, until ctx ends. It must return promptly when ctx ends, synced or not.
	Watch(ctx context.Context, publish func([]InstanceView)) error
	// Instances lists roro's instances in the cluster once, with their objects' health.
	Instances(ctx context.Context) ([]InstanceView, error)
	// Running reports whether an instance is deployed, and in which environment.
	Running(ctx context.Context, t Target) (env string, running bool, err error)
	// Plan renders targets with their env and dry-runs what the server can judge now.
	// Nothing is written.
	Plan(ctx context.Context, targets []Target, opts kube.ApplyOptions, report Reporter) ([]*Plan, error)
	// Foundation creates the plans' namespaces and CRDs and dry-runs what had to wait for
	// them. On failure it removes what it created and says so in a *FoundationError. Undo
	// removes it later, when another cluster's foundation fails, and returns what it could
	// not remove.
	Foundation(ctx context.Context, plans []*Plan, opts kube.ApplyOptions, report Reporter) (undo func() []kube.ObjectRef, err error)
	// Apply applies a plan's objects and prunes what the instance no longer renders.
	Apply(ctx context.Context, p *Plan, opts kube.ApplyOptions, report Reporter) error
	// Wait waits until every object of the plan is healthy, up to timeout.
	Wait(ctx context.Context, p *Plan, timeout time.Duration, report Reporter) error
	// Delete takes an instance down.
	Delete(ctx context.Context, t Target, opts DownOptions, report Reporter) (DownResult, error)
	// Restart replaces the pods of an instance's workloads (a rollout restart).
	Restart(ctx context.Context, t Target, report Reporter) error
	// Forward returns a port forward to this cluster that has not started.
	Forward(spec forward.Spec, opts forward.Options) (Forwarder, error)
	// Env resolves an instance's env against the cluster.
	Env(ctx context.Context, t Target) (*render.Env, error)
	// Render renders an instance as up applies it: env resolved against the cluster and
	// injected when the app asks.
	Render(ctx context.Context, t Target) (*render.Result, *render.Env, error)
	// Diff compares what up would apply with the live objects.
	Diff(ctx context.Context, t Target) ([]ObjectDiff, error)
	// Exec runs a command in the instance's first Ready pod.
	Exec(ctx context.Context, t Target, container string, command []string, streams kube.ExecIO) error
	// Logs streams the logs of an instance's pods.
	Logs(ctx context.Context, t Target, opts kube.LogOptions, emit func(kube.LogLine)) error
}

// Connector connects to an environment's cluster; kubeContext is the environment's
// "context" in roro.json (empty for the current one). It must honour ctx and fail with a
// *kube.UnreachableError when the cluster does not answer.
type Connector func(ctx context.Context, environment, kubeContext string) (Cluster, error)
