// Package workspace holds Roro's source of truth: the typed, validated form of a workspace's
// JSON files (roro.json, apps/<app>/app.json, apps/<app>/values/<env>.json). It reads files
// only; it never talks to a cluster.
package workspace

import (
	"fmt"
	"slices"
	"time"
)

// FileName is the name of the workspace file at the root of every workspace.
const FileName = "roro.json"

// AppFileName is the name of the file that defines one app inside a member folder.
const AppFileName = "app.json"

// Workspace is a loaded workspace: its root file and every member app, in a stable order.
type Workspace struct {
	// Dir is the absolute path of the folder that holds roro.json.
	Dir  string
	File File
	Apps []*App

	// read are the JSON files the load read, checked against their schemas at its end.
	read []readFile
}

// readFile is one JSON file a load read, and what it decoded into.
type readFile struct {
	path string
	data []byte
	v    any
}

// File is the content of roro.json.
type File struct {
	Schema string `json:"$schema,omitempty"`
	// Name names the workspace; it appears in the window title and in ApplySet IDs.
	Name string `json:"name"`
	// Members are globs, relative to the workspace, of folders that each hold an app.json.
	Members []string `json:"members"`
	// Environments maps an environment name (dev, staging, …) to its settings.
	Environments map[string]Environment `json:"environments,omitempty"`
	// DefaultEnvironment is used when no --env is given.
	DefaultEnvironment string `json:"defaultEnvironment,omitempty"`
	// Sync configures how the workspace's git repo follows a remote.
	Sync *Sync `json:"sync,omitempty"`
}

// Environment is one deployment target: a kube context and the values it layers on every app.
type Environment struct {
	// Context is the kubeconfig context to use; empty means the current context.
	Context string `json:"context,omitempty"`
	// Values are layered over each app's values and values/<env>.json.
	Values map[string]any `json:"values,omitempty"`
}

// Sync says how the workspace follows a git remote.
type Sync struct {
	// Remote is the git remote to follow (default origin).
	Remote string `json:"remote,omitempty"`
	// Branch is the remote branch to follow (default: the branch checked out).
	Branch string `json:"branch,omitempty"`
	// Interval between background syncs while Roro runs, a Go duration (default "5m"; "0"
	// syncs only on demand).
	Interval string `json:"interval,omitempty"`
	// Push pushes local commits on every sync, when they fast-forward the remote.
	Push bool `json:"push,omitempty"`
	// Offline stops every sync: Roro never reaches the remote on its own or on demand.
	Offline bool `json:"offline,omitempty"`
}

// App is one app: a group of manifests with its values, env, forwards and instances.
type App struct {
	// Name is the app's name: the folder name unless app.json sets one.
	Name string
	// Dir is the absolute path of the app's folder.
	Dir  string
	File AppFile
	// Manifests are the files the manifest globs matched, relative to Dir, sorted, each once.
	Manifests []string
	// EnvValues holds values/<env>.json by environment name.
	EnvValues map[string]map[string]any
}

// AppFile is the content of app.json.
type AppFile struct {
	Schema string `json:"$schema,omitempty"`
	// Name overrides the folder name as the app's name.
	Name string `json:"name,omitempty"`
	// Group is a display group in the window and the tray ("backend", "data").
	Group string `json:"group,omitempty"`
	// Namespace is where the default instance lives; default: the app's name.
	Namespace string `json:"namespace,omitempty"`
	// Engine is the template engine: "go" (default), "handlebars" or "jinja".
	Engine string `json:"engine,omitempty"`
	// Manifests are globs, relative to the app folder, of the templates to render.
	Manifests []string `json:"manifests"`
	// Values are the app's own values, the lowest layer.
	Values map[string]any `json:"values,omitempty"`
	// Env lists the variables the app resolves before rendering.
	Env []EnvSource `json:"env,omitempty"`
	// InjectEnv, when true, adds the resolved env to every container of the app's workloads.
	InjectEnv bool `json:"injectEnv,omitempty"`
	// Forwards are the port forwards that start with the app.
	Forwards []Forward `json:"forwards,omitempty"`
	// DependsOn names apps that must be healthy before this one starts.
	DependsOn []string `json:"dependsOn,omitempty"`
	// Instances are further copies of the app beside the default one, by name.
	Instances map[string]Instance `json:"instances,omitempty"`
}

// EnvSource is one env variable and where its value comes from: exactly one of Value,
// FromHost and FromObject.
type EnvSource struct {
	Name       string     `json:"name"`
	Value      *string    `json:"value,omitempty"`
	FromHost   string     `json:"fromHost,omitempty"`
	FromObject *ObjectRef `json:"fromObject,omitempty"`
	Secret     bool       `json:"secret,omitempty"`
	Default    *string    `json:"default,omitempty"`
}

// ObjectRef points at one field of a Kubernetes object, usually a custom resource.
type ObjectRef struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Name       string `json:"name"`
	Namespace  string `json:"namespace,omitempty"`
	// JSONPath is a kubectl-style expression, for example "{.spec.database.host}".
	JSONPath string `json:"jsonPath"`
	// Environments overrides Name and Namespace per environment.
	Environments map[string]ObjectLocation `json:"environments,omitempty"`
}

// ObjectLocation is the name and namespace of an object in one environment.
type ObjectLocation struct {
	Name      string `json:"name,omitempty"`
	Namespace string `json:"namespace,omitempty"`
}

// Forward is one port forward of an app: a target and its ports.
type Forward struct {
	// Target is "service/NAME", "deployment/NAME", "statefulset/NAME" or "pod/NAME".
	Target string `json:"target"`
	// Ports are "LOCAL:REMOTE" pairs; REMOTE may be a named port, LOCAL may be empty or 0
	// for a free port.
	Ports []string `json:"ports"`
	// Address is the local address to bind; default 127.0.0.1.
	Address string `json:"address,omitempty"`
	// Hold is how long a connection that arrives while no pod is Ready waits for one, as a
	// Go duration ("30s", the default).
	Hold string `json:"hold,omitempty"`
}

// HoldDuration is Hold as a duration: 0 when unset (the forward's default), an error when
// it is not a positive duration.
func (f Forward) HoldDuration() (time.Duration, error) {
	if f.Hold == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(f.Hold)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%q is not a positive duration, such as \"30s\" or \"2m\"", f.Hold)
	}
	return d, nil
}

// Instance is a further copy of an app.
type Instance struct {
	// Environment pins the instance to one environment; default: the workspace default.
	Environment string `json:"environment,omitempty"`
	// Namespace overrides the default "<app>-<instance>" namespace.
	Namespace string `json:"namespace,omitempty"`
	// Suffix, when set, keeps the instance in the app's namespace and appends the suffix to
	// object names (templates use .Instance.Suffix).
	Suffix string `json:"suffix,omitempty"`
	// Values are layered over the environment's values.
	Values map[string]any `json:"values,omitempty"`
}

// Engine returns the app's template engine, "go" when app.json names none.
func (a *App) Engine() string {
	if a.File.Engine == "" {
		return "go"
	}
	return a.File.Engine
}

// Namespace returns the namespace of the app's default instance: app.json's namespace, or
// the app's name.
func (a *App) Namespace() string {
	if a.File.Namespace == "" {
		return a.Name
	}
	return a.File.Namespace
}

// InstanceNames lists the app's further instances in sorted order.
func (a *App) InstanceNames() []string {
	names := make([]string, 0, len(a.File.Instances))
	for n := range a.File.Instances {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}
