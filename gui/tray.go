package gui

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"

	"fyne.io/systray"

	"github.com/rorokube/roro/core/runtime"
	"github.com/rorokube/roro/themes"
)

// TrayOptions configure the tray icon.
type TrayOptions struct {
	// OnOpen opens (or raises) the window; OnQuit ends Roro.
	OnOpen, OnQuit func()
	// OpenURL opens a forward's address in the browser; default xdg-open.
	OpenURL func(url string) error
}

// Tray is the system-tray icon (a StatusNotifierItem over D-Bus on Linux): its colour and
// first menu line say whether everything is fine; the menu brings each app up or down, opens
// each live forward, opens the window, and quits. The platform's tray is one per process:
// run one Tray at a time.
type Tray struct {
	eng  Engine
	opts TrayOptions

	mu     sync.Mutex
	shape  string
	icon   runtime.Health
	status *systray.MenuItem
	items  []*systray.MenuItem // of the current menu, for titles that change
	apps   map[string]*systray.MenuItem
	fwds   map[string]*systray.MenuItem
	// done ends the goroutines that wait on the current menu's clicks.
	done chan struct{}
	wg   sync.WaitGroup
}

// NewTray returns a tray over eng; Run shows it.
func NewTray(eng Engine, opts TrayOptions) *Tray {
	if opts.OpenURL == nil {
		opts.OpenURL = func(url string) error { return exec.Command("xdg-open", url).Start() }
	}
	return &Tray{eng: eng, opts: opts}
}

// Run shows the icon and keeps it and its menu current with the engine's snapshots until ctx
// ends. Without a tray host on the desktop (no StatusNotifierWatcher) the icon registers
// when one appears; without a session bus it logs and shows nothing, and the window works on.
func (t *Tray) Run(ctx context.Context) error {
	ready := make(chan struct{})
	start, end := systray.RunWithExternalLoop(func() { close(ready) }, func() {})
	start()
	defer end()
	select {
	case <-ready:
	case <-ctx.Done():
		return nil
	}
	systray.SetTitle("Roro")
	changed, stop := t.eng.Subscribe()
	defer stop()
	t.refresh(t.eng.Snapshot())
	defer t.closeMenu()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
			t.refresh(t.eng.Snapshot())
		}
	}
}

// Summary is the tray's answer to "is everything OK?": its first menu line and the health
// its icon shows.
func Summary(snap *runtime.Snapshot) (string, runtime.Health) {
	for _, c := range snap.Connections {
		if c.State == runtime.Unreachable {
			return "Cluster unreachable: " + c.Reason, runtime.Failed
		}
	}
	var failed, working []string
	running := 0
	for _, a := range snap.Apps {
		switch a.Health {
		case runtime.Failed:
			failed = append(failed, a.Name)
		case runtime.Progressing, runtime.Unknown:
			working = append(working, a.Name)
		}
		if a.Health != runtime.NotRunning {
			running++
		}
	}
	if op := snap.Running(); op != nil {
		return fmt.Sprintf("Working: %s %s", op.Kind, targetsText(op.Targets)), runtime.Progressing
	}
	switch {
	case len(failed) > 0:
		return strings.Join(failed, ", ") + ": failed", runtime.Failed
	case len(working) > 0:
		return strings.Join(working, ", ") + ": working", runtime.Progressing
	case running == 0:
		return "No app running", runtime.NotRunning
	case running == 1:
		return "1 app running, healthy", runtime.Healthy
	}
	return fmt.Sprintf("All %d running apps healthy", running), runtime.Healthy
}

// shapeOf names the menu's structure: apps, live forwards, and keys waiting for approval. A change rebuilds the menu;
// anything else only retitles it.
func shapeOf(snap *runtime.Snapshot) string {
	var b strings.Builder
	for _, a := range snap.Apps {
		b.WriteString(a.Name + ",")
	}
	b.WriteString("|")
	for _, k := range forwardKeys(snap) {
		b.WriteString(k + ",")
	}
	fmt.Fprintf(&b, "|%d", len(snap.Sharing.Refused))
	return b.String()
}

// forwardKeys lists the live forwards' addresses, sorted: "127.0.0.1:18080".
func forwardKeys(snap *runtime.Snapshot) []string {
	var out []string
	for _, f := range snap.Forwards {
		if f.Err != "" {
			continue
		}
		for _, p := range f.Ports {
			out = append(out, f.Address+":"+strconv.Itoa(p.Local))
		}
	}
	sort.Strings(out)
	return out
}

