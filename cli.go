package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/util/duration"

	"github.com/rorokube/roro/core/render/worker"
	"github.com/rorokube/roro/core/runtime"
	"github.com/rorokube/roro/core/workspace"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

// Exit codes: 0 success, 1 the command failed, 2 the command line was wrong.
const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 2
)

// usageError marks a mistake on the command line, which exits with exitUsage.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// options are the flags every subcommand shares.
type options struct {
	workspace string
	output    string
	cluster   clusterFlags
	// transport is the forwards' transport (roro forward --transport).
	transport string
	// watch turns the engine's watches on (the window).
	watch bool
	// watchFiles reloads the workspace when its files change (the window, forward).
	watchFiles bool
	// board names the command that publishes its forwards for `roro ps -o wide` ("" for
	// commands that run no forwards).
	board string
	// gitSync syncs the workspace with its git remote in the background (the window).
	gitSync bool
	// noWindow keeps only the tray icon (roro --no-window).
	noWindow bool
	// allowAddress lets forwards listen beyond loopback (--allow-forward-address).
	allowAddress bool
	// started is when the process started (the start-up benchmark measures from it).
	started time.Time
	// templates runs every render of the command in bounded worker processes.
	templates *worker.Pool
	// stdin is what `roro exec -i` passes on (the process's standard input).
	stdin  *os.File
	stdout io.Writer
	stderr io.Writer
}

// run executes roro with args and returns the process exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return runAt(ctx, time.Now(), args, stdout, stderr)
}

// runAt is run for a process that started at started.
func runAt(ctx context.Context, started time.Time, args []string, stdout, stderr io.Writer) int {
	opts := &options{stdin: os.Stdin, stdout: stdout, stderr: stderr, started: started, templates: worker.New(worker.Options{})}
	defer opts.templates.Close()
	root := newRootCommand(opts)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	if errors.Is(err, errDifferences) {
		return exitFail // diff's answer, not a failure to report
	}
	var code exitCode
	if errors.As(err, &code) {
		return int(code) // the exit status of the process roro run started
	}
	fmt.Fprintf(stderr, "roro: %v\n", err)
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintln(stderr, "Run 'roro --help' for usage.")
		return exitUsage
	}
	return exitFail
}

func newRootCommand(opts *options) *cobra.Command {
	root := &cobra.Command{
		Use:   "roro",
		Short: "Docker Compose for Kubernetes: apps from manifests, kept in git, run with an explicit lifecycle",
		Long: `Roro groups Kubernetes manifests into apps, keeps their configuration as JSON in a git
repo (the workspace), and runs them with an explicit lifecycle. No controller runs in the
cluster: roro applies, watches and forwards from your machine.

Run without a subcommand, roro opens its window and its tray icon on the workspace found in
the current folder or a parent (or the one given with --workspace). The window shows every app
with its health, runs up, down and restart, and the apps' port forwards; the tray icon's colour
says whether all is well, and its menu brings apps up and down and opens forwards. Closing the
window keeps the tray and the forwards; Quit in the tray (or Ctrl-C) ends them. With no
display it says so and exits; the subcommands below work anywhere.`,
		Example: `  roro                              the window and the tray, on the workspace in this folder
  roro --no-window                  only the tray icon
  roro --workspace fixtures/demo    the window, on the demo workspace
  roro apps                         the workspace's apps, as text
  roro ls                           the workspaces roro knows on this machine
  roro up web && roro forward web   the same from a terminal`,
		Args:          noArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDesktop(cmd.Context(), opts, opts.noWindow)
		},
	}
	root.Flags().BoolVar(&opts.noWindow, "no-window", false, "run only the tray icon (open the window from its menu)")
	root.PersistentFlags().StringVarP(&opts.workspace, "workspace", "w", os.Getenv("RORO_WORKSPACE"),
		"workspace folder (default: the nearest folder with a roro.json; env RORO_WORKSPACE)")
	root.PersistentFlags().StringVarP(&opts.output, "output", "o", "text", "output format: text, or json where a command writes it (render: yaml or json)")
	opts.cluster.register(root)
	root.PersistentFlags().BoolVar(&opts.allowAddress, "allow-forward-address", false,
		"let forwards listen on the address app.json gives even beyond 127.0.0.1 (a workspace alone cannot open a port to the network)")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		if strings.Contains(err.Error(), "shorthand flag: 'n'") || strings.Contains(err.Error(), "unknown flag: --namespace") {
			return usageError{fmt.Errorf("%w: roro has no --namespace: an instance's namespace comes from app.json (\"namespace\", \"instances\"); pick an instance with --instance", err)}
		}
		return usageError{err}
	})
	root.SuggestionsMinimumDistance = 2
	root.Version = version
	root.SetVersionTemplate("roro {{.Version}}\n")
	// A command writes only the formats it declares (text alone unless it says more): an
	// --output it would ignore is an error, not silence.
	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		allowed := strings.Split(cmd.Annotations[outputsKey], ",")
		if cmd.Annotations[outputsKey] == "" {
			allowed = []string{"text"}
		}
		if !slices.Contains(allowed, opts.output) {
			if len(allowed) == 1 {
				return usageError{fmt.Errorf("%s prints text only: drop --output %s", cmd.CommandPath(), opts.output)}
			}
			return usageError{fmt.Errorf("--output %q is not supported by %s: use %s", opts.output, cmd.CommandPath(), strings.Join(allowed, " or "))}
		}
		return nil
	}
	root.AddCommand(newVersionCommand(opts), newLsCommand(opts), newAppsCommand(opts), newInitCommand(opts), newValidateCommand(opts), newRenderCommand(opts),
		newUpCommand(opts), newDownCommand(opts), newRestartCommand(opts), newPsCommand(opts), newEnvCommand(opts), newDiffCommand(opts), newLogsCommand(opts), newForwardCommand(opts),
		newSetCommand(opts), newInstanceCommand(opts), newHistoryCommand(opts), newShowCommand(opts), newRevertCommand(opts), newSyncCommand(opts), newServeCommand(opts), newRunCommand(opts), newExecCommand(opts))
	addCompletions(opts, root)
	for _, c := range root.Commands() {
		switch c.Name() {
		case "version", "ls", "apps", "env", "validate", "history", "show", "sync":
			withOutputs(c, "text", "json")
		case "ps":
			withOutputs(c, "text", "wide", "json", "yaml")
		case "render":
			withOutputs(c, "text", "yaml", "json") // text is yaml
		}
	}
	return root
}

