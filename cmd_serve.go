package main

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/rorokube/roro/core/runtime"
	"github.com/rorokube/roro/gitserve"
	"github.com/rorokube/roro/gui"
)

// serveFiles are where `roro serve` keeps its host key and its keys and roles: Roro's config
// folder ($XDG_CONFIG_HOME/roro, else ~/.config/roro).
func serveFiles() (hostKey, settings string, err error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", "", fmt.Errorf("find the config folder for the server's keys: %w", err)
	}
	dir = filepath.Join(dir, "roro")
	return filepath.Join(dir, "ssh_host_ed25519"), filepath.Join(dir, "serve.json"), nil
}

func openServeSettings() (*gitserve.Settings, error) {
	_, path, err := serveFiles()
	if err != nil {
		return nil, err
	}
	return gitserve.OpenSettings(path, time.Now)
}

func newServeCommand(opts *options) *cobra.Command {
	addr := gitserve.DefaultAddr
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve this workspace to teammates over SSH: git clone, fetch and push from your machine",
		Long: `Run Roro's git server on the workspace: teammates clone, fetch and push it with plain git
(git clone ssh://YOUR-HOST:2222/NAME, NAME being the workspace's name in roro.json).

Only public keys get in, each with a role: read (clone, fetch) or write (push too). Add keys
with roro serve keys add; a key that tries to log in without a role is refused and listed by
roro serve keys, for you to approve with roro serve approve FINGERPRINT --role read|write.
A push to the branch checked out here is checked with the workspace loader first (a push
that does not load is refused with the error), never rewrites history, and updates your work
tree only when it has no uncommitted edits (otherwise it is refused, and your edits stay).

The server listens on 127.0.0.1:2222 by default, this machine only; to let teammates in,
give an address they can reach (--addr 0.0.0.0:2222): that is your choice, and roro says so.
Its host key and the keys' roles live in ~/.config/roro (ssh_host_ed25519, serve.json).`,
		Example: `  roro serve
  roro serve --addr 0.0.0.0:2222
  roro serve keys add ~/teammate.pub --role write
  roro serve approve SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s --role read`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ws, err := loadWorkspace(opts)
			if err != nil {
				return err
			}
			hostKey, _, err := serveFiles()
			if err != nil {
				return err
			}
			settings, err := openServeSettings()
			if err != nil {
				return err
			}
			srv, err := gitserve.New(gitserve.Options{Addr: addr, HostKey: hostKey, Settings: settings,
				Repos: map[string]string{ws.File.Name: ws.Dir}, Log: slog.New(slog.NewTextHandler(opts.stderr, nil))})
			if err != nil {
				return err
			}
			done := make(chan error, 1)
			go func() { done <- srv.Run(cmd.Context()) }()
			select {
			case <-srv.Ready():
			case err := <-done:
				return err
			}
			bound := srv.Addr()
			fmt.Fprintf(opts.stdout, "serving workspace %s on %s (host key %s)\n  git clone ssh://%s/%s\n", ws.File.Name, bound, srv.HostKeyFingerprint(), bound, ws.File.Name)
			if host, _, _ := net.SplitHostPort(bound); !net.ParseIP(host).IsLoopback() {
				fmt.Fprintf(opts.stderr, "note: %s is reachable from the network; only keys you gave a role get in\n", bound)
			}
			keys := settings.Keys()
			if len(keys) == 0 {
				fmt.Fprintln(opts.stderr, "no key has a role yet: add one with roro serve keys add FILE --role read|write, or approve a refused one")
			}
			return <-done
		},
	}
	cmd.Flags().StringVar(&addr, "addr", addr, "the address to listen on (host:port); beyond 127.0.0.1 teammates on your network can reach it")
	cmd.AddCommand(newServeKeysCommand(opts), newServeApproveCommand(opts))
	return cmd
}

