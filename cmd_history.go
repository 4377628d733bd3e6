package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/rorokube/roro/core/render"
	"github.com/rorokube/roro/core/store"
	"github.com/rorokube/roro/core/workspace"
)

// openStore opens the workspace's git repository for a change or a look at its history.
func openStore(opts *options) (*store.Store, error) {
	dir, err := workspaceDir(opts)
	if err != nil {
		return nil, err
	}
	return store.Open(dir, time.Now)
}

// printCommitted says which commit a change made.
func printCommitted(w io.Writer, c store.Commit) {
	fmt.Fprintf(w, "committed %s %s\n", c.Short(), c.Subject)
}

func newSetCommand(opts *options) *cobra.Command {
	var asString bool
	cmd := &cobra.Command{
		Use:   "set APP KEY=VALUE...",
		Short: "Set an app's values in its app.json, as one git commit",
		Long: `Set values in APP's app.json "values", with Helm's --set syntax: dotted paths, list
indices, several assignments in one argument separated by commas, a backslash before a dot
that belongs to a key. Values are typed as Helm types them (numbers, true/false, null removes
the key); --string keeps every value a string.

The change is checked with the workspace's loader before anything is written, written
atomically, and committed with a message that says what changed; app.json outside "values"
keeps its formatting. A file with edits you have not committed is not touched.`,
		Example: `  roro set api replicas=3
  roro set api image.tag=1.4.2 resources.limits.memory=256Mi
  roro set web 'ingress.hosts[0]=web.localhost,ingress.enabled=true'
  roro set api --string version=1.10`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 2 {
				return usageError{fmt.Errorf("%q needs an app and at least one KEY=VALUE", cmd.CommandPath())}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := openStore(opts)
			if err != nil {
				return err
			}
			c, err := s.SetValues(args[0], args[1:], asString)
			if err != nil {
				return err
			}
			printCommitted(opts.stdout, c)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asString, "string", false, "keep every value a string (as helm --set-string)")
	return cmd
}

func newInstanceCommand(opts *options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "instance",
		Short: "Add or remove an app's further instances in its app.json, as git commits",
		Long: `An app runs as its default instance, and as any further instances app.json names: each
in its own namespace (<app>-<instance> unless --namespace), or in the app's namespace with a
suffix on every object's name (--suffix). Each change is one git commit. Removing an instance
from app.json leaves what runs of it alone: run roro down APP --instance NAME first.`,
		Args: noArgs,
	}
	var inst workspace.Instance
	var sets []string
	add := &cobra.Command{
		Use:   "add APP NAME",
		Short: "Add a further instance of an app",
		Example: `  roro instance add api pr-42 --env staging
  roro instance add web blue --suffix -blue --set replicas=1`,
		Args: exactArgs(2, "APP NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			values, err := setValues(sets)
			if err != nil {
				return err
			}
			inst.Values = values
			s, err := openStore(opts)
			if err != nil {
				return err
			}
			c, err := s.AddInstance(args[0], args[1], inst)
			if err != nil {
				return err
			}
			printCommitted(opts.stdout, c)
			return nil
		},
	}
	add.Flags().StringVar(&inst.Namespace, "namespace", "", "the instance's namespace (default <app>-<instance>)")
	add.Flags().StringVar(&inst.Suffix, "suffix", "", "run in the app's namespace with this suffix on every object's name")
	add.Flags().StringVarP(&inst.Environment, "env", "e", "", "pin the instance to an environment")
	add.Flags().StringArrayVar(&sets, "set", nil, "the instance's own values, Helm's --set syntax (repeatable)")
	rm := &cobra.Command{
		Use:     "rm APP NAME",
		Aliases: []string{"remove"},
		Short:   "Remove a further instance of an app from app.json",
		Example: `  roro down api --instance pr-42 && roro instance rm api pr-42`,
		Args:    exactArgs(2, "APP NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := openStore(opts)
			if err != nil {
				return err
			}
			c, err := s.RemoveInstance(args[0], args[1])
			if err != nil {
				return err
			}
			printCommitted(opts.stdout, c)
			return nil
		},
	}
	cmd.AddCommand(add, rm)
	return cmd
}

