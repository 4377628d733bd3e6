package runtime

import (
	"context"
	"fmt"
	"strings"

	"github.com/pmezard/go-difflib/difflib"

	"github.com/rorokube/roro/core/kube"
	"github.com/rorokube/roro/core/render"
	"github.com/rorokube/roro/core/workspace"
)

// Env resolves an app instance's env against its environment's cluster.
func (e *Engine) Env(ctx context.Context, app string, sel Selection) (*render.Env, error) {
	t, c, err := e.resolve(ctx, app, sel, nil)
	if err != nil {
		return nil, err
	}
	return c.Env(ctx, t)
}

// Diff compares what an up would apply (a server-side dry run of the rendered objects) with
// the live objects, as a unified diff per object, secrets masked.
func (e *Engine) Diff(ctx context.Context, app string, sel Selection, values map[string]any) (string, error) {
	ds, err := e.DiffObjects(ctx, app, sel, values)
	return Unified(ds), err
}

// DiffObjects is Diff object by object: each object up would change, live and rendered
// (for an external diff program).
func (e *Engine) DiffObjects(ctx context.Context, app string, sel Selection, values map[string]any) ([]ObjectDiff, error) {
	t, c, err := e.resolve(ctx, app, sel, values)
	if err != nil {
		return nil, err
	}
	return c.Diff(ctx, t)
}

// Exec runs command in the first Ready pod of an app's instance (container "" is the pod's
// first), as kubectl exec does; a non-zero exit is a *kube.ExitError.
func (e *Engine) Exec(ctx context.Context, app string, sel Selection, container string, command []string, streams kube.ExecIO) error {
	t, c, err := e.resolve(ctx, app, sel, nil)
	if err != nil {
		return err
	}
	return c.Exec(ctx, t, container, command, streams)
}

// ObjectDiff is one object up would change: its live and rendered forms as YAML, secrets
// masked; "" for a side where it does not exist.
type ObjectDiff struct {
	Name           string // Kind namespace/name, and why when it goes ("pruned by the next up")
	Live, Rendered string
}

// Unified is ds as one unified diff, "" when there is no difference.
func Unified(ds []ObjectDiff) string {
	var b strings.Builder
	for _, d := range ds {
		u, _ := difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
			A: difflib.SplitLines(d.Live), B: difflib.SplitLines(d.Rendered),
			FromFile: "live/" + d.Name, ToFile: "rendered/" + d.Name, Context: 3,
		})
		b.WriteString(u)
	}
	return b.String()
}

// Render renders an app instance as up applies it, without asking a cluster (values read
// from cluster objects are placeholders): what the window's manifests page shows.
func (e *Engine) Render(ctx context.Context, app string, sel Selection) (*render.Result, *render.Env, error) {
	return RenderOffline(ctx, e.opts.Render, e.Workspace(), app, sel, nil, e.opts.LookupHost)
}

// RenderOffline renders an app instance exactly as up applies it (injected env and the env
// Secret included) without a cluster: env read from cluster objects becomes a visible
// placeholder, listed in the returned Env's Unresolved. x runs the templates.
func RenderOffline(ctx context.Context, x render.Executor, ws *workspace.Workspace, app string, sel Selection, values map[string]any, lookupHost func(string) (string, bool)) (*render.Result, *render.Env, error) {
	a, err := ws.Lookup(app)
	if err != nil {
		return nil, nil, err
	}
	info, env, err := render.ResolveInstance(ws, a, render.Request{Environment: sel.Environment, Instance: sel.Instance})
	if err != nil {
		return nil, nil, err
	}
	return RenderTarget(ctx, Target{WS: ws, App: a, Instance: info, Environment: env, Values: values, LookupHost: lookupHost, Render: x}, nil)
}

// Validation is what Validate found.
type Validation struct {
	Apps, Environments int
	// Renders counts the instance renders that succeeded, Objects their objects.
	Renders, Objects int
	// Problems are every problem, each once, naming the environments it shows in.
	Problems []error
}

// Validate renders every instance of every app in every environment (its pinned one only,
// for an instance that pins one), as up would apply it, with host variables and cluster
// objects as placeholders, and checks every app's forwards. The same problem in several
// environments is one problem naming them all. x runs the templates.
func Validate(ctx context.Context, x render.Executor, ws *workspace.Workspace) Validation {
	placeholder := func(name string) (string, bool) { return "<" + name + ">", true }
	v := Validation{Apps: len(ws.Apps), Environments: len(ws.EnvironmentNames())}
	var order []string
	envsOf := map[string][]string{}
	envs := ws.EnvironmentNames()
	if len(envs) == 0 {
		envs = []string{""}
	}
	for _, app := range ws.Apps {
		if err := checkForwards(app); err != nil {
			v.Problems = append(v.Problems, &AppError{App: app.Name, Err: err})
		}
		for _, inst := range append([]string{workspace.DefaultInstance}, app.InstanceNames()...) {
			for _, env := range envs {
				if pinned := app.File.Instances[inst].Environment; pinned != "" && pinned != env {
					continue
				}
				res, _, err := RenderOffline(ctx, x, ws, app.Name, Selection{Environment: env, Instance: inst}, nil, placeholder)
				if err != nil {
					msg := err.Error()
					if _, seen := envsOf[msg]; !seen {
						order = append(order, msg)
					}
					envsOf[msg] = append(envsOf[msg], env)
					continue
				}
				v.Renders++
				v.Objects += len(res.Objects)
			}
		}
	}
	for _, msg := range order {
		if envsOf[msg][0] == "" {
			v.Problems = append(v.Problems, fmt.Errorf("%s", msg))
			continue
		}
		v.Problems = append(v.Problems, fmt.Errorf("%s (environment %s)", msg, strings.Join(envsOf[msg], ", ")))
	}
	return v
}