// noArgs rejects positional arguments, naming an unknown subcommand as such.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	if cmd.HasSubCommands() {
		hint := ""
		if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
			hint = fmt.Sprintf(" (did you mean %q?)", s[0])
		}
		return usageError{fmt.Errorf("unknown command %q for %q%s", args[0], cmd.CommandPath(), hint)}
	}
	return usageError{fmt.Errorf("%q takes no arguments, got %q", cmd.CommandPath(), strings.Join(args, " "))}
}

func newVersionCommand(opts *options) *cobra.Command {
	return &cobra.Command{
		Use:     "version",
		Example: "  roro version\n  roro --version\n  roro version -o json",
		Short:   "Print roro's version and the Go version it was built with",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			goVersion := "unknown"
			if bi, ok := debug.ReadBuildInfo(); ok {
				goVersion = bi.GoVersion
			}
			if opts.output == "json" {
				return writeJSON(opts.stdout, map[string]string{"version": version, "go": goVersion})
			}
			_, err := fmt.Fprintf(opts.stdout, "roro %s (%s)\n", version, goVersion)
			return err
		},
	}
}

// addCompletions completes app names where a command takes apps, and --env and --instance
// with the workspace's environments and the app's instances (bash, zsh and fish through
// `roro completion`).
func addCompletions(opts *options, root *cobra.Command) {
	apps := func(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
		ws, err := loadWorkspace(opts)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		if !strings.Contains(cmd.Use, "APP...") && !strings.HasPrefix(cmd.Use, cmd.Name()+" [APP") && len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp // one app only
		}
		return ws.AppNames(), cobra.ShellCompDirectiveNoFileComp
	}
	envs := func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		ws, err := loadWorkspace(opts)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return ws.EnvironmentNames(), cobra.ShellCompDirectiveNoFileComp
	}
	instances := func(_ *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
		ws, err := loadWorkspace(opts)
		if err != nil || len(args) == 0 || ws.App(args[0]) == nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return append([]string{workspace.DefaultInstance}, ws.App(args[0]).InstanceNames()...), cobra.ShellCompDirectiveNoFileComp
	}
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		if f := strings.Fields(c.Use); len(f) > 1 && strings.Contains(f[1], "APP") {
			c.ValidArgsFunction = apps
		}
		if c.Flags().Lookup("env") != nil {
			_ = c.RegisterFlagCompletionFunc("env", envs)
		}
		if c.Flags().Lookup("instance") != nil {
			_ = c.RegisterFlagCompletionFunc("instance", instances)
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}

// errDifferences ends `roro diff` with exit status 1 when it found differences, as
// kubectl diff does; nothing more is printed.
var errDifferences = errors.New("there are differences")

// outputsKey is the annotation listing the --output formats a command writes, as
// withOutputs sets it; without it, a command writes text only.
const outputsKey = "roro/outputs"

