package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/rorokube/roro/core/runtime"
)

// forwardsOf waits (two seconds at most) until the snapshot shows the forwards of apps
// bound, and returns them.
func forwardsOf(ctx context.Context, eng *runtime.Engine, apps []string) []runtime.ForwardView {
	changed, stop := eng.Subscribe()
	defer stop()
	deadline := time.After(2 * time.Second)
	for {
		fws := eng.Snapshot().Forwards
		have := map[string]bool{}
		for _, f := range fws {
			if len(f.Ports) > 0 { // bound
				have[f.App] = true
			}
		}
		all := true
		for _, a := range apps {
			all = all && have[a]
		}
		if all {
			return fws
		}
		select {
		case <-changed:
		case <-deadline:
			return fws
		case <-ctx.Done():
			return fws
		}
	}
}

// exitCode ends roro with a code of its own and nothing printed: a process `roro run`
// started ended with it.
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

func newRunCommand(opts *options) *cobra.Command {
	var f renderFlags
	var noForwards bool
	cmd := &cobra.Command{
		Use:   "run APP -- COMMAND [ARG...]",
		Short: "Run a local process with an app's env and forwards to the apps it depends on",
		Long: `Run COMMAND on this machine as if it were APP in the cluster: with APP's env resolved as up
resolves it (host variables, values read from cluster objects and Secrets included; nothing
is written to disk) on top of your own environment, and with the port forwards of the apps
APP depends on running for as long as COMMAND does. Develop one service locally against the
rest running in the cluster.

roro exits with COMMAND's exit status; Ctrl-C goes to COMMAND, and the forwards stop when it
ends.`,
		Example: `  roro run api -- go run ./cmd/api
  roro run web --env staging -- npm start`,
		Args: func(cmd *cobra.Command, args []string) error {
			if cmd.ArgsLenAtDash() != 1 || len(args) < 2 {
				return usageError{errors.New(`"roro run" needs an app, then -- and the command: roro run api -- go run ./cmd/api`)}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			app, command := args[0], args[1:]
			sel := runtime.Selection{Environment: f.env, Instance: f.instance}
			opts.board = "roro run"
			return withEngine(opts, func(eng *runtime.Engine) error {
				a, err := eng.Workspace().Lookup(app)
				if err != nil {
					return err
				}
				env, err := eng.Env(cmd.Context(), app, sel)
				if err != nil {
					return err
				}
				var started []string
				if !noForwards {
					for _, dep := range a.File.DependsOn {
						d := eng.Workspace().App(dep)
						if d == nil || len(d.File.Forwards) == 0 {
							continue
						}
						if err := eng.StartForwards(cmd.Context(), dep, runtime.Selection{Environment: f.env}); err != nil {
							return fmt.Errorf("forward %s, which %s depends on: %w", dep, app, err)
						}
						started = append(started, dep)
					}
				}
				defer eng.StopAllForwards()
				var addrs []string
				for _, fv := range forwardsOf(cmd.Context(), eng, started) {
					for _, p := range fv.Ports {
						addrs = append(addrs, fmt.Sprintf("%s %s:%d → %s %s", fv.App, fv.Address, p.Local, fv.Target, p.Remote))
					}
				}
				names := make([]string, 0, len(env.Values))
				for n := range env.Values {
					names = append(names, n)
				}
				sort.Strings(names)
				fmt.Fprintf(opts.stderr, "roro: running %s with %s's env (%s)", strings.Join(command, " "), app, strings.Join(names, ", "))
				if len(addrs) > 0 {
					fmt.Fprintf(opts.stderr, " and forwards %s", strings.Join(addrs, "; "))
				}
				fmt.Fprintln(opts.stderr)
				c := exec.Command(command[0], command[1:]...)
				c.Env = os.Environ()
				for _, n := range names {
					c.Env = append(c.Env, n+"="+env.Values[n])
				}
				c.Stdin, c.Stdout, c.Stderr = os.Stdin, opts.stdout, opts.stderr
				if err := c.Start(); err != nil {
					return fmt.Errorf("start %s: %w", command[0], err)
				}
				// Ctrl-C and SIGTERM are the command's to handle; roro waits for it.
				sigs := make(chan os.Signal, 1)
				signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
				defer signal.Stop(sigs)
				done := make(chan error, 1)
				go func() { done <- c.Wait() }()
				for {
					select {
					case s := <-sigs:
						_ = c.Process.Signal(s)
					case err := <-done:
						var ee *exec.ExitError
						if errors.As(err, &ee) {
							return exitCode(ee.ExitCode())
						}
						return err
					}
				}
			})
		},
	}
	f.registerInstance(cmd, "whose env to use")
	cmd.Flags().BoolVar(&noForwards, "no-forwards", false, "start no forwards to the apps APP depends on")
	return cmd
}
