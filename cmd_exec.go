package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	"golang.org/x/term"
	"k8s.io/client-go/tools/remotecommand"

	"github.com/rorokube/roro/core/kube"
	"github.com/rorokube/roro/core/runtime"
)

func newExecCommand(opts *options) *cobra.Command {
	var f renderFlags
	var container string
	var stdin, tty bool
	cmd := &cobra.Command{
		Use:   "exec APP [-c CONTAINER] [-i] [-t] -- COMMAND [ARG...]",
		Short: "Run a command in the first Ready pod of an app's instance, as kubectl exec",
		Long: `Run COMMAND in a container (the pod's first unless -c) of the first Ready pod, by name, of
APP's instance; its output comes back, and roro exits with its exit status.

-i passes roro's standard input to the command; -t gives it a terminal (its size follows
yours), so -it runs a shell. As in kubectl exec, -i is --stdin here: the instance is
--instance. As with kubectl, -t needs a terminal on roro's input, and a
terminal has one output: the command's stderr comes on stdout.`,
		Example: `  roro exec db -- psql -U postgres -c 'select 1'
  roro exec -it db -- psql -U postgres
  roro exec -i db -- psql -U postgres < dump.sql
  roro exec api -c sidecar -- cat /etc/hosts
  roro exec api --instance pr-42 -- env`,
		Args: func(cmd *cobra.Command, args []string) error {
			if cmd.ArgsLenAtDash() == 2 && cmd.Flags().Changed("stdin") {
				return usageError{fmt.Errorf(`"roro exec" takes one app before --, got %q: -i is --stdin here, as in kubectl exec; pick an instance with --instance %s`, args[:2], args[0])}
			}
			if cmd.ArgsLenAtDash() != 1 || len(args) < 2 {
				return usageError{errors.New(`"roro exec" needs an app, then -- and the command: roro exec db -- psql`)}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			streams := kube.ExecIO{Stdout: opts.stdout, Stderr: opts.stderr}
			if stdin {
				streams.Stdin = opts.stdin
			}
			if tty {
				if opts.stdin == nil || !term.IsTerminal(int(opts.stdin.Fd())) {
					fmt.Fprintln(opts.stderr, "Unable to use a TTY: roro's input is not a terminal; running without one")
				} else {
					restore, err := terminalFor(cmd.Context(), opts.stdin, stdin, &streams)
					if err != nil {
						return err
					}
					defer restore()
				}
			}
			return withEngine(opts, func(eng *runtime.Engine) error {
				err := eng.Exec(cmd.Context(), args[0], runtime.Selection{Environment: f.env, Instance: f.instance}, container, args[1:], streams)
				var ee *kube.ExitError
				if errors.As(err, &ee) {
					return exitCode(ee.Code)
				}
				return err
			})
		},
	}
	// As in kubectl exec, -i is --stdin here; the instance is --instance only.
	cmd.Flags().StringVarP(&f.env, "env", "e", "", "environment (default: the instance's, else the workspace's default)")
	cmd.Flags().StringVar(&f.instance, "instance", "", "instance to run in (default: the default instance; -i is --stdin here, as in kubectl exec)")
	cmd.Flags().StringVarP(&container, "container", "c", "", "the container (default: the pod's first)")
	cmd.Flags().BoolVarP(&stdin, "stdin", "i", false, "pass roro's standard input to the command")
	cmd.Flags().BoolVarP(&tty, "tty", "t", false, "give the command a terminal (needs one on roro's input)")
	return cmd
}

// terminalFor gives the command a terminal: the local one in raw mode when it also reads
// from it (keys go through as typed, Ctrl-C included), and its size now and after every
// change. The returned function puts the terminal back.
func terminalFor(ctx context.Context, in *os.File, raw bool, streams *kube.ExecIO) (func(), error) {
	fd := int(in.Fd())
	restore := func() {}
	if raw {
		old, err := term.MakeRaw(fd)
		if err != nil {
			return nil, fmt.Errorf("put the terminal in raw mode: %w", err)
		}
		restore = func() { _ = term.Restore(fd, old) }
	}
	sizes := make(chan remotecommand.TerminalSize, 1)
	send := func() {
		w, h, err := term.GetSize(fd)
		if err != nil {
			return
		}
		select { // a size not read yet is replaced by the newer one (one sender: no block)
		case <-sizes:
		default:
		}
		sizes <- remotecommand.TerminalSize{Width: uint16(w), Height: uint16(h)}
	}
	send()
	winch := make(chan os.Signal, 1)
	signal.Notify(winch, syscall.SIGWINCH)
	ctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(sizes)
		for {
			select {
			case <-ctx.Done():
				return
			case <-winch:
				send()
			}
		}
	}()
	streams.TTY = true
	streams.Sizes = sizeQueue(sizes)
	return func() {
		signal.Stop(winch)
		stop()
		<-done
		restore()
	}, nil
}

// sizeQueue hands the terminal's sizes to remotecommand; nil once the command has ended.
type sizeQueue chan remotecommand.TerminalSize

func (q sizeQueue) Next() *remotecommand.TerminalSize {
	s, ok := <-q
	if !ok {
		return nil
	}
	return &s
}
