package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"github.com/spf13/cobra"
	yamlv2 "go.yaml.in/yaml/v2"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/rorokube/roro/core/render"
	"github.com/rorokube/roro/core/runtime"
	"github.com/rorokube/roro/core/workspace"
)

// renderFlags are the flags that choose what to render.
type renderFlags struct {
	env         string
	instance    string
	sets        render.Sets
	valuesFiles []string
	showSecrets bool
}

func (f *renderFlags) register(cmd *cobra.Command) {
	f.registerInstance(cmd, "to render")
	cmd.Flags().StringArrayVar(&f.sets.Typed, "set", nil, "set values, highest layer, Helm's syntax: --set image.tag=1.2,replicas=3 (repeatable)")
	cmd.Flags().StringArrayVar(&f.sets.Strings, "set-string", nil, "set values kept as strings: --set-string version=1.10 (repeatable)")
	cmd.Flags().StringArrayVar(&f.sets.Files, "set-file", nil, "set a value to a file's content: --set-file config=./app.conf (repeatable)")
	cmd.Flags().StringArrayVarP(&f.valuesFiles, "values", "f", nil, "a JSON or YAML file of values, above the workspace's layers (repeatable)")
}

// registerInstance adds --env and --instance; what says what the instance is for ("to
// restart"), empty for nothing.
func (f *renderFlags) registerInstance(cmd *cobra.Command, what string) {
	if what != "" {
		what = " " + what
	}
	cmd.Flags().StringVarP(&f.env, "env", "e", "", "environment (default: the instance's, else the workspace's default)")
	cmd.Flags().StringVarP(&f.instance, "instance", "i", "", "instance"+what+" (default: the default instance)")
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
	set, err := f.sets.Parse()
	if err != nil {
		return nil, usageError{err}
	}
	return render.Merge(append(layers, set)...), nil
}

func newRenderCommand(opts *options) *cobra.Command {
	var f renderFlags
	cmd := &cobra.Command{
		Use:   "render [APP...]",
		Short: "Print the manifests apps render to, labelled as roro applies them (every app when none is named)",
		Long: `Render the named apps' templates (every app's, when none is named) with their layered values
and print the objects, with the namespace, labels and ApplySet label roro adds, each YAML
document after a "# Source: app/file" line, as helm template prints. Nothing is sent to a
cluster.

Values are layered, lowest first: the app's "values", values/<env>.json, the environment's
values in roro.json, the instance's values, --values files, --set.

Env read from cluster objects (fromObject) is shown as a <placeholder> until roro resolves
env from the cluster; a Secret's data and the values of secret env variables print as ******
unless --show-secrets.`,
		Example: `  roro render                       every app
  roro render api db
  roro render api --env staging --instance pr-42
  roro render web --set replicas=3 -o json`,
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
			values, err := f.cliValues()
			if err != nil {
				return err
			}
			names := args
			if len(names) == 0 {
				names = ws.AppNames()
			}
			// Apps render at once, as many as the worker pool runs; they print in order.
			type rendered struct {
				res *render.Result
				env *render.Env
				err error
			}
			out := make([]rendered, len(names))
			ctx, cancel := context.WithCancel(cmd.Context())
			defer cancel()
			slots := make(chan struct{}, opts.templates.Size())
			var wg sync.WaitGroup
			for i, name := range names {
				wg.Go(func() {
					slots <- struct{}{}
					defer func() { <-slots }()
					r := &out[i]
					r.res, r.env, r.err = runtime.RenderOffline(ctx, opts.templates, ws, name, runtime.Selection{Environment: f.env, Instance: f.instance}, values, os.LookupEnv)
					if r.err != nil {
						cancel() // the first failure is the answer: the others stop
					}
				})
			}
			wg.Wait()
			for _, r := range out { // the failure of the first app in order that failed for itself
				if r.err != nil && !errors.Is(r.err, context.Canceled) {
					return r.err
				}
			}
			for _, r := range out {
				if r.err != nil {
					return r.err
				}
			}
			var objs []*unstructured.Unstructured
			var sources, secrets []string
			for i, name := range names {
				res, env := out[i].res, out[i].env
				if len(env.Unresolved) > 0 {
					fmt.Fprintf(opts.stderr, "note: %s of %s come from cluster objects and are placeholders here\n", strings.Join(env.Unresolved, ", "), name)
				}
				if !f.showSecrets {
					secrets = append(secrets, env.SecretValues()...)
					for _, s := range env.ShortSecrets() {
						fmt.Fprintf(opts.stderr, "warning: secret %s of %s is shorter than %d characters, too short to mask: it prints as it is\n", s, name, render.MinMaskable)
					}
				}
				objs = append(objs, res.Objects...)
				sources = append(sources, res.Sources...)
			}
			return printObjects(opts.stdout, opts.output, objs, sources, secrets, f.showSecrets)
		},
	}
	f.register(cmd)
	cmd.Flags().BoolVar(&f.showSecrets, "show-secrets", false, "print secret values: Secrets' data and the values of secret env variables")
	return cmd
}

