package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/rorokube/roro/core/render"
	"github.com/rorokube/roro/core/workspace"
)

// renderFlags are the flags that choose what to render.
type renderFlags struct {
	env         string
	instance    string
	set         []string
	valuesFiles []string
	showSecrets bool
}

func (f *renderFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&f.env, "env", "e", "", "environment to render for (default: the instance's, else the workspace's default)")
	cmd.Flags().StringVarP(&f.instance, "instance", "i", "", "instance to render (default: the default instance)")
	cmd.Flags().StringArrayVar(&f.set, "set", nil, "set a value, highest layer: --set image.tag=1.2 (repeatable)")
	cmd.Flags().StringArrayVarP(&f.valuesFiles, "values", "f", nil, "a JSON or YAML file of values, above the workspace's layers (repeatable)")
}

// cliValues merges the --values files, in order, then --set.
func (f *renderFlags) cliValues() (map[string]any, error) {
	var layers []map[string]any
	for _, p := range f.valuesFiles {
		m, err := render.ReadValuesFile(p)
		if err != nil {
			return nil, usageError{err}
		}
		layers = append(layers, m)
	}
	set, err := render.ParseSet(f.set)
	if err != nil {
		return nil, usageError{err}
	}
	return render.Merge(append(layers, set)...), nil
}

func newRenderCommand(opts *options) *cobra.Command {
	var f renderFlags
	cmd := &cobra.Command{
		Use:   "render APP",
		Short: "Print the manifests an app's instance renders to, labelled as roro applies them",
		Long: `Render an app's templates with its layered values and print the objects, with the
namespace, labels and ApplySet label roro adds. Nothing is sent to a cluster.

Values are layered, lowest first: the app's "values", values/<env>.json, the environment's
values in roro.json, the instance's values, --values files, --set.

Env read from cluster objects (fromObject) is shown as a <placeholder> until roro resolves
env from the cluster; values of secret env variables print as ****** unless --show-secrets.`,
		Example: `  roro render api
  roro render api --env staging --instance pr-42
  roro render web --set replicas=3 -o json`,
		Args: exactArgs(1, "APP"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if opts.output == "text" {
				opts.output = "yaml"
			}
			if opts.output != "yaml" && opts.output != "json" {
				return usageError{fmt.Errorf("--output %q is not supported by render: use yaml or json", opts.output)}
			}
			ws, err := loadWorkspace(opts)
			if err != nil {
				return err
			}
			app, err := ws.Lookup(args[0])
			if err != nil {
				return err
			}
			values, err := f.cliValues()
			if err != nil {
				return err
			}
			res, env, err := renderApp(cmd.Context(), ws, app, f, values, os.LookupEnv)
			if err != nil {
				return err
			}
			if len(env.Unresolved) > 0 {
				fmt.Fprintf(opts.stderr, "note: %s come from cluster objects and are placeholders here\n", strings.Join(env.Unresolved, ", "))
			}
			var secrets []string
			if !f.showSecrets {
				for name := range env.Secret {
					secrets = append(secrets, env.Values[name])
				}
			}
			return printObjects(opts.stdout, opts.output, res.Objects, secrets)
		},
	}
	f.register(cmd)
	cmd.Flags().BoolVar(&f.showSecrets, "show-secrets", false, "print the values of secret env variables")
	return cmd
}

// renderApp resolves an instance's environment and env (cluster objects as placeholders) and
// renders it.
func renderApp(ctx context.Context, ws *workspace.Workspace, app *workspace.App, f renderFlags, values map[string]any,
	lookupHost func(string) (string, bool)) (*render.Result, *render.Env, error) {
	req := render.Request{Environment: f.env, Instance: f.instance, Values: values}
	_, envName, err := render.ResolveInstance(ws, app, req)
	if err != nil {
		return nil, nil, err
	}
	env, err := render.ResolveEnv(ctx, app, envName, lookupHost, nil)
	if err != nil {
		return nil, nil, err
	}
	req.Env = env.Values
	res, err := render.App(ws, app, req)
	return res, env, err
}