func (t *Tray) refresh(snap *runtime.Snapshot) {
	t.mu.Lock()
	defer t.mu.Unlock()
	summary, health := Summary(snap)
	if health != t.icon {
		t.icon = health
		systray.SetIcon(trayIcon(health))
		systray.SetTooltip("Roro: " + summary)
	}
	if shape := shapeOf(snap); shape != t.shape {
		t.shape = shape
		t.rebuild(snap)
	}
	t.status.SetTitle(summary)
	for _, a := range snap.Apps {
		if it := t.apps[a.Name]; it != nil {
			it.SetTitle(a.Name + " — " + healthWord(a.Health))
		}
	}
	for _, f := range snap.Forwards {
		for _, p := range f.Ports {
			if it := t.fwds[f.Address+":"+strconv.Itoa(p.Local)]; it != nil {
				it.SetTitle(fmt.Sprintf("%s:%d → %s %s (%s)", f.Address, p.Local, f.Target, p.Remote, f.State))
			}
		}
	}
}

// rebuild makes the menu afresh for snap's apps and forwards.
func (t *Tray) rebuild(snap *runtime.Snapshot) {
	t.closeMenuLocked()
	systray.ResetMenu()
	t.done = make(chan struct{})
	t.apps, t.fwds = map[string]*systray.MenuItem{}, map[string]*systray.MenuItem{}
	t.status = systray.AddMenuItem("", "How the apps are")
	t.status.Disable()
	systray.AddSeparator()
	for _, a := range snap.Apps {
		it := systray.AddMenuItem(a.Name, "App "+a.Name)
		t.apps[a.Name] = it
		name := a.Name
		t.onClick(it.AddSubMenuItem("Up", "Bring "+name+" up, with its forwards"), func() {
			_, _ = t.eng.Up(runtime.UpRequest{Selection: runtime.Selection{Apps: []string{name}}, Forward: true})
		})
		t.onClick(it.AddSubMenuItem("Down", "Take "+name+" down"), func() {
			_, _ = t.eng.Down(runtime.DownRequest{Selection: runtime.Selection{Apps: []string{name}}})
		})
	}
	if n := len(snap.Sharing.Refused); n > 0 && t.opts.OnOpen != nil {
		systray.AddSeparator()
		label := fmt.Sprintf("%d keys waiting for approval (Sharing)", n)
		if n == 1 {
			label = "A key is waiting for approval (Sharing)"
		}
		t.onClick(systray.AddMenuItem(label, "Open the window to approve or ignore it"), t.opts.OnOpen)
	}
	if keys := forwardKeys(snap); len(keys) > 0 {
		systray.AddSeparator()
		for _, k := range keys {
			it := systray.AddMenuItem(k, "Forward "+k)
			t.fwds[k] = it
			url := "http://" + k
			t.onClick(it.AddSubMenuItem("Open in browser", "Open "+url), func() { _ = t.opts.OpenURL(url) })
		}
	}
	systray.AddSeparator()
	if t.opts.OnOpen != nil {
		t.onClick(systray.AddMenuItem("Open Roro", "Open the window"), t.opts.OnOpen)
	}
	if t.opts.OnQuit != nil {
		t.onClick(systray.AddMenuItem("Quit", "Stop the forwards and quit Roro"), t.opts.OnQuit)
	}
}

// onClick calls fn for each click of it, until the menu is rebuilt. systray drops a click
// that no goroutine waits for, so one always does.
func (t *Tray) onClick(it *systray.MenuItem, fn func()) {
	done := t.done
	t.wg.Go(func() {
		for {
			select {
			case <-it.ClickedCh:
				fn()
			case <-done:
				return
			}
		}
	})
}

func (t *Tray) closeMenu() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closeMenuLocked()
}

func (t *Tray) closeMenuLocked() {
	if t.done != nil {
		close(t.done)
		t.done = nil
	}
	t.wg.Wait()
}

// trayIcon draws the icon for a health: a dot in its colour (hollow when nothing runs).
func trayIcon(h runtime.Health) []byte {
	s := style{pal: themes.LightPalette()}
	c, hollow := s.healthColor(h)
	const size = 32
	img := image.NewNRGBA(image.Rect(0, 0, size, size))
	r := float64(size)/2 - 1
	for y := range size {
		for x := range size {
			dx, dy := float64(x)-float64(size)/2+0.5, float64(y)-float64(size)/2+0.5
			d := dx*dx + dy*dy
			if d <= r*r && (!hollow || d >= (r-4)*(r-4)) {
				img.SetNRGBA(x, y, color.NRGBA{R: c.R, G: c.G, B: c.B, A: 0xff})
			}
		}
	}
	var b bytes.Buffer
	_ = png.Encode(&b, img)
	return b.Bytes()
}
