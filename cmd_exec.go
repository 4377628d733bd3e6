package main

import (
	"errors"

	"github.com/spf13/cobra"

	"github.com/rorokube/roro/core/kube"
	"github.com/rorokube/roro/core/runtime"
)

func newExecCommand(opts *options) *cobra.Command {
	var f renderFlags
	var container string
	cmd := &cobra.Command{
		Use:   "exec APP [-c CONTAINER] -- COMMAND [ARG...]",
		Short: "Run a command in the first Ready pod of an app's instance, as kubectl exec",
		Long: `Run COMMAND in a container (the pod's first unless -c) of the first Ready pod, by name, of
APP's instance; its output comes back, and roro exits with its exit status. No input is
passed to the command, and there is no terminal mode (kubectl's -i and -t), yet.`,
		Example: `  roro exec db -- psql -U postgres -c 'select 1'
  roro exec api -c sidecar -- cat /etc/hosts`,
		Args: func(cmd *cobra.Command, args []string) error {
			if cmd.ArgsLenAtDash() != 1 || len(args) < 2 {
				return usageError{errors.New(`"roro exec" needs an app, then -- and the command: roro exec db -- psql`)}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return withEngine(opts, func(eng *runtime.Engine) error {
				err := eng.Exec(cmd.Context(), args[0], runtime.Selection{Environment: f.env, Instance: f.instance}, container, args[1:], nil, opts.stdout, opts.stderr)
				var ee *kube.ExitError
				if errors.As(err, &ee) {
					return exitCode(ee.Code)
				}
				return err
			})
		},
	}
	f.registerInstance(cmd, "to run in")
	cmd.Flags().StringVarP(&container, "container", "c", "", "the container (default: the pod's first)")
	return cmd
}
