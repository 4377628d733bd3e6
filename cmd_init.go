package main

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/rorokube/roro/core/runtime"
	"github.com/rorokube/roro/core/store"
	"github.com/rorokube/roro/core/workspace"
)

func newInitCommand(opts *options) *cobra.Command {
	var name string
	var nested bool
	cmd := &cobra.Command{
		Use:   "init [DIR]",
		Short: "Create a new workspace with one example app, a git repo and a first commit",
		Long: `Create a workspace in DIR (default: the current folder), which must be new or empty:
roro.json, an example app (apps/hello) with a forward and staging values, the JSON Schemas
the files reference (under .roro/schema, so editors complete and check them), a .gitignore,
and a git repository with a first commit. An existing empty folder is filled in place.
Nothing is left behind when a step fails. A workspace is a git repository of its own: inside
another repository's work tree init refuses, unless --nested.`,
		Example: `  roro init my-stack
  roro init --name shop .`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 {
				return usageError{fmt.Errorf("%q takes at most one folder, got %d", cmd.CommandPath(), len(args))}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := "."
			if len(args) == 1 {
				dir = args[0]
			}
			abs, err := filepath.Abs(dir)
			if err != nil {
				return err
			}
			if name == "" {
				name = workspace.NameFor(filepath.Base(abs))
			}
			if err := store.Init(abs, store.InitOptions{Name: name, Now: time.Now(), Nested: nested}); err != nil {
				return err
			}
			if stateDir, err := runtime.StateDir(); err == nil {
				_ = runtime.NewStore(stateDir, abs).Remember(abs) // for `roro ls`; the workspace is made either way
			}
			fmt.Fprintf(opts.stdout, "Created workspace %s in %s with app hello and a first commit.\nNext: roro --workspace %s render hello\n", name, abs, dir)
			return nil
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "the workspace's name (default: from the folder's name)")
	cmd.Flags().BoolVar(&nested, "nested", false, "create the workspace's repository even inside another git repository")
	return cmd
}
