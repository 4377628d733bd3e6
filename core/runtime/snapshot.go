package runtime

import (
	"time"

	"github.com/rorokube/roro/core/kube"
	"github.com/rorokube/roro/forward"
)

// Snapshot is one immutable view of everything an Engine holds: the workspace's apps (running
// or not) and their instances, the cluster connections, the operations, the forwards and the
// git sync state. A frontend draws it without asking anything else. Readers must not modify
// it; a newer one replaces it whole.
type Snapshot struct {
	// Version grows by one with every snapshot an Engine publishes.
	Version   uint64
	At        time.Time
	Workspace WorkspaceView
	// Apps are every app of the workspace, in the workspace's order.
	Apps []AppView
	// Orphans are instances running in a cluster whose app the workspace no longer has.
	Orphans []InstanceView
	// Connections are one per environment (one for a workspace without environments).
	Connections []ConnectionView
	// Operations are those running, then the most recent finished ones, newest first.
	Operations []OperationView
	// Forwards are every forward the engine runs, by app and instance.
	Forwards []ForwardView
	// Git is the workspace's git sync state; the git layer fills it.
	Git GitView
	// Sharing is the embedded git server's state; the desktop fills it (SetSharing).
	Sharing SharingView
	// Context is the kubeconfig context the user picked for this session (SetContext); ""
	// when each environment uses its own.
	Context string
}

// App returns the view of the named app, or nil.
func (s *Snapshot) App(name string) *AppView {
	for i := range s.Apps {
		if s.Apps[i].Name == name {
			return &s.Apps[i]
		}
	}
	return nil
}

// Running returns the newest operation that is still running, or nil.
func (s *Snapshot) Running() *OperationView {
	for i := range s.Operations { // running ones come first, newest first
		if s.Operations[i].State == OpRunning {
			return &s.Operations[i]
		}
	}
	return nil
}

// WorkspaceView describes the loaded workspace.
type WorkspaceView struct {
	Name, Dir          string
	DefaultEnvironment string
	Environments       []string
	// Problem is why the workspace's files, as they are on disk now, do not load (with the
	// file and place); the engine runs on the last workspace that loaded. "" when they load.
	Problem string
}

// Health sums up an instance or an app.
type Health string

// Healths, from the objects' kstatus.
const (
	// NotRunning: nothing of it is deployed.
	NotRunning Health = "not running"
	Healthy    Health = "healthy"
	// Progressing: some object is not ready yet.
	Progressing Health = "progressing"
	// Failed: some object failed.
	Failed Health = "failed"
	// Unknown: its cluster cannot be reached, so roro does not know.
	Unknown Health = "unknown"
)

// worse returns the worse of two healths, for an app's sum of its instances.
func worse(a, b Health) Health {
	rank := map[Health]int{NotRunning: 0, Healthy: 1, Progressing: 2, Unknown: 3, Failed: 4}
	if rank[b] > rank[a] {
		return b
	}
	return a
}

// AppView is one app of the workspace in a Snapshot.
type AppView struct {
	Name, Group, Engine string
	// Namespace is the default instance's namespace.
	Namespace string
	DependsOn []string
	// Health is the worst of its running instances' health, NotRunning when none runs.
	Health Health
	// Instances are the default instance, the declared ones, then ad-hoc ones found running.
	Instances []InstanceView
	// Forwards counts the forwards app.json declares for each instance.
	Forwards int
}

// Instance returns the view of the app's instance, or nil.
func (a *AppView) Instance(name string) *InstanceView {
	for i := range a.Instances {
		if a.Instances[i].Instance == name {
			return &a.Instances[i]
		}
	}
	return nil
}

// InstanceView is one instance in a Snapshot.
type InstanceView struct {
	App, Instance string
	// Environment and Namespace are where it runs, or where up would put it.
	Environment, Namespace string
	// Context is the kubeconfig context of its cluster, once known.
	Context string
	// Workspace is the workspace name its inventory records (running instances).
	Workspace string
	// Declared is true for the default instance and those app.json declares.
	Declared bool
	Running  bool
	// Created is when it was first applied (running instances).
	Created time.Time
	Health  Health
	Objects []ObjectView
	// Busy is the ID of the operation working on it, 0 when none.
	Busy uint64
}

// ObjectView is one object of an instance, with its health.
type ObjectView struct {
	Ref    kube.ObjectRef
	Health kube.Health
}

// ConnState is where a cluster connection stands.
type ConnState string

// Connection states.
const (
	Connecting  ConnState = "connecting"
	Connected   ConnState = "connected"
	Unreachable ConnState = "unreachable"
)

// ConnectionView is one environment's cluster connection.
type ConnectionView struct {
	Environment string
	// Context and Server are the cluster's, once a connection was made.
	Context, Server string
	State           ConnState
	// Reason says why it is unreachable: "connection refused".
	Reason string
	// Since is when the state began; Attempts counts failed attempts since the last success.
	Since    time.Time
	Attempts int
	// Synced is true once the engine's watch has read what runs in the cluster since it
	// connected; until then instances that are not known to run show Unknown.
	Synced bool
}

// String is "connected to kind-dev", "unreachable: connection refused", "connecting".
func (c ConnectionView) String() string {
	switch c.State {
	case Connected:
		return "connected to " + c.Context
	case Unreachable:
		return "unreachable: " + c.Reason
	}
	return string(c.State)
}

// OperationView is one operation in a Snapshot.
type OperationView struct {
	ID      uint64
	Kind    OperationKind
	Targets []InstanceKey
	State   OperationState
	Started time.Time
	// Ended is zero while it runs.
	Ended time.Time
	// Step is the latest step.
	Step Step
	// Log is the operation's events, oldest first (the latest maxOpLog).
	Log []Event
	// Err is why it failed; Problems is the same, one typed error per problem (a
	// *kube.ObjectError within an *AppError places it on its object).
	Err      error
	Problems []error
}

// ForwardView is one running forward of an instance.
type ForwardView struct {
	App, Instance string
	forward.Status
	// Err is why it could not start (a local port in use), when it could not.
	Err string
}

// GitView is the workspace's git sync state, as the last sync left it.
type GitView struct {
	// State is one of store's Sync* states; empty before the first sync.
	State   string
	Message string
	Remote  string
	Branch  string
	// Ahead and Behind count the commits each side lacks; AheadCommits and BehindCommits
	// name them ("1a2b3c4 subject"), newest first.
	Ahead, Behind               int
	AheadCommits, BehindCommits []string
	// Fetched is when the remote was last read; At when the last sync ended.
	Fetched, At time.Time
	// Syncing is true while a sync runs.
	Syncing bool
}

// SharingView is the embedded git server (roro serve) as the window and the tray show it.
type SharingView struct {
	// Available is false when this Roro cannot serve (no git, no config folder); Err says why.
	Available bool
	Running   bool
	Addr      string
	HostKey   string // the host key's fingerprint
	CloneURLs []string
	// Keys have a role; Refused tried to log in without one and wait for approval.
	Keys, Refused []SharingKey
	Err           string
}

// SharingKey is one key the server knows of.
type SharingKey struct {
	Fingerprint, Comment, Role string
	// Address, At and Attempts say where and when a refused key last tried.
	Address  string
	At       time.Time
	Attempts int
}