// printObjects writes objects as multi-document YAML, each after a "# Source: app/file"
// line as helm prints, or as a JSON v1 List. Unless show, a Secret's values and every
// occurrence of a secret value elsewhere are masked.
func printObjects(w io.Writer, format string, objs []*unstructured.Unstructured, sources, secrets []string, show bool) error {
	items := make([]any, len(objs))
	for i, o := range objs {
		items[i] = o.Object
		if !show {
			items[i] = render.MaskObject(o.Object, secrets)
		}
	}
	if format == "json" {
		return writeJSON(w, map[string]any{"apiVersion": "v1", "kind": "List", "items": items})
	}
	bw := bufio.NewWriterSize(w, 64<<10) // thousands of documents: not a write each
	w = bw
	for i, item := range items {
		// Straight to YAML (sigs.k8s.io/yaml goes through JSON and parses it back: nine
		// tenths of the time of printing a large workspace); objects hold only JSON's types.
		b, err := yamlv2.Marshal(item)
		if err != nil {
			return err
		}
		head := "---\n"
		if i == 0 {
			head = ""
		}
		if i < len(sources) {
			head += "# Source: " + sources[i] + "\n"
		}
		if _, err := io.WriteString(w, head+string(b)); err != nil {
			return err
		}
	}
	return bw.Flush()
}

func newValidateCommand(opts *options) *cobra.Command {
	return &cobra.Command{
		Use:     "validate",
		Example: "  roro validate\n  roro --workspace fixtures/demo validate -o json",
		Short:   "Check the whole workspace: files, names, dependencies, and every instance's render",
		Long: `Load the workspace strictly and render every instance of every app in every
environment, checking the objects. Every problem is listed, each with its file and line;
the exit code is 1 when there is any.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir, err := workspaceDir(opts)
			if err != nil {
				return err
			}
			ws, err := workspace.Load(dir)
			if err != nil {
				return problems(opts, runtime.Problems(err))
			}
			v := runtime.Validate(cmd.Context(), opts.templates, ws)
			if len(v.Problems) > 0 {
				return problems(opts, v.Problems)
			}
			if opts.output == "json" {
				return writeJSON(opts.stdout, map[string]any{"valid": true, "apps": v.Apps, "renders": v.Renders, "objects": v.Objects})
			}
			fmt.Fprintf(opts.stdout, "workspace %s is valid: %d apps, %d environments, %d instance renders, %d objects\n",
				ws.File.Name, v.Apps, v.Environments, v.Renders, v.Objects)
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

// exactArgs requires n positional arguments, naming them in the error.
func exactArgs(n int, names string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usageError{fmt.Errorf("%q needs %s (got %d arguments)", cmd.CommandPath(), names, len(args))}
		}
		return nil
	}
}