// withOutputs declares the --output formats cmd writes.
func withOutputs(cmd *cobra.Command, formats ...string) *cobra.Command {
	if cmd.Annotations == nil {
		cmd.Annotations = map[string]string{}
	}
	cmd.Annotations[outputsKey] = strings.Join(formats, ",")
	return cmd
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false) // '<', '>' and '&' as they are, as kubectl prints them
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// workspaceDir is the workspace named by --workspace, or the nearest one up from the
// current folder.
func workspaceDir(opts *options) (string, error) {
	if opts.workspace != "" {
		return opts.workspace, nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	return workspace.Find(wd)
}

// loadWorkspace finds and loads the workspace.
func loadWorkspace(opts *options) (*workspace.Workspace, error) {
	dir, err := workspaceDir(opts)
	if err != nil {
		return nil, err
	}
	return workspace.Load(dir)
}

// appSummary is one row of the overview, also its JSON form.
type appSummary struct {
	Name      string   `json:"name"`
	Group     string   `json:"group,omitempty"`
	Engine    string   `json:"engine"`
	Namespace string   `json:"namespace"`
	DependsOn []string `json:"dependsOn,omitempty"`
	Forwards  []string `json:"forwards,omitempty"`
	Instances []string `json:"instances,omitempty"`
}

func summarize(app *workspace.App) appSummary {
	s := appSummary{
		Name:      app.Name,
		Group:     app.File.Group,
		Engine:    app.Engine(),
		Namespace: app.Namespace(),
		DependsOn: app.File.DependsOn,
		Instances: app.InstanceNames(),
	}
	for _, f := range app.File.Forwards {
		s.Forwards = append(s.Forwards, f.Target+" "+strings.Join(f.Ports, ","))
	}
	return s
}

func newAppsCommand(opts *options) *cobra.Command {
	return &cobra.Command{
		Use:     "apps",
		Example: "  roro apps\n  roro apps -o json",
		Short:   "List the workspace's apps: group, engine, namespace, dependencies, forwards, instances",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runOverview(opts)
		},
	}
}

func runOverview(opts *options) error {
	ws, err := loadWorkspace(opts)
	if err != nil {
		return err
	}
	rows := make([]appSummary, 0, len(ws.Apps))
	for _, a := range ws.Apps {
		rows = append(rows, summarize(a))
	}
	if opts.output == "json" {
		return writeJSON(opts.stdout, map[string]any{
			"workspace": ws.File.Name, "dir": ws.Dir,
			"defaultEnvironment": ws.File.DefaultEnvironment, "environments": ws.EnvironmentNames(),
			"apps": rows,
		})
	}
	fmt.Fprintf(opts.stdout, "Workspace %s (%s)\nEnvironments: %s (default %s)\n\n", ws.File.Name, ws.Dir,
		strings.Join(ws.EnvironmentNames(), ", "), orDash(ws.File.DefaultEnvironment))
	tw := tabwriter.NewWriter(opts.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "APP\tGROUP\tENGINE\tNAMESPACE\tDEPENDS ON\tFORWARDS\tINSTANCES")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Name, orDash(r.Group), r.Engine, r.Namespace,
			orDash(strings.Join(r.DependsOn, ",")), orDash(strings.Join(r.Forwards, "; ")),
			orDash(strings.Join(r.Instances, ",")))
	}
	return tw.Flush()
}

func newLsCommand(opts *options) *cobra.Command {
	return &cobra.Command{
		Use:     "ls",
		Example: "  roro ls\n  roro ls -o json",
		Short:   "List the workspaces roro knows on this machine, with what it last saw running in each",
		Long: `List every workspace roro has worked with on this machine (created with init, opened in
the window, or used with a command that reaches a cluster), as docker compose ls lists
projects. The instances are what roro last saw running there (by up, down or ps): a local
record that asks no cluster; ` + "`roro -w FOLDER ps`" + ` asks the clusters.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			stateDir, err := runtime.StateDir()
			if err != nil {
				return err
			}
			known, err := runtime.Known(stateDir)
			if err != nil {
				return fmt.Errorf("list the workspaces in %s: %w", stateDir, err)
			}
			if opts.output == "json" {
				if known == nil {
					known = []runtime.KnownWorkspace{}
				}
				return writeJSON(opts.stdout, known)
			}
			if len(known) == 0 {
				_, err := fmt.Fprintln(opts.stdout, "no workspace yet: create one with `roro init`")
				return err
			}
			tw := tabwriter.NewWriter(opts.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tINSTANCES UP\tAS OF\tFOLDER")
			for _, k := range known {
				folder := k.Dir
				if k.Problem != "" {
					folder += " (" + k.Problem + ")"
				}
				fmt.Fprintf(tw, "%s\t%d\t%s ago\t%s\n", orDash(k.Name), len(k.Deployed), duration.HumanDuration(time.Since(k.Updated)), folder)
			}
			return tw.Flush()
		},
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
