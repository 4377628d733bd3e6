package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/rorokube/roro/core/kube"
	"github.com/rorokube/roro/core/render"
	"github.com/rorokube/roro/core/runtime"
	"github.com/rorokube/roro/core/store"
	"github.com/rorokube/roro/forward"
)

// clusterFlags choose the cluster, as kubectl's do.
type clusterFlags struct {
	kubeconfig string
	context    string
}

func (f *clusterFlags) register(cmd *cobra.Command) {
	cmd.PersistentFlags().StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)")
	cmd.PersistentFlags().StringVar(&f.context, "context", "", "kubeconfig context (default: the environment's, else the current one)")
}

// newEngine loads the workspace and starts an engine whose clusters come from the
// kubeconfig: --context, else the environment's context in roro.json, else the current
// context. The caller closes it.
func newEngine(opts *options) (*runtime.Engine, error) {
	ws, err := loadWorkspace(opts)
	if err != nil {
		return nil, err
	}
	stateDir, err := runtime.StateDir()
	if err != nil {
		return nil, err
	}
	st := runtime.NewStore(stateDir, ws.Dir)
	_ = st.Remember(ws.Dir) // `roro ls` lists it; a state folder we cannot write is no reason to stop
	var repo runtime.Repo
	if opts.gitSync {
		// A workspace that is no git repository still opens, without history or sync.
		if s, err := store.Open(ws.Dir, time.Now); err == nil {
			repo = s
		}
	}
	var board *runtime.Board
	if opts.board != "" {
		if board, err = runtime.OpenBoard(runtime.BoardDir(stateDir), ws.Dir, opts.board); err != nil {
			fmt.Fprintf(opts.stderr, "roro ps will not see these forwards: %v\n", err)
		}
	}
	eng, err := runtime.New(ws, runtime.Options{
		Repo:             repo,
		Connect:          runtime.KubeConnector(opts.cluster.kubeconfig, opts.cluster.context, kube.DefaultTimeout, time.Now, opts.stderr),
		Store:            st,
		LookupHost:       os.LookupEnv,
		Now:              time.Now,
		Transport:        opts.transport,
		Watch:            opts.watch,
		WatchFiles:       opts.watchFiles,
		AllowNonLoopback: opts.allowAddress,
		Render:           opts.templates,
		Board:            board,
	})
	if err != nil {
		_ = board.Close()
	}
	return eng, err
}

// withEngine runs fn with a new engine and closes it after.
func withEngine(opts *options, fn func(*runtime.Engine) error) error {
	eng, err := newEngine(opts)
	if err != nil {
		return err
	}
	defer eng.Close()
	return fn(eng)
}

// wait follows an operation to its end; Ctrl-C cancels it, waits for it to stop, and says
// where it stopped.
func wait(ctx context.Context, op *runtime.Operation) error {
	select {
	case <-op.Done():
		return op.Err()
	case <-ctx.Done():
	}
	op.Cancel()
	<-op.Done()
	if err := op.Err(); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	step := "first"
	if op.Step() != "" {
		step = string(op.Step())
	}
	return fmt.Errorf("%s cancelled at its %s step; what it did stays (run it again to carry on)", op.Kind(), step)
}

