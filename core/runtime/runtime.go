package runtime

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/rorokube/roro/core/kube"
	"github.com/rorokube/roro/core/render"
	"github.com/rorokube/roro/core/workspace"
)

// Runtime runs the explicit lifecycle of one workspace's apps: up, down and ps. It holds no
// clients of its own: Connect gives it the cluster of an environment.
type Runtime struct {
	WS *workspace.Workspace
	// Connect returns the cluster an environment runs on.
	Connect func(ctx context.Context, environment string) (*kube.Cluster, error)
	// Store caches what runs where; nil keeps no cache.
	Store *Store
	// LookupHost reads host variables for env sources (os.LookupEnv in the CLI).
	LookupHost func(string) (string, bool)
	// Now is the clock.
	Now func() time.Time
	// OnForwardChange, when set, is called after any change of a background forward's status
	// (a Watcher's Poke, so snapshots carry them).
	OnForwardChange func()

	fwMu     sync.Mutex
	forwards map[string]*running // background forwards, by app/instance
}

// Event is one step of long work, for progress output.
type Event struct {
	App, Instance string
	// Step is render, dry-run, namespace, apply, prune, wait, ready, delete or kept.
	Step    string
	Message string
}

func (e Event) String() string {
	who := e.App
	if e.Instance != "" && e.Instance != workspace.DefaultInstance {
		who += "[" + e.Instance + "]"
	}
	return fmt.Sprintf("%-14s %-8s %s", who, e.Step, e.Message)
}

// Selection says which apps and instance a command acts on.
type Selection struct {
	// Apps are app names; empty means every app.
	Apps []string
	// Environment and Instance as in render.Request.
	Environment string
	Instance    string
}

// ordered returns the selected apps in dependency order (dependencies first); with deps, the
// dependencies of the selected apps join the selection. Apps named in names (or all, when
// names is empty) are the explicit ones; the others came in as dependencies.
func (r *Runtime) ordered(names []string, deps bool) ([]*workspace.App, error) {
	want := map[string]bool{}
	if len(names) == 0 {
		for _, a := range r.WS.Apps {
			want[a.Name] = true
		}
	}
	var add func(string) error
	add = func(name string) error {
		app, err := r.WS.Lookup(name)
		if err != nil {
			return err
		}
		if want[name] {
			return nil
		}
		want[name] = true
		if deps {
			for _, d := range app.File.DependsOn {
				if err := add(d); err != nil {
					return err
				}
			}
		}
		return nil
	}
	for _, n := range names {
		if err := add(n); err != nil {
			return nil, err
		}
	}
	var out []*workspace.App
	done := map[string]bool{}
	var visit func(a *workspace.App)
	visit = func(a *workspace.App) {
		if done[a.Name] {
			return
		}
		done[a.Name] = true
		for _, d := range a.File.DependsOn {
			visit(r.WS.App(d))
		}
		if want[a.Name] {
			out = append(out, a)
		}
	}
	for _, a := range r.WS.Apps {
		visit(a)
	}
	return out, nil
}

// environmentOf resolves the environment the selection runs in, for one app.
func (r *Runtime) environmentOf(app *workspace.App, sel Selection) (render.InstanceInfo, string, error) {
	return render.ResolveInstance(r.WS, app, render.Request{Environment: sel.Environment, Instance: sel.Instance})
}

// renderInstance renders one instance as up would apply it: env resolved against cluster
// (objects read with JSONPath), the layered values plus values, and env injected into the
// workloads when the app asks for it. It returns the resolved env too, for masking.
func (r *Runtime) renderInstance(ctx context.Context, cluster *kube.Cluster, app *workspace.App, inst render.InstanceInfo, env string, values map[string]any) (*render.Result, *render.Env, error) {
	resolved, err := render.ResolveEnv(ctx, app, env, r.LookupHost, kube.ObjectReader{Cluster: cluster})
	if err != nil {
		return nil, nil, err
	}
	res, err := render.App(r.WS, app, render.Request{Environment: env, Instance: inst.Name, Values: values, Env: resolved.Values})
	if err != nil {
		return nil, nil, err
	}
	if app.File.InjectEnv {
		render.InjectEnv(res, resolved)
	}
	return res, resolved, nil
}

// applySet turns a rendered result into the kube layer's ApplySet description.
func (r *Runtime) applySet(res *render.Result) kube.ApplySet {
	return kube.ApplySet{
		ParentName: res.ApplySet.ParentName, ParentNamespace: res.ApplySet.ParentNamespace, ID: res.ApplySet.ID,
		App: res.App, Instance: res.Instance.Name, Environment: res.Environment, Workspace: r.WS.File.Name,
	}
}

func (r *Runtime) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func emit(progress func(Event), e Event) {
	if progress != nil {
		progress(e)
	}
}

func names(apps []*workspace.App) []string {
	out := make([]string, len(apps))
	for i, a := range apps {
		out[i] = a.Name
	}
	return out
}