// setValues parses Helm --set assignments into a values map.
func setValues(sets []string) (map[string]any, error) {
	if len(sets) == 0 {
		return nil, nil
	}
	values := map[string]any{}
	for _, s := range sets {
		if err := render.SetValue(values, s, false); err != nil {
			return nil, usageError{fmt.Errorf("--set %w", err)}
		}
	}
	return values, nil
}

// commitJSON is a commit as -o json prints it.
type commitJSON struct {
	Hash    string    `json:"hash"`
	Author  string    `json:"author"`
	Date    time.Time `json:"date"`
	Subject string    `json:"subject"`
	Files   []string  `json:"files"`
	Patch   string    `json:"patch,omitempty"`
}

func toJSON(c store.Commit, patch string) commitJSON {
	return commitJSON{Hash: c.Hash, Author: c.Author, Date: c.When, Subject: c.Subject, Files: c.Files, Patch: patch}
}

func newHistoryCommand(opts *options) *cobra.Command {
	var patch bool
	var limit int
	cmd := &cobra.Command{
		Use:   "history [APP]",
		Short: "The workspace's commits, newest first (an app's only, given one)",
		Long: `List the workspace's git history, one line a commit, newest first: the abbreviated hash,
the date, the author and what changed. Given an app, only the commits that touched its folder.
-p adds each commit's diff.`,
		Example: `  roro history
  roro history api -p
  roro history -n 5 -o json`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 {
				return usageError{fmt.Errorf("%q takes at most one app", cmd.CommandPath())}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := openStore(opts)
			if err != nil {
				return err
			}
			app := ""
			if len(args) == 1 {
				app = args[0]
			}
			commits, err := s.History(app, limit)
			if err != nil {
				return err
			}
			var out []commitJSON
			for _, c := range commits {
				p := ""
				if patch {
					if _, p, err = s.Show(c.Hash); err != nil {
						return err
					}
				}
				if opts.output == "json" {
					out = append(out, toJSON(c, p))
					continue
				}
				fmt.Fprintf(opts.stdout, "%s %s %s  %s\n", c.Short(), c.When.Local().Format("2006-01-02 15:04"), c.AuthorName(), c.Subject)
				if p != "" {
					fmt.Fprintf(opts.stdout, "\n%s\n", p)
				}
			}
			if opts.output == "json" {
				return writeJSON(opts.stdout, out)
			}
			if len(commits) == 0 {
				fmt.Fprintln(opts.stderr, "no commits yet")
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&patch, "patch", "p", false, "show each commit's diff")
	cmd.Flags().IntVarP(&limit, "max-count", "n", 0, "show at most this many commits (0: all)")
	return cmd
}

func newShowCommand(opts *options) *cobra.Command {
	return &cobra.Command{
		Use:     "show COMMIT",
		Short:   "One commit of the workspace: who, when, what, and its diff",
		Example: "  roro show 1a2b3c4\n  roro show HEAD~1 -o json",
		Args:    exactArgs(1, "COMMIT"),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := openStore(opts)
			if err != nil {
				return err
			}
			c, patch, err := s.Show(args[0])
			if err != nil {
				return err
			}
			if opts.output == "json" {
				return writeJSON(opts.stdout, toJSON(c, patch))
			}
			fmt.Fprintf(opts.stdout, "commit %s\nAuthor: %s\nDate:   %s\n\n    %s\n\n%s",
				c.Hash, c.Author, c.When.Local().Format(time.RFC1123Z), strings.ReplaceAll(strings.TrimSpace(c.Message), "\n", "\n    "), patch)
			return nil
		},
	}
}

func newRevertCommand(opts *options) *cobra.Command {
	return &cobra.Command{
		Use:   "revert COMMIT",
		Short: "Undo a commit of the workspace with a new commit",
		Long: `Make a new commit that undoes COMMIT. It applies only when every file COMMIT changed is
still as COMMIT left it; otherwise it is refused, naming the files changed since, and nothing
is written (revert the later commits first, or edit by hand).`,
		Example: "  roro revert 1a2b3c4",
		Args:    exactArgs(1, "COMMIT"),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := openStore(opts)
			if err != nil {
				return err
			}
			c, err := s.Revert(args[0])
			if err != nil {
				return err
			}
			printCommitted(opts.stdout, c)
			return nil
		},
	}
}