func newUpCommand(opts *options) *cobra.Command {
	var f renderFlags
	var force, noWait, withForwards bool
	var timeout time.Duration
	var parallel int
	cmd := &cobra.Command{
		Use:   "up [APP...]",
		Short: "Apply apps to the cluster in dependency order and wait until they are healthy",
		Long: `Bring apps up: render them with env resolved from the cluster, dry-run every object on
the server (if any fails, nothing is written and every failure is listed), create namespaces
and CRDs first, apply the rest with server-side apply (field manager "roro"), prune what the
instance owned before and no longer renders, and wait for health (kstatus) before the apps
that depend on it start; apps that do not depend on each other come up in parallel
(--parallel bounds how many at once). With no APP, every app of the workspace. Ctrl-C stops
the up at its current step; what was applied stays.

An app's dependencies come up with it. --instance runs a further copy of the apps named, in
its own namespace (or with its name suffix); their dependencies run as their default instance.`,
		Example: `  roro up
  roro up web                        web, and api and db it depends on
  roro up api --instance pr-42 --env staging
  roro up api --set replicas=3 --force-conflicts
  roro up --forward                  up, then forward every app's ports until Ctrl-C`,
		RunE: func(cmd *cobra.Command, args []string) error {
			values, err := f.cliValues()
			if err != nil {
				return err
			}
			opts.watchFiles = withForwards
			if withForwards {
				opts.board = "roro up --forward"
			}
			return withEngine(opts, func(eng *runtime.Engine) error {
				op, err := eng.Up(runtime.UpRequest{
					Selection:      runtime.Selection{Apps: args, Environment: f.env, Instance: f.instance},
					Values:         values,
					ForceConflicts: force,
					NoWait:         noWait,
					Timeout:        timeout,
					Progress:       progressPrinter(opts),
					Forward:        withForwards,
					Parallel:       parallel,
				})
				if err != nil {
					return err
				}
				if err := wait(cmd.Context(), op); err != nil || !withForwards {
					return err
				}
				// Forward until Ctrl-C; the apps stay up (roro down takes them down).
				fmt.Fprintln(opts.stderr, "forwarding; Ctrl-C stops the forwards, the apps stay up")
				printForwards(cmd.Context(), eng, forwardPrinter(opts), opts.stderr)
				return nil
			})
		},
	}
	f.register(cmd)
	cmd.Flags().BoolVar(&force, "force-conflicts", false, "take over fields another field manager owns instead of failing")
	cmd.Flags().BoolVar(&noWait, "no-wait", false, "return once applied, without waiting for health")
	// Compose's habits: up returns once healthy and leaves the apps running (-d is what it
	// always does), and waits for health (--wait, the default).
	var detach, waitFlag bool
	cmd.Flags().BoolVarP(&detach, "detach", "d", false, "accepted for docker compose's habit: up always returns once the apps are healthy, and they keep running")
	cmd.Flags().BoolVar(&waitFlag, "wait", false, "accepted for docker compose's habit: up waits for health unless --no-wait")
	cmd.Flags().BoolVar(&withForwards, "forward", false, "then run the apps' port forwards until Ctrl-C")
	cmd.Flags().DurationVar(&timeout, "timeout", 5*time.Minute, "how long to wait for each app to be healthy")
	cmd.Flags().IntVar(&parallel, "parallel", 0, "how many apps that do not depend on each other come up at once (0: all)")
	return cmd
}

func newDownCommand(opts *options) *cobra.Command {
	var f renderFlags
	var volumes, crds bool
	cmd := &cobra.Command{
		Use:   "down [APP...]",
		Short: "Delete what apps' instances own, dependents first",
		Long: `Take instances down: delete every object the instance owns (found by its ApplySet labels in
the cluster, so it works after the local state is lost), dependents first, then its namespace
when roro created it. PersistentVolumeClaims, CRDs and namespaces roro did not create are kept
unless asked. Taking down something that is not running says so and succeeds.`,
		Example: `  roro down
  roro down api --instance pr-42
  roro down db --volumes`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return withEngine(opts, func(eng *runtime.Engine) error {
				op, err := eng.Down(runtime.DownRequest{
					Selection:   runtime.Selection{Apps: args, Environment: f.env, Instance: f.instance},
					DownOptions: runtime.DownOptions{Volumes: volumes, CRDs: crds}, Progress: progressPrinter(opts),
				})
				if err != nil {
					return err
				}
				err = wait(cmd.Context(), op)
				for _, r := range op.DownResults() {
					if !r.Running && !failedFor(err, r.App) {
						fmt.Fprintf(opts.stdout, "%s (%s) is not running\n", r.App, r.Instance)
					}
				}
				return err
			})
		},
	}
	f.registerInstance(cmd, "to take down")
	cmd.Flags().BoolVarP(&volumes, "volumes", "v", false, "also delete PersistentVolumeClaims")
	cmd.Flags().BoolVar(&crds, "crds", false, "also delete CustomResourceDefinitions the apps applied")
	return cmd
}