func newServeKeysCommand(opts *options) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "keys",
		Example: "  roro serve keys\n  roro serve keys -o json",
		Short:   "The keys that may use roro serve, with their roles, and the refused keys",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			settings, err := openServeSettings()
			if err != nil {
				return err
			}
			if opts.output == "json" {
				return writeJSON(opts.stdout, map[string]any{"keys": settings.Keys(), "refused": settings.RefusedKeys()})
			}
			for _, k := range settings.Keys() {
				fmt.Fprintf(opts.stdout, "%-5s  %s  %s\n", k.Role, k.Fingerprint, k.Comment)
			}
			refused := settings.RefusedKeys()
			if len(refused) > 0 {
				fmt.Fprintln(opts.stdout, "\nrefused, waiting for roro serve approve FINGERPRINT --role read|write:")
				for _, r := range refused {
					fmt.Fprintf(opts.stdout, "  %s  from %s, %s (%d attempts)\n", r.Fingerprint, r.Address, r.At.Local().Format("2006-01-02 15:04"), r.Attempts)
				}
			}
			return nil
		},
	}
	var role string
	add := &cobra.Command{
		Use:     "add FILE|KEY --role read|write",
		Short:   "Give a public key (a .pub or authorized_keys file, or the key line itself) a role",
		Example: "  roro serve keys add ~/alice.pub --role write\n  roro serve keys add team_authorized_keys --role read",
		Args:    exactArgs(1, "FILE|KEY"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := roleFlag(role); err != nil {
				return err
			}
			settings, err := openServeSettings()
			if err != nil {
				return err
			}
			var keys []gitserve.Key
			if strings.HasPrefix(args[0], "ssh-") || strings.HasPrefix(args[0], "ecdsa-") {
				k, err := settings.Add(args[0], role)
				if err != nil {
					return err
				}
				keys = append(keys, k)
			} else if keys, err = settings.Import(args[0], role); err != nil {
				return err
			}
			for _, k := range keys {
				fmt.Fprintf(opts.stdout, "%s  %s  %s\n", k.Role, k.Fingerprint, k.Comment)
			}
			return nil
		},
	}
	add.Flags().StringVar(&role, "role", "", "read (clone, fetch) or write (push too)")

	rm := &cobra.Command{
		Use:     "rm FINGERPRINT",
		Example: "  roro serve keys rm SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s",
		Short:   "Take a key's role away",
		Args:    exactArgs(1, "FINGERPRINT"),
		RunE: func(cmd *cobra.Command, args []string) error {
			settings, err := openServeSettings()
			if err != nil {
				return err
			}
			return settings.Remove(args[0])
		},
	}
	cmd.AddCommand(add, rm)
	return withOutputs(cmd, "text", "json")
}

func newServeApproveCommand(opts *options) *cobra.Command {
	var role string
	cmd := &cobra.Command{
		Use:     "approve FINGERPRINT --role read|write",
		Example: "  roro serve keys                   the refused keys are listed last\n  roro serve approve SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s --role read",
		Short:   "Give a refused key a role (roro serve keys lists them)",
		Args:    exactArgs(1, "FINGERPRINT"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := roleFlag(role); err != nil {
				return err
			}
			settings, err := openServeSettings()
			if err != nil {
				return err
			}
			k, err := settings.Approve(args[0], role)
			if err != nil {
				return err
			}
			fmt.Fprintf(opts.stdout, "%s  %s approved\n", k.Role, k.Fingerprint)
			return nil
		},
	}
	cmd.Flags().StringVar(&role, "role", "", "read (clone, fetch) or write (push too)")

	return cmd
}

// roleFlag checks --role.
func roleFlag(role string) error {
	if role != gitserve.RoleRead && role != gitserve.RoleWrite {
		return usageError{fmt.Errorf("--role %q: give --role read (clone, fetch) or --role write (push too)", role)}
	}
	return nil
}

// newSharing makes the window's switch for the git server, off, publishing its state in
// the engine's snapshot; nil when this machine cannot serve (no config folder), which the
// snapshot says.
func newSharing(opts *options, eng *runtime.Engine) *gitserve.Switch {
	ws := eng.Workspace()
	hostKey, _, err := serveFiles()
	var settings *gitserve.Settings
	if err == nil {
		settings, err = openServeSettings()
	}
	if err != nil {
		eng.SetSharing(runtime.SharingView{Err: err.Error()})
		return nil
	}
	var w *gitserve.Switch
	publish := func() { eng.SetSharing(sharingView(w, ws.File.Name)) }
	w = gitserve.NewSwitch(gitserve.Options{Addr: gitserve.DefaultAddr, HostKey: hostKey, Settings: settings,
		Repos: map[string]string{ws.File.Name: ws.Dir}, Log: slog.New(slog.NewTextHandler(opts.stderr, nil))}, func() {
		if w != nil {
			publish()
		}
	})
	publish()
	return w
}

// sharingOption is the switch as the window's option (a nil switch is no Sharing page).
func sharingOption(w *gitserve.Switch) gui.Sharing {
	if w == nil {
		return nil
	}
	return w
}

// sharingView is the switch's state as the snapshot carries it.
func sharingView(w *gitserve.Switch, name string) runtime.SharingView {
	v := runtime.SharingView{Available: true}
	srv, err := w.Server()
	if err != nil {
		v.Err = err.Error()
	}
	if srv != nil {
		v.Running, v.Addr, v.HostKey = true, srv.Addr(), srv.HostKeyFingerprint()
		v.CloneURLs = []string{"ssh://" + srv.Addr() + "/" + name}
	}
	for _, k := range w.Settings().Keys() {
		v.Keys = append(v.Keys, runtime.SharingKey{Fingerprint: k.Fingerprint, Comment: k.Comment, Role: k.Role})
	}
	for _, r := range w.Settings().RefusedKeys() {
		v.Refused = append(v.Refused, runtime.SharingKey{Fingerprint: r.Fingerprint, Address: r.Address, At: r.At, Attempts: r.Attempts})
	}
	return v
}
