package main

import (
	"context"
	"errors"
	"path/filepath"

	"github.com/rorokube/roro/core/runtime"
	"github.com/rorokube/roro/gui"
	"github.com/rorokube/roro/themes"
)

// runWindow opens the window on the workspace, with an engine that watches its clusters,
// until the window closes or ctx ends (Ctrl-C). Forwards stop with it.
func runWindow(ctx context.Context, opts *options) error {
	eng, err := newWatchingEngine(opts) // a bad workspace is said first
	if err != nil {
		return err
	}
	defer eng.Close()
	if !gui.HasDisplay() {
		return gui.ErrNoDisplay
	}
	ws := eng.Workspace()
	title := "Roro — " + ws.File.Name + " (" + filepath.Base(ws.Dir) + ")"
	err = gui.NewWindow(eng, title, gui.Options{Theme: themes.Light}).Run(ctx)
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// newWatchingEngine is newEngine with the watches a window needs: instances and health
// follow the cluster without polling.
func newWatchingEngine(opts *options) (*runtime.Engine, error) {
	opts.watch = true
	return newEngine(opts)
}