func newRestartCommand(opts *options) *cobra.Command {
	var f renderFlags
	cmd := &cobra.Command{
		Use:   "restart APP",
		Short: "Replace the pods of an app's workloads, as kubectl rollout restart does, and wait until healthy",
		Long: `Restart an app's instance: stamp the pod template of each of its Deployments, StatefulSets
and DaemonSets with the time (the annotation kubectl rollout restart sets), so their
controllers replace the pods, then wait until every workload is healthy again. The manifests
are not re-applied; use up for that.`,
		Example: `  roro restart api
  roro restart api --instance pr-42`,
		Args: exactArgs(1, "APP"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withEngine(opts, func(eng *runtime.Engine) error {
				op, err := eng.Restart(args[0], runtime.Selection{Environment: f.env, Instance: f.instance}, progressPrinter(opts))
				if err != nil {
					return err
				}
				return wait(cmd.Context(), op)
			})
		},
	}
	f.registerInstance(cmd, "to restart")
	return cmd
}

// progressPrinter prints each step of long work on stderr, so stdout stays for results.
func progressPrinter(opts *options) func(runtime.Event) {
	start := time.Now()
	var mu sync.Mutex // apps of one level report from their own goroutines
	return func(e runtime.Event) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(opts.stderr, "%6.1fs  %s\n", time.Since(start).Seconds(), strings.TrimRight(e.String(), " "))
	}
}

func newEnvCommand(opts *options) *cobra.Command {
	var f renderFlags
	var export string
	var showSecrets bool
	cmd := &cobra.Command{
		Use:   "env APP",
		Short: "Print an app's resolved env, or write it to a .env file",
		Long: `Resolve an app's env sources (static values, host variables, fields of cluster objects read
with JSONPath) for an environment and print them as NAME=value. Secret values (marked
"secret") print as ****** unless --show-secrets. --export writes every value, unmasked, to a
.env file with mode 0600; never commit it.`,
		Example: `  roro env api
  roro env api --env staging
  roro env api --export .env`,
		Args: exactArgs(1, "APP"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withEngine(opts, func(eng *runtime.Engine) error {
				env, err := eng.Env(cmd.Context(), args[0], runtime.Selection{Environment: f.env, Instance: f.instance})
				if err != nil {
					return err
				}
				names := make([]string, 0, len(env.Values))
				for n := range env.Values {
					names = append(names, n)
				}
				slices.Sort(names)
				if export != "" {
					data, err := env.DotEnv()
					if err != nil {
						return fmt.Errorf("export %s: %w", export, err)
					}
					if err := store.WriteFileAtomic(export, []byte(data), 0o600); err != nil {
						return fmt.Errorf("export %s: %w", export, err)
					}
					fmt.Fprintf(opts.stderr, "wrote %d variables to %s (mode 0600)\n", len(names), export)
					return nil
				}
				if opts.output == "json" {
					out := map[string]string{}
					for _, n := range names {
						out[n] = maskIf(env.Values[n], env.Secret[n] && !showSecrets)
					}
					return writeJSON(opts.stdout, out)
				}
				for _, n := range names {
					fmt.Fprintf(opts.stdout, "%s=%s\n", n, maskIf(env.Values[n], env.Secret[n] && !showSecrets))
				}
				return nil
			})
		},
	}
	f.registerInstance(cmd, "")
	cmd.Flags().StringVar(&export, "export", "", "write NAME=value lines to this file (mode 0600) instead of printing")
	cmd.Flags().BoolVar(&showSecrets, "show-secrets", false, "print secret values")
	return cmd
}

func maskIf(v string, secret bool) string {
	if secret {
		return render.SecretMask
	}
	return v
}

