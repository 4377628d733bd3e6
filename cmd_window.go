package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/rorokube/roro/core/kube"
	"github.com/rorokube/roro/core/runtime"
	"github.com/rorokube/roro/core/store"
	"github.com/rorokube/roro/gui"
	"github.com/rorokube/roro/themes"
)

// runDesktop runs Roro as a desktop app: the tray icon and, unless noWindow, the window, on
// the workspace, with an engine that watches its clusters. Closing the window keeps the tray
// and the forwards; the tray's Open Roro opens it again; Quit (or Ctrl-C) ends everything,
// stopping the forwards.
func runDesktop(ctx context.Context, opts *options, noWindow bool) error {
	stateDir, err := runtime.StateDir()
	if err != nil {
		return err
	}
	if err := lastWorkspace(opts, stateDir); err != nil {
		return err
	}
	ws, err := loadWorkspace(opts) // a bad workspace is said first
	if err != nil {
		return err
	}
	if !noWindow && !gui.HasDisplay() {
		return fmt.Errorf("%w; roro --no-window runs only the tray icon", gui.ErrNoDisplay)
	}
	// The next launch from anywhere opens this workspace again.
	_ = store.WriteFileAtomic(filepath.Join(stateDir, lastWorkspaceFile), []byte(ws.Dir+"\n"), 0o600)
	// One desktop Roro per user: a second launch brings the first one's window forward.
	single, running, err := gui.ClaimSingle(gui.SocketPath(stateDir))
	if err != nil {
		return err
	}
	if running {
		fmt.Fprintln(opts.stderr, "roro is already running: its window is brought forward")
		return nil
	}
	defer single.Close()
	eng, err := newWatchingEngine(opts)
	if err != nil {
		return err
	}
	defer eng.Close()
	sharing := newSharing(opts, eng)
	if sharing != nil {
		defer sharing.Stop()
	}
	ctx, quit := context.WithCancel(ctx)
	defer quit()
	open := make(chan struct{}, 1)
	openWindow := func() {
		select {
		case open <- struct{}{}:
		default:
		}
	}
	trayDone := make(chan struct{})
	if hasSessionBus() {
		tray := gui.NewTray(eng, gui.TrayOptions{OnOpen: openWindow, OnQuit: quit})
		go func() {
			defer close(trayDone)
			_ = tray.Run(ctx)
		}()
	} else {
		close(trayDone)
		if noWindow {
			return errors.New("no D-Bus session bus (DBUS_SESSION_BUS_ADDRESS is not set), so no tray icon: run roro without --no-window")
		}
		fmt.Fprintln(opts.stderr, "roro: no D-Bus session bus, so no tray icon; the window works without it")
	}
	defer func() { quit(); <-trayDone }() // the tray ends with ctx, whatever ends this
	ws = eng.Workspace()
	title := "Roro — " + ws.File.Name + " (" + filepath.Base(ws.Dir) + ")"
	// The desktop's light or dark preference, followed live (the settings portal over D-Bus).
	theme := themes.Light
	schemes := make(chan themes.Kind, 1)
	if hasSessionBus() {
		if conn, err := dbus.ConnectSessionBus(); err == nil {
			defer conn.Close()
			if k, ok := gui.ColorScheme(conn); ok {
				theme = k
			}
			go func() {
				_ = gui.FollowColorScheme(ctx, conn, func(k themes.Kind) {
					select {
					case <-schemes:
					default:
					}
					schemes <- k
				})
			}()
		}
	}
	if !noWindow {
		openWindow()
	}
	var win *gui.Window
	closed := make(chan error, 1)
	for {
		select {
		case <-ctx.Done():
			if win != nil {
				<-closed
			}
			return nil
		case <-single.Raised():
			openWindow()
		case k := <-schemes:
			theme = k
			if win != nil {
				win.FollowScheme(k)
			}
		case <-open:
			if win != nil {
				win.Raise()
				continue
			}
			if !gui.HasDisplay() {
				continue
			}
			wopts := gui.Options{Theme: theme, Sharing: sharingOption(sharing), Contexts: func() []string {
				names, _, err := kube.Contexts(opts.cluster.kubeconfig)
				if err != nil {
					return nil
				}
				return names
			}}
			if os.Getenv("RORO_REPORT_FIRST_FRAME") == "1" {
				started := opts.started
				wopts.OnFirstFrame = func() {
					fmt.Fprintf(opts.stderr, "roro: first frame %d µs after start\n", time.Since(started).Microseconds())
				}
			}
			if path := os.Getenv("RORO_TEST_STATE_DUMP"); path != "" {
				wopts.Drawn = func(lines []string) { _ = store.WriteFileAtomic(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600) }
			}
			win = gui.NewWindow(eng, title, wopts)
			go func() { closed <- win.Run(ctx) }()
		case err := <-closed:
			win = nil
			if err != nil && !errors.Is(err, context.Canceled) {
				fmt.Fprintf(opts.stderr, "roro: the window ended: %v\n", err)
			}
			if !hasSessionBus() {
				return err // no tray to carry on with: closing the window ends roro
			}
		}
	}
}

// lastWorkspaceFile, in the state folder, names the workspace the desktop app opened last.
const lastWorkspaceFile = "last-workspace"

// lastWorkspace points opts at the workspace opened last when neither --workspace nor the
// current folder names one.
func lastWorkspace(opts *options, stateDir string) error {
	if _, err := workspaceDir(opts); err == nil {
		return nil
	}
	data, err := os.ReadFile(filepath.Join(stateDir, lastWorkspaceFile))
	if err != nil {
		return nil // none yet: loading says what to do
	}
	opts.workspace = strings.TrimSpace(string(data))
	return nil
}

// hasSessionBus reports whether a D-Bus session bus is configured; without one Roro shows no
// tray icon (and never starts a bus of its own).
func hasSessionBus() bool { return os.Getenv("DBUS_SESSION_BUS_ADDRESS") != "" }

// newWatchingEngine is newEngine with the watches a window needs: instances and health
// follow the cluster without polling, the files are watched, and git syncs in the
// background.
func newWatchingEngine(opts *options) (*runtime.Engine, error) {
	opts.watch = true
	opts.watchFiles = true
	opts.board = "the window"
	opts.gitSync = true
	return newEngine(opts)
}