// printObjects writes objects as multi-document YAML or a JSON v1 List, with every
// occurrence of a secret value masked.
func printObjects(w io.Writer, format string, objs []*unstructured.Unstructured, secrets []string) error {
	items := make([]any, len(objs))
	for i, o := range objs {
		items[i] = mask(o.Object, secrets)
	}
	if format == "json" {
		return writeJSON(w, map[string]any{"apiVersion": "v1", "kind": "List", "items": items})
	}
	for i, item := range items {
		b, err := yaml.Marshal(item)
		if err != nil {
			return err
		}
		if i > 0 {
			b = append([]byte("---\n"), b...)
		}
		if _, err := w.Write(b); err != nil {
			return err
		}
	}
	return nil
}

// secretMask replaces secret values in output.
const secretMask = "******"

// mask returns a copy of v in which every occurrence of a secret in a string is masked.
func mask(v any, secrets []string) any {
	switch v := v.(type) {
	case string:
		for _, s := range secrets {
			if s != "" {
				v = strings.ReplaceAll(v, s, secretMask)
			}
		}
		return v
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			out[k] = mask(x, secrets)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = mask(x, secrets)
		}
		return out
	}
	return v
}

func newValidateCommand(opts *options) *cobra.Command {
	return &cobra.Command{
		Use:   "validate",
		Short: "Check the whole workspace: files, names, dependencies, and every instance's render",
		Long: `Load the workspace strictly and render every instance of every app in every
environment, checking the objects. Every problem is listed, each with its file and line;
the exit code is 1 when there is any.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(opts.output); err != nil {
				return err
			}
			dir, err := workspaceDir(opts)
			if err != nil {
				return err
			}
			ws, err := workspace.Load(dir)
			if err != nil {
				return problems(opts, splitJoined(err))
			}
			// Host variables differ per machine: validate templates with placeholders.
			placeholder := func(name string) (string, bool) { return "<" + name + ">", true }
			// The same problem in several environments is reported once, naming them all.
			var order []string
			envsOf := map[string][]string{}
			instances, objects := 0, 0
			envs := ws.EnvironmentNames()
			if len(envs) == 0 {
				envs = []string{""}
			}
			for _, app := range ws.Apps {
				for _, inst := range append([]string{workspace.DefaultInstance}, app.InstanceNames()...) {
					for _, env := range envs {
						if pinned := app.File.Instances[inst].Environment; pinned != "" && pinned != env {
							continue
						}
						res, _, err := renderApp(cmd.Context(), ws, app, renderFlags{env: env, instance: inst}, nil, placeholder)
						if err != nil {
							msg := err.Error()
							if _, seen := envsOf[msg]; !seen {
								order = append(order, msg)
							}
							envsOf[msg] = append(envsOf[msg], env)
							continue
						}
						instances++
						objects += len(res.Objects)
					}
				}
			}
			if len(order) > 0 {
				errs := make([]error, len(order))
				for i, msg := range order {
					errs[i] = fmt.Errorf("%s (environment %s)", msg, strings.Join(envsOf[msg], ", "))
				}
				return problems(opts, errs)
			}
			if opts.output == "json" {
				return writeJSON(opts.stdout, map[string]any{"valid": true, "apps": len(ws.Apps), "renders": instances, "objects": objects})
			}
			fmt.Fprintf(opts.stdout, "workspace %s is valid: %d apps, %d environments, %d instance renders, %d objects\n",
				ws.File.Name, len(ws.Apps), len(ws.EnvironmentNames()), instances, objects)
			return nil
		},
	}
}

// problems prints every error, one per line, and returns an error that says how many.
func problems(opts *options, errs []error) error {
	if opts.output == "json" {
		msgs := make([]string, len(errs))
		for i, e := range errs {
			msgs[i] = e.Error()
		}
		_ = writeJSON(opts.stdout, map[string]any{"valid": false, "problems": msgs})
	} else {
		for _, e := range errs {
			fmt.Fprintf(opts.stderr, "✗ %s\n", strings.ReplaceAll(e.Error(), "\n", "\n  "))
		}
	}
	return fmt.Errorf("%d problem(s) found", len(errs))
}

// splitJoined undoes errors.Join so each problem prints on its own.
func splitJoined(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// exactArgs requires n positional arguments, naming them in the error.
func exactArgs(n int, names string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usageError{fmt.Errorf("%q needs %s (got %d arguments)", cmd.CommandPath(), names, len(args))}
		}
		return nil
	}
}