func newDiffCommand(opts *options) *cobra.Command {
	var f renderFlags
	cmd := &cobra.Command{
		Use:   "diff APP",
		Short: "Show what `up` would change: live objects against the rendered ones (server-side dry run)",
		Long: `Render an app's instance, dry-run it on the server, and print a unified diff against the live
objects, including objects the next up would prune. Secret data and secret env values are
masked; a Secret's key whose value changed shows as "****** (changed)".

Exit status, as kubectl diff's: 0 when there is nothing to change, 1 when there are
differences, above 1 on an error. With KUBECTL_EXTERNAL_DIFF set (for example "meld" or
"diff -u -N"), the live and rendered objects are written as YAML files in two folders, live/
and rendered/, and that program is run on them. Colour on a terminal; never with NO_COLOR set
or when the output is not a terminal.`,
		Example: `  roro diff api
  roro diff api --env staging --set replicas=3
  KUBECTL_EXTERNAL_DIFF=meld roro diff web`,
		Args: exactArgs(1, "APP"),
		RunE: func(cmd *cobra.Command, args []string) error {
			values, err := f.cliValues()
			if err != nil {
				return err
			}
			return withEngine(opts, func(eng *runtime.Engine) error {
				sel := runtime.Selection{Environment: f.env, Instance: f.instance}
				if ext := os.Getenv("KUBECTL_EXTERNAL_DIFF"); ext != "" {
					return externalDiff(cmd.Context(), opts, eng, args[0], sel, values, ext)
				}
				d, err := eng.Diff(cmd.Context(), args[0], sel, values)
				if err != nil {
					return err
				}
				if d == "" {
					return nil
				}
				if colour(opts.stdout) {
					d = colourDiff(d)
				}
				if _, err := fmt.Fprint(opts.stdout, d); err != nil {
					return err
				}
				return errDifferences
			})
		},
	}
	f.register(cmd)
	return cmd
}

func newLogsCommand(opts *options) *cobra.Command {
	var f renderFlags
	var lo kube.LogOptions
	cmd := &cobra.Command{
		Use:   "logs [APP...]",
		Short: "Stream the logs of apps' pods, each line prefixed with [pod/container] (every running app when none is named)",
		Long: `Print the logs of every container of the pods of an app's instance (the pods its
Deployments, StatefulSets, DaemonSets and Jobs select). With -f, keep following, and pick up
pods that start later, as after a rollout. Several apps, or none (every app that runs), are
streamed together, each line prefixed with its app as well, as docker compose logs does.`,
		Example: `  roro logs api
  roro logs api -f --tail 20
  roro logs api --instance pr-42 --since 10m
  roro logs -f                      every running app`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return withEngine(opts, func(eng *runtime.Engine) error {
				sel := runtime.Selection{Environment: f.env, Instance: f.instance}
				apps, prefixed := args, len(args) > 1
				if len(apps) == 0 {
					list, err := eng.Ps(cmd.Context())
					if err != nil && len(list) == 0 {
						return err
					}
					seen := map[string]bool{}
					for _, s := range list {
						if !seen[s.App] && (f.instance == "" || s.Instance == f.instance) {
							seen[s.App] = true
							apps = append(apps, s.App)
						}
					}
					if len(apps) == 0 {
						fmt.Fprintln(opts.stderr, "nothing is running; start with `roro up`")
						return nil
					}
					prefixed = true
				}
				var mu sync.Mutex
				errs := make([]error, len(apps))
				var wg sync.WaitGroup
				for i, app := range apps {
					wg.Go(func() {
						errs[i] = eng.Logs(cmd.Context(), app, sel, lo, func(l kube.LogLine) {
							mu.Lock()
							defer mu.Unlock()
							if prefixed {
								fmt.Fprintf(opts.stdout, "%s | [%s/%s] %s\n", app, l.Pod, l.Container, l.Line)
								return
							}
							fmt.Fprintf(opts.stdout, "[%s/%s] %s\n", l.Pod, l.Container, l.Line)
						})
					})
				}
				wg.Wait()
				if cmd.Context().Err() != nil {
					return nil // Ctrl-C: a normal end of -f
				}
				return errors.Join(errs...)
			})
		},
	}
	f.registerInstance(cmd, "")
	cmd.Flags().BoolVarP(&lo.Follow, "follow", "f", false, "keep streaming, and follow new pods")
	cmd.Flags().Int64Var(&lo.Tail, "tail", 0, "start with the last N lines of each log (default: all)")
	cmd.Flags().DurationVar(&lo.Since, "since", 0, "start with lines newer than this, such as 10m")
	return cmd
}

