package main

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/rorokube/roro/core/store"
)

func newSyncCommand(opts *options) *cobra.Command {
	var so store.SyncOptions
	var accept string
	cmd := &cobra.Command{
		Use:   "sync",
		Short: "Sync the workspace with its git remote: fetch, fast-forward, push when asked",
		Long: `Fetch the remote branch the workspace follows (roro.json "sync": remote, default origin;
branch, default the one checked out), then:

  - take the remote's commits when the work tree has no uncommitted edits (a fast-forward);
  - push local commits with --push (or "sync": {"push": true}); never forced;
  - when both sides have commits the other lacks, list both and stop: --rebase replays the
    local commits on the remote's when they apply cleanly, and otherwise leaves the
    repository exactly as it was, naming the conflicting files.

Git does the talking, so authentication is git's: your ssh-agent and ~/.ssh keys (a key's
passphrase is asked here), ~/.ssh/config, your HTTPS credential helpers (with none, a token
typed here once is kept for the next syncs: in the keyring's helper when installed, else in
~/.config/roro/git-credentials, mode 0600). A server whose SSH host key
is not in ~/.ssh/known_hosts is refused with its fingerprint; check it and accept it with
--accept-host-key. With "sync": {"offline": true} in roro.json nothing is synced. While the
window runs it syncs in the background every "sync": {"interval"} (default 5m).`,
		Example: `  roro sync
  roro sync --push
  roro sync --rebase --push
  roro sync --accept-host-key SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := openStore(opts)
			if err != nil {
				return err
			}
			so.Interactive = term.IsTerminal(int(os.Stdin.Fd()))
			if accept != "" {
				if err := s.AcceptHostKey(cmd.Context(), so, accept); err != nil {
					return err
				}
				fmt.Fprintf(opts.stderr, "accepted host key %s\n", accept)
			}
			st, err := s.Sync(cmd.Context(), so)
			if opts.output == "json" {
				if werr := writeJSON(opts.stdout, syncJSON(st)); werr != nil {
					return werr
				}
			} else {
				printSync(opts, st)
			}
			if err != nil {
				return err
			}
			if st.State == store.SyncDiverged {
				return errors.New("the workspace and its remote have diverged: nothing was merged")
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&so.Push, "push", false, "push local commits (never forced)")
	cmd.Flags().BoolVar(&so.Rebase, "rebase", false, "when diverged, replay local commits on the remote's if they apply cleanly")
	cmd.Flags().StringVar(&accept, "accept-host-key", "", "add the remote's SSH host key with this fingerprint to ~/.ssh/known_hosts, then sync")
	cmd.Flags().StringVar(&so.Remote, "remote", "", "the git remote (default: roro.json sync.remote, else origin)")
	cmd.Flags().StringVar(&so.Branch, "branch", "", "the remote branch (default: roro.json sync.branch, else the branch checked out)")
	return cmd
}

// printSync says where the workspace stands, with both sides' commits when they differ.
func printSync(opts *options, st store.SyncState) {
	if st.State == "" {
		return
	}
	fmt.Fprintf(opts.stdout, "%s: %s\n", st.State, st.Message)
	list := func(title string, cs []store.Commit) {
		if len(cs) == 0 {
			return
		}
		fmt.Fprintf(opts.stdout, "%s:\n", title)
		for _, c := range cs {
			fmt.Fprintf(opts.stdout, "  %s %s  %s\n", c.Short(), c.When.Local().Format("2006-01-02 15:04"), c.Subject)
		}
	}
	where := st.Remote + "/" + st.Branch
	list("here, not on "+where, st.AheadCommits)
	list("on "+where+", not here", st.BehindCommits)
}

// syncJSON is a sync's result as -o json prints it.
func syncJSON(st store.SyncState) map[string]any {
	commits := func(cs []store.Commit) []string {
		out := []string{}
		for _, c := range cs {
			out = append(out, c.Hash+" "+c.Subject)
		}
		return out
	}
	m := map[string]any{"state": st.State, "message": st.Message, "remote": st.Remote, "branch": st.Branch,
		"ahead": st.Ahead, "behind": st.Behind, "aheadCommits": commits(st.AheadCommits), "behindCommits": commits(st.BehindCommits)}
	if !st.Fetched.IsZero() {
		m["fetched"] = st.Fetched.Format(time.RFC3339)
	}
	return m
}
