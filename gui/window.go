package gui

import (
	"context"
	"errors"
	"os"

	"gioui.org/app"
	"gioui.org/io/system"
	"gioui.org/op"
	"gioui.org/unit"

	"github.com/rorokube/roro/themes"
)

// ErrNoDisplay is returned when there is no display to open a window on.
var ErrNoDisplay = errors.New("no display: run roro from a desktop session (DISPLAY or WAYLAND_DISPLAY is not set)")

// HasDisplay reports whether a window can be opened: an X11 or Wayland display is set.
func HasDisplay() bool { return os.Getenv("DISPLAY") != "" || os.Getenv("WAYLAND_DISPLAY") != "" }

// Window is the native window around the UI. NewWindow, then Run (blocking); Raise brings it
// to the front from any goroutine.
type Window struct {
	eng    Engine
	ui     *UI
	title  string
	raise  chan struct{}
	redraw chan struct{}
	// firstFrame is called after the first frame, then forgotten.
	firstFrame func()
}

// NewWindow returns a window over eng titled title; Run opens it.
func NewWindow(eng Engine, title string, opts Options) *Window {
	w := &Window{eng: eng, title: title, raise: make(chan struct{}, 1), redraw: make(chan struct{}, 1)}
	opts.Invalidate = func() { // from any goroutine: the window's loop invalidates
		select {
		case w.redraw <- struct{}{}:
		default:
		}
	}
	w.ui = NewUI(eng, opts)
	w.firstFrame = opts.OnFirstFrame
	return w
}

// FollowScheme switches the window to the desktop's light or dark preference (unless the
// user picked a theme); safe from any goroutine.
func (w *Window) FollowScheme(k themes.Kind) { w.ui.FollowScheme(k) }

// Raise asks the window to come to the front (a second `roro` launch does).
func (w *Window) Raise() {
	select {
	case w.raise <- struct{}{}:
	default:
	}
}

// Run opens the window and handles it until the user closes it or ctx ends. It draws only
// when the engine publishes a new snapshot or input arrives: no redraw loop.
func (w *Window) Run(ctx context.Context) error {
	if !HasDisplay() {
		return ErrNoDisplay
	}
	aw := new(app.Window)
	aw.Option(app.Title(w.title), app.Size(unit.Dp(1200), unit.Dp(760)), app.MinSize(unit.Dp(760), unit.Dp(420)))
	changed, stop := w.eng.Subscribe()
	defer stop()
	done := make(chan struct{})
	defer close(done)
	go func() {
		for {
			select {
			case <-changed:
				aw.Invalidate()
			case <-w.redraw:
				aw.Invalidate()
			case <-w.raise:
				aw.Perform(system.ActionRaise)
			case <-ctx.Done():
				aw.Perform(system.ActionClose)
				aw.Invalidate() // the loop below sees ctx ended at its next frame
				return
			case <-done:
				return
			}
		}
	}()
	var ops op.Ops
	for {
		switch e := aw.Event().(type) {
		case app.DestroyEvent:
			return e.Err
		case app.FrameEvent:
			if ctx.Err() != nil {
				// Ctrl-C or a signal: not every platform turns ActionClose into a
				// DestroyEvent (X11 without a window manager does not), so end here.
				return nil
			}
			gtx := app.NewContext(&ops, e)
			w.ui.Layout(gtx)
			e.Frame(gtx.Ops)
			if w.firstFrame != nil {
				w.firstFrame()
				w.firstFrame = nil
			}
		}
	}
}
