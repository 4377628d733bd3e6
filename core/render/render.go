package render

import (
	"context"
	"fmt"
	"maps"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/rorokube/roro/core/workspace"
)

// Request says which instance of an app to render, and with what on top.
type Request struct {
	// Environment is the environment to render for; "" means the instance's pinned
	// environment, else the workspace's default.
	Environment string
	// Instance is the instance's name; "" or "default" means the default instance. A name
	// app.json does not declare is an ad-hoc instance in its own namespace.
	Instance string
	// Values are the command line's values (--values files, then --set), the highest layer.
	Values map[string]any
	// Env is the resolved env (.Env); nil renders with an empty .Env.
	Env map[string]string
}

// Result is one rendered instance of an app: its objects, labelled and namespaced.
type Result struct {
	App         string
	Instance    InstanceInfo
	Environment string
	// Objects are in file order, then document order.
	Objects []*unstructured.Unstructured
	// Sources name the template file of each object, "app/file" (as helm's "# Source:").
	Sources []string
	// ApplySet names the instance's ApplySet: its parent object and ID (KEP-3659).
	ApplySet ApplySet
	// Values are the merged values the templates saw.
	Values map[string]any
}

// ResolveInstance works out which instance and environment req names for app: its name,
// namespace and name suffix.
func ResolveInstance(ws *workspace.Workspace, app *workspace.App, req Request) (InstanceInfo, string, error) {
	name := req.Instance
	if name == "" {
		name = workspace.DefaultInstance
	}
	info := InstanceInfo{Name: name, Namespace: app.Namespace()}
	var decl workspace.Instance
	if name != workspace.DefaultInstance {
		if msgs := validation.IsDNS1123Label(name); len(msgs) > 0 {
			return info, "", fmt.Errorf("instance %q of app %s is not a valid name: %s", name, app.Name, strings.Join(msgs, "; "))
		}
		decl = app.File.Instances[name]
		switch {
		case decl.Suffix != "":
			info.Suffix = decl.Suffix
		case decl.Namespace != "":
			info.Namespace = decl.Namespace
		default:
			info.Namespace = app.Name + "-" + name
		}
		if msgs := validation.IsDNS1123Label(info.Namespace); len(msgs) > 0 {
			return info, "", fmt.Errorf("instance %s of app %s: namespace %q is not valid (%s): give the instance a shorter name or set its \"namespace\"",
				name, app.Name, info.Namespace, strings.Join(msgs, "; "))
		}
	}
	env := req.Environment
	if env == "" {
		env = decl.Environment
	}
	if env == "" {
		env = ws.File.DefaultEnvironment
	}
	if env != "" {
		if _, ok := ws.File.Environments[env]; !ok {
			return info, "", fmt.Errorf("environment %q is not in %s (have %s)", env,
				filepath.Join(ws.Dir, workspace.FileName), strings.Join(ws.EnvironmentNames(), ", "))
		}
	}
	return info, env, nil
}

// LayeredValues merges an instance's values, lowest first: the app's values, values/<env>.json,
// the environment's values in roro.json, the instance's values, then req.Values.
func LayeredValues(ws *workspace.Workspace, app *workspace.App, instance, env string, cli map[string]any) map[string]any {
	return Merge(
		app.File.Values,
		app.EnvValues[env],
		ws.File.Environments[env].Values,
		app.File.Instances[instance].Values,
		cli,
	)
}

// App renders one instance of app: it reads the app's templates, executes them with the
// app's engine through x, and decodes, checks and labels the objects. Nothing is written
// anywhere.
func App(ctx context.Context, x Executor, ws *workspace.Workspace, app *workspace.App, req Request) (*Result, error) {
	inst, env, err := ResolveInstance(ws, app, req)
	if err != nil {
		return nil, err
	}
	values := LayeredValues(ws, app, inst.Name, env, req.Values)
	data := &Context{
		Values:      values,
		Env:         maps.Clone(req.Env),
		App:         AppInfo{Name: app.Name, Namespace: app.Namespace(), Group: app.File.Group},
		Instance:    inst,
		Environment: EnvironmentInfo{Name: env, Context: ws.File.Environments[env].Context},
		Workspace:   WorkspaceInfo{Name: ws.File.Name},
	}
	if data.Env == nil {
		data.Env = map[string]string{}
	}
	files := make([]File, 0, len(app.Manifests))
	for _, rel := range app.Manifests {
		src, err := workspace.ReadFile(ws.Dir, filepath.Join(app.Dir, filepath.FromSlash(rel)))
		if err != nil {
			return nil, fmt.Errorf("app %s: %w", app.Name, err)
		}
		files = append(files, File{Name: rel, Source: src})
	}
	where := "app " + app.Name
	if inst.Name != workspace.DefaultInstance {
		where += " instance " + inst.Name
	}
	rendered, err := x.Render(ctx, app.Engine(), files, data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	res := &Result{App: app.Name, Instance: inst, Environment: env, Values: values,
		ApplySet: NewApplySet(app.Name, inst)}
	var sources []string
	for _, r := range rendered {
		for _, obj := range r.Objects {
			res.Objects = append(res.Objects, &unstructured.Unstructured{Object: obj})
			sources = append(sources, r.File)
			res.Sources = append(res.Sources, app.Name+"/"+r.File)
		}
	}
	if err := finish(res, sources); err != nil {
		return nil, fmt.Errorf("app %s instance %s: %w", app.Name, inst.Name, err)
	}
	return res, nil
}

// Workspace renders the given instance of every app through x, in workspace order,
// collecting every error rather than stopping at the first. Apps render in parallel, one
// per CPU.
func Workspace(ctx context.Context, x Executor, ws *workspace.Workspace, req Request) ([]*Result, []error) {
	results := make([]*Result, len(ws.Apps))
	errs := make([]error, len(ws.Apps))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(2*runtime.GOMAXPROCS(0), len(ws.Apps)) {
		wg.Go(func() {
			for i := range next {
				results[i], errs[i] = App(ctx, x, ws, ws.Apps[i], req)
			}
		})
	}
	for i := range ws.Apps {
		next <- i
	}
	close(next)
	wg.Wait()
	var ok []*Result
	var failed []error
	for i := range ws.Apps {
		if errs[i] != nil {
			failed = append(failed, errs[i])
			continue
		}
		ok = append(ok, results[i])
	}
	return ok, failed
}