func newForwardCommand(opts *options) *cobra.Command {
	var f renderFlags
	var transport string
	cmd := &cobra.Command{
		Use:   "forward APP",
		Short: "Run an app's port forwards in the foreground, printing every change of their state",
		Long: `Run the forwards an app declares ("forwards" in its app.json) until Ctrl-C. Each local port
is bound once and stays bound while pods restart, roll out or the API server blips; new
connections go to a Ready pod (and wait for one, up to 30 s, when none is). Every change is
printed as it happens: listening, connected to pod X, reconnecting (why), failed (why).`,
		Example: `  roro forward api
  roro forward api --instance pr-42
  roro forward db --transport spdy`,
		Args: exactArgs(1, "APP"),
		RunE: func(cmd *cobra.Command, args []string) error {
			switch transport {
			case forward.TransportAuto, forward.TransportWebSocket, forward.TransportSPDY:
			default:
				return usageError{fmt.Errorf("--transport %q: use auto, websocket or spdy", transport)}
			}
			opts.transport = transport
			opts.watchFiles = true
			opts.board = "roro forward"
			return withEngine(opts, func(eng *runtime.Engine) error {
				printer := forwardPrinter(opts)
				if err := eng.StartForwards(cmd.Context(), args[0], runtime.Selection{Environment: f.env, Instance: f.instance}); err != nil {
					if cmd.Context().Err() != nil {
						return nil // Ctrl-C: a normal end
					}
					return err
				}
				printForwards(cmd.Context(), eng, printer, opts.stderr)
				return nil
			})
		},
	}
	f.registerInstance(cmd, "")
	cmd.Flags().StringVar(&transport, "transport", forward.TransportAuto, "auto (WebSocket, then SPDY), websocket or spdy")
	return cmd
}

// printForwards prints the engine's forwards after every change until ctx ends (Ctrl-C),
// then stops them and prints their last states.
func printForwards(ctx context.Context, eng *runtime.Engine, print func([]runtime.ForwardView), stderr io.Writer) {
	changed, stop := eng.Subscribe()
	defer stop()
	print(eng.Snapshot().Forwards)
	problem := ""
	for {
		select {
		case <-ctx.Done():
			print(eng.StopAllForwards())
			return
		case <-changed:
			s := eng.Snapshot()
			// The files are watched: say when an edit does not load, and when it is fixed.
			if p := s.Workspace.Problem; p != problem {
				if p != "" {
					fmt.Fprintf(stderr, "the workspace's files do not load; forwarding as before the edit: %s\n", p)
				} else {
					fmt.Fprintln(stderr, "the workspace loads again")
				}
				problem = p
			}
			print(s.Forwards)
		}
	}
}

// forwardPrinter prints each forward's bound addresses once, then every event of its log it
// has not printed yet (by sequence number, so a log that stopped growing at its bound still
// prints), and why a forward could not start.
func forwardPrinter(opts *options) func([]runtime.ForwardView) {
	var mu sync.Mutex
	printed := map[string]uint64{}
	announced := map[string]bool{}
	failed := map[string]string{}
	return func(all []runtime.ForwardView) {
		mu.Lock()
		defer mu.Unlock()
		for _, fv := range all {
			if fv.Err != "" {
				key := fv.App + "/" + fv.Instance
				if failed[key] != fv.Err {
					failed[key] = fv.Err
					fmt.Fprintf(opts.stderr, "%s: forwards not running: %s\n", key, fv.Err)
				}
				continue
			}
			st := fv.Status
			key := st.Namespace + "/" + st.Target
			if !announced[key] && len(st.Ports) > 0 {
				announced[key] = true
				for _, p := range st.Ports {
					fmt.Fprintf(opts.stdout, "%s  %s:%d → %s %s\n", key, st.Address, p.Local, st.Target, p.Remote)
				}
			}
			for _, e := range st.Events {
				if e.Seq > printed[key] {
					fmt.Fprintf(opts.stdout, "%s  %s\n", key, e)
					printed[key] = e.Seq
				}
			}
		}
	}
}

// failedFor reports whether err holds a failure of app.
func failedFor(err error, app string) bool {
	for _, p := range runtime.Problems(err) {
		var ae *runtime.AppError
		if errors.As(p, &ae) && ae.App == app {
			return true
		}
	}
	return false
}
