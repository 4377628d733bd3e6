package gui

import (
	"context"
	"fmt"
	"image/color"
	"io"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"time"

	"gioui.org/io/clipboard"
	"gioui.org/io/key"
	"gioui.org/io/semantic"
	"gioui.org/layout"
	"gioui.org/unit"
	"gioui.org/widget"
	"gioui.org/widget/material"

	"github.com/rorokube/roro/core/runtime"
	"github.com/rorokube/roro/themes"
)

// Options configure the UI.
type Options struct {
	// Theme is the palette to start with; the user can switch.
	Theme themes.Kind
	// Invalidate asks for a new frame; pages that load in the background call it when their
	// data arrives. The window sets it.
	Invalidate func()
	// Contexts lists the kubeconfig's contexts the user can point the session at.
	Contexts func() []string
	// OpenURL opens a forward's address in the browser; default xdg-open.
	OpenURL func(url string) error
	// OnFirstFrame is called once, after the window's first frame is drawn (for the start-up
	// benchmark).
	OnFirstFrame func()
	// Drawn, when set, receives after each frame the lines of state the frame drew (forwards,
	// connections): a state dump for end-to-end tests, which cannot read the screen's text.
	Drawn func(lines []string)
	// GoFonts draws with Gio's embedded Go fonts instead of the system's, so that a
	// rendering is the same on every machine (the reference-image tests).
	GoFonts bool
	// Sharing runs the embedded git server; nil: no Sharing page.
	Sharing Sharing
}

// UI is the window's content: its state, an Update that handles input, and a Layout that
// draws the engine's latest snapshot. It runs on the window's goroutine only; the engine's
// work happens elsewhere and shows up in the next snapshot.
type UI struct {
	eng   Engine
	style style

	filter   widget.Editor
	themeBtn widget.Clickable
	envBtn   widget.Clickable
	ctxBtn   widget.Clickable
	contexts func() []string
	drawn    func([]string)
	// lines collects the state lines of the frame being drawn, for drawn.
	lines []string
	// env is the environment actions run in; "" is each instance's own (the workspace's
	// default unless the instance pins one).
	env       string
	newInst   widget.Editor
	newInstUp widget.Clickable
	cancelBtn widget.Clickable
	sidebar   widget.List
	page      widget.List
	rows      map[string]*appRow
	selected  string
	// note is the result of the last action that failed at once (a busy instance, a bad
	// request), shown in the status bar with the app it concerns.
	note, noteApp string
	forwards      map[string]*forwardRow
	// visible are the apps the filter lets through, in sidebar order, for the arrow keys.
	visible []string
	pages   pages
	git     gitState
	sharing sharingState
	share   Sharing
	// invalidate asks for a new frame (Options.Invalidate, or nothing).
	invalidate func()
	openURL    func(string) error
	// addrs are the open and copy buttons of each forwarded address.
	addrs   map[string]*addrButtons
	goFonts bool
	// scheme carries the desktop's light or dark preference from another goroutine;
	// picked is true once the user chose a theme, which then wins.
	schemeMu sync.Mutex
	scheme   themes.Kind // pending, "" when none
	picked   bool
}

// appRow is the state of one app's row in the sidebar.
type appRow struct {
	sel, up, down, restart widget.Clickable
}

// forwardRow is the state of one forward's row.
type forwardRow struct{ toggle widget.Clickable }

// NewUI returns the UI over eng.
func NewUI(eng Engine, opts Options) *UI {
	u := &UI{eng: eng, style: newStyle(opts.Theme, opts.GoFonts), rows: map[string]*appRow{}, forwards: map[string]*forwardRow{},
		invalidate: opts.Invalidate, goFonts: opts.GoFonts}
	u.pages.init()
	u.git.init()
	u.addrs = map[string]*addrButtons{}
	u.openURL, u.contexts, u.drawn, u.share = opts.OpenURL, opts.Contexts, opts.Drawn, opts.Sharing
	if u.openURL == nil {
		u.openURL = func(url string) error { return exec.Command("xdg-open", url).Start() }
	}
	if u.invalidate == nil {
		u.invalidate = func() {}
	}
	u.filter.SingleLine = true
	u.filter.Submit = true
	u.newInst.SingleLine = true
	u.sidebar.Axis = layout.Vertical
	u.page.Axis = layout.Vertical
	return u
}

// FollowScheme hands the desktop's light or dark preference to the UI, from any goroutine;
// it applies at the next frame unless the user has picked a theme.
func (u *UI) FollowScheme(k themes.Kind) {
	u.schemeMu.Lock()
	u.scheme = k // only the latest counts
	u.schemeMu.Unlock()
	u.invalidate()
}

// Theme is the palette the UI draws with now.
func (u *UI) Theme() themes.Kind { return u.style.pal.Kind }

// Selected is the app whose page shows.
func (u *UI) Selected() string { return u.selected }

// Layout handles the frame's input, then draws the latest snapshot.
func (u *UI) Layout(gtx layout.Context) layout.Dimensions {
	snap := u.eng.Snapshot()
	u.update(gtx, snap)
	u.lines = u.lines[:0]
	if u.drawn != nil {
		defer func() { u.drawn(slices.Clone(u.lines)) }()
	}
	return fill(gtx, u.style.pal.Bg, func(gtx layout.Context) layout.Dimensions {
		return layout.Flex{Axis: layout.Vertical}.Layout(gtx,
			layout.Rigid(func(gtx layout.Context) layout.Dimensions { return u.topBar(gtx, snap) }),
			layout.Rigid(func(gtx layout.Context) layout.Dimensions { return rule(gtx, u.style.pal.Border) }),
			layout.Flexed(1, func(gtx layout.Context) layout.Dimensions {
				return layout.Flex{}.Layout(gtx,
					layout.Rigid(func(gtx layout.Context) layout.Dimensions { return u.sidebarLayout(gtx, snap) }),
					layout.Flexed(1, func(gtx layout.Context) layout.Dimensions {
						if u.sharing.open {
							return u.sharingPage(gtx, snap)
						}
						return u.appPage(gtx, snap)
					}),
				)
			}),
			layout.Rigid(func(gtx layout.Context) layout.Dimensions { return rule(gtx, u.style.pal.Border) }),
			layout.Rigid(func(gtx layout.Context) layout.Dimensions { return u.statusBar(gtx, snap) }),
		)
	})
}

// update handles the input of this frame: shortcuts, the filter, and every button.
func (u *UI) update(gtx layout.Context, snap *runtime.Snapshot) {
	for {
		ev, ok := gtx.Event(
			key.Filter{Name: "/"}, key.Filter{Name: "F", Required: key.ModShortcut},
			key.Filter{Name: key.NameEscape}, key.Filter{Name: key.NameUpArrow}, key.Filter{Name: key.NameDownArrow},
			key.Filter{Name: "R", Required: key.ModShortcut},
		)
		if !ok {
			break
		}
		e, ok := ev.(key.Event)
		if !ok || e.State != key.Press {
			continue
		}
		switch e.Name {
		case "/", "F":
			gtx.Execute(key.FocusCmd{Tag: &u.filter})
		case key.NameEscape:
			u.filter.SetText("")
			gtx.Execute(key.FocusCmd{})
		case key.NameUpArrow:
			u.step(-1)
		case key.NameDownArrow:
			u.step(1)
		case "R":
			u.pages.forceRefresh = true
		}
	}
	for {
		ev, ok := u.filter.Update(gtx)
		if !ok {
			break
		}
		// Enter in the filter opens the first app it lets through, and leaves the filter.
		if _, ok := ev.(widget.SubmitEvent); ok && len(u.visible) > 0 {
			u.selected = u.visible[0]
			gtx.Execute(key.FocusCmd{})
		}
	}
	if u.envBtn.Clicked(gtx) {
		u.env = nextEnv(snap.Workspace.Environments, u.env)
	}
	if u.ctxBtn.Clicked(gtx) && u.contexts != nil {
		u.eng.SetContext(nextEnv(u.contexts(), snap.Context))
	}
	if u.newInstUp.Clicked(gtx) && u.selected != "" {
		name := strings.TrimSpace(u.newInst.Text())
		_, err := u.eng.Up(runtime.UpRequest{Selection: runtime.Selection{Apps: []string{u.selected}, Environment: u.env, Instance: name}, Forward: true})
		u.noteErr(u.selected, err)
		if err == nil {
			u.newInst.SetText("")
		}
	}
	for {
		if _, ok := u.newInst.Update(gtx); !ok {
			break
		}
	}
	if u.themeBtn.Clicked(gtx) {
		k := themes.Dark
		if u.style.pal.Kind == themes.Dark {
			k = themes.Light
		}
		u.style, u.picked = newStyle(k, u.goFonts), true
	}
	u.schemeMu.Lock()
	k := u.scheme
	u.scheme = ""
	u.schemeMu.Unlock()
	if k != "" && !u.picked && k != u.style.pal.Kind {
		u.style = newStyle(k, u.goFonts)
	}
	if u.cancelBtn.Clicked(gtx) {
		if op := snap.Running(); op != nil {
			u.eng.Cancel(op.ID)
		}
	}
	for name, row := range u.rows {
		if row.sel.Clicked(gtx) {
			u.selected = name
			u.sharing.open = false
		}
		if row.up.Clicked(gtx) {
			u.selected = name
			_, err := u.eng.Up(runtime.UpRequest{Selection: runtime.Selection{Apps: []string{name}, Environment: u.env}, Forward: true})
			u.noteErr(name, err)
		}
		if row.down.Clicked(gtx) {
			u.selected = name
			_, err := u.eng.Down(runtime.DownRequest{Selection: runtime.Selection{Apps: []string{name}, Environment: u.env}})
			u.noteErr(name, err)
		}
		if row.restart.Clicked(gtx) {
			u.selected = name
			_, err := u.eng.Restart(name, runtime.Selection{}, nil)
			u.noteErr(name, err)
		}
	}
	for addr, b := range u.addrs {
		if b.open.Clicked(gtx) {
			if err := u.openURL("http://" + addr); err != nil {
				u.noteErr(u.selected, fmt.Errorf("open http://%s: %w", addr, err))
			}
		}
		if b.copy.Clicked(gtx) {
			gtx.Execute(clipboard.WriteCmd{Type: "application/text", Data: io.NopCloser(strings.NewReader(addr))})
		}
	}
	for key, row := range u.forwards {
		if row.toggle.Clicked(gtx) {
			app, inst, _ := strings.Cut(key, "/")
			if running(snap, app, inst) {
				u.eng.StopForwards(app, inst)
			} else {
				// Binding may wait for the cluster: off the window's goroutine. Its
				// error shows in the snapshot's forwards.
				go func() { _ = u.eng.StartForwards(context.Background(), app, runtime.Selection{Instance: inst}) }()
			}
		}
	}
	if u.selected == "" && len(snap.Apps) > 0 {
		u.selected = snap.Apps[0].Name
	}
	u.updatePages(gtx)
	u.updateGit(gtx, snap)
	u.updateSharing(gtx, snap)
}

// nextEnv is the environment after cur in the cycle default → each environment → default.
func nextEnv(envs []string, cur string) string {
	if cur == "" {
		if len(envs) == 0 {
			return ""
		}
		return envs[0]
	}
	i := slices.Index(envs, cur)
	if i < 0 || i+1 >= len(envs) {
		return ""
	}
	return envs[i+1]
}

// noteErr shows an action's immediate error in the status bar, or clears the last one.
func (u *UI) noteErr(app string, err error) {
	if err == nil {
		u.note, u.noteApp = "", ""
		return
	}
	u.note, u.noteApp = err.Error(), app
}

// step moves the selection by d among the visible apps.
func (u *UI) step(d int) {
	if len(u.visible) == 0 {
		return
	}
	i := slices.Index(u.visible, u.selected)
	i = min(max(i+d, 0), len(u.visible)-1)
	u.selected = u.visible[i]
}

// running reports whether an instance's forwards run.
func running(snap *runtime.Snapshot, app, inst string) bool {
	for _, f := range snap.Forwards {
		if f.App == app && f.Instance == inst && f.Err == "" {
			return true
		}
	}
	return false
}

func (u *UI) row(name string) *appRow {
	r := u.rows[name]
	if r == nil {
		r = &appRow{}
		u.rows[name] = r
	}
	return r
}

// topBar: where you are — workspace, environment, the cluster connection in words, theme.
func (u *UI) topBar(gtx layout.Context, snap *runtime.Snapshot) layout.Dimensions {
	s := u.style
	return fill(gtx, s.pal.Sidebar, func(gtx layout.Context) layout.Dimensions {
		return layout.UniformInset(8).Layout(gtx, func(gtx layout.Context) layout.Dimensions {
			children := []layout.FlexChild{
				layout.Rigid(s.bold(s.scale.Title, snap.Workspace.Name).Layout),
				layout.Rigid(layout.Spacer{Width: 16}.Layout),
				layout.Rigid(func(gtx layout.Context) layout.Dimensions {
					if len(snap.Workspace.Environments) < 2 {
						return s.label(s.scale.Body, s.pal.Muted, "env: "+orDash(snap.Workspace.DefaultEnvironment)).Layout(gtx)
					}
					env := u.env
					if env == "" {
						env = orDash(snap.Workspace.DefaultEnvironment) + " (default)"
					}
					b := s.button(&u.envBtn, "env: "+env, "Switch the environment actions run in")
					b.quiet = true
					return b.Layout(gtx)
				}),
			}
			if u.contexts != nil {
				label := "context: per environment"
				if snap.Context != "" {
					label = "context: " + snap.Context
				}
				b := s.button(&u.ctxBtn, label, "Switch the cluster context")
				b.quiet = true
				children = append(children, layout.Rigid(layout.Spacer{Width: 12}.Layout), layout.Rigid(b.Layout))
			}
			for _, c := range snap.Connections {
				col, hollow := s.connColor(c)
				txt := c.String()
				if c.Environment != "" {
					txt = c.Environment + ": " + txt
				}
				u.lines = append(u.lines, "connection "+txt)
				children = append(children,
					layout.Rigid(layout.Spacer{Width: 16}.Layout),
					layout.Rigid(func(gtx layout.Context) layout.Dimensions { return dot(gtx, col, hollow, 10) }),
					layout.Rigid(layout.Spacer{Width: 6}.Layout),
					layout.Rigid(s.label(s.scale.Body, s.pal.Text, txt).Layout))
			}
			children = append(children, u.gitBar(snap)...)
			children = append(children, u.sharingButton(snap)...)
			themeName := "dark"
			if s.pal.Kind == themes.Dark {
				themeName = "light"
			}
			children = append(children,
				layout.Flexed(1, func(gtx layout.Context) layout.Dimensions { return layout.Dimensions{Size: gtx.Constraints.Min} }),
				layout.Rigid(s.button(&u.themeBtn, themeName, "Switch to the "+themeName+" theme").Layout))
			return layout.Flex{Alignment: layout.Middle}.Layout(gtx, children...)
		})
	})
}

func (s style) connColor(c runtime.ConnectionView) (col color.NRGBA, hollow bool) {
	switch c.State {
	case runtime.Connected:
		return s.pal.Healthy, false
	case runtime.Unreachable:
		return s.pal.Failed, false
	}
	return s.pal.Working, true
}

func orDash(v string) string {
	if v == "" {
		return "-"
	}
	return v
}

// sidebarWidth is the width of the apps' list.
const sidebarWidth = unit.Dp(330)

// sideItem is one line of the sidebar: a group heading, an app, or an instance.
type sideItem struct {
	group string
	app   *runtime.AppView
	inst  *runtime.InstanceView
}

// items lists the sidebar's lines for the filter: apps by group, each with its further
// instances. The filter matches app, group, instance and namespace.
func (u *UI) items(snap *runtime.Snapshot) []sideItem {
	q := strings.ToLower(strings.TrimSpace(u.filter.Text()))
	match := func(a *runtime.AppView) bool {
		if q == "" || strings.Contains(a.Name, q) || strings.Contains(strings.ToLower(a.Group), q) || strings.Contains(a.Namespace, q) {
			return true
		}
		for _, iv := range a.Instances {
			if strings.Contains(iv.Instance, q) || strings.Contains(iv.Namespace, q) {
				return true
			}
		}
		return false
	}
	byGroup := map[string][]*runtime.AppView{}
	var groups []string
	for i := range snap.Apps {
		a := &snap.Apps[i]
		if !match(a) {
			continue
		}
		if _, ok := byGroup[a.Group]; !ok {
			groups = append(groups, a.Group)
		}
		byGroup[a.Group] = append(byGroup[a.Group], a)
	}
	slices.Sort(groups)
	var out []sideItem
	u.visible = u.visible[:0]
	for _, g := range groups {
		out = append(out, sideItem{group: orDefault(g, "ungrouped")})
		for _, a := range byGroup[g] {
			out = append(out, sideItem{app: a})
			u.visible = append(u.visible, a.Name)
			for i := 1; i < len(a.Instances); i++ {
				out = append(out, sideItem{app: a, inst: &a.Instances[i]})
			}
		}
	}
	return out
}

func orDefault(v, d string) string {
	if v == "" {
		return d
	}
	return v
}

func (u *UI) sidebarLayout(gtx layout.Context, snap *runtime.Snapshot) layout.Dimensions {
	s := u.style
	w := gtx.Dp(sidebarWidth)
	gtx.Constraints.Min.X, gtx.Constraints.Max.X = w, w
	gtx.Constraints.Min.Y = gtx.Constraints.Max.Y
	items := u.items(snap)
	return fill(gtx, s.pal.Sidebar, func(gtx layout.Context) layout.Dimensions {
		return layout.Flex{Axis: layout.Vertical}.Layout(gtx,
			layout.Rigid(func(gtx layout.Context) layout.Dimensions {
				return layout.UniformInset(8).Layout(gtx, func(gtx layout.Context) layout.Dimensions {
					ed := material.Editor(s.th, &u.filter, "Filter apps  ( / )")
					ed.Color, ed.HintColor, ed.TextSize = s.pal.Text, s.pal.Muted, s.scale.Body
					return ed.Layout(gtx)
				})
			}),
			layout.Flexed(1, func(gtx layout.Context) layout.Dimensions {
				if len(items) == 0 {
					msg := "No apps match the filter."
					if len(snap.Apps) == 0 {
						msg = "No apps in this workspace yet: add one under apps/ (roro init makes an example)."
					}
					return layout.UniformInset(12).Layout(gtx, s.wrap(s.pal.Muted, msg).Layout)
				}
				return material.List(s.th, &u.sidebar).Layout(gtx, len(items), func(gtx layout.Context, i int) layout.Dimensions {
					return u.sideLine(gtx, items[i])
				})
			}),
		)
	})
}

func (u *UI) sideLine(gtx layout.Context, it sideItem) layout.Dimensions {
	s := u.style
	switch {
	case it.app == nil:
		return layout.Inset{Top: 10, Bottom: 2, Left: 10}.Layout(gtx, s.label(s.scale.Small, s.pal.Muted, strings.ToUpper(it.group)).Layout)
	case it.inst != nil:
		col, hollow := s.healthColor(it.inst.Health)
		return layout.Inset{Top: 2, Bottom: 2, Left: 34}.Layout(gtx, func(gtx layout.Context) layout.Dimensions {
			return layout.Flex{Alignment: layout.Middle}.Layout(gtx,
				layout.Rigid(s.label(s.scale.Small, s.pal.Muted, "└ "+it.inst.Instance).Layout),
				layout.Rigid(layout.Spacer{Width: 6}.Layout),
				layout.Rigid(func(gtx layout.Context) layout.Dimensions { return dot(gtx, col, hollow, 8) }),
				layout.Rigid(layout.Spacer{Width: 4}.Layout),
				layout.Rigid(s.label(s.scale.Small, s.pal.Muted, healthWord(it.inst.Health)).Layout),
			)
		})
	}
	a := it.app
	row := u.row(a.Name)
	bg := s.pal.Sidebar
	if a.Name == u.selected {
		bg = s.pal.Selected
	}
	col, hollow := s.healthColor(a.Health)
	return fill(gtx, bg, func(gtx layout.Context) layout.Dimensions {
		return layout.Inset{Top: 4, Bottom: 4, Left: 10, Right: 8}.Layout(gtx, func(gtx layout.Context) layout.Dimensions {
			return layout.Flex{Alignment: layout.Middle}.Layout(gtx,
				layout.Flexed(1, func(gtx layout.Context) layout.Dimensions {
					return row.sel.Layout(gtx, func(gtx layout.Context) layout.Dimensions {
						semantic.DescriptionOp("Select " + a.Name).Add(gtx.Ops)
						return layout.Flex{Alignment: layout.Middle}.Layout(gtx,
							layout.Rigid(func(gtx layout.Context) layout.Dimensions { return dot(gtx, col, hollow, 10) }),
							layout.Rigid(layout.Spacer{Width: 8}.Layout),
							layout.Rigid(s.bold(s.scale.Body, a.Name).Layout),
							layout.Rigid(layout.Spacer{Width: 6}.Layout),
							layout.Flexed(1, s.label(s.scale.Small, s.pal.Muted, healthWord(a.Health)).Layout),
						)
					})
				}),
				layout.Rigid(s.button(&row.up, "Up", "Up "+a.Name).Layout),
				layout.Rigid(layout.Spacer{Width: 4}.Layout),
				layout.Rigid(s.button(&row.down, "Down", "Down "+a.Name).Layout),
				layout.Rigid(layout.Spacer{Width: 4}.Layout),
				layout.Rigid(s.button(&row.restart, "Restart", "Restart "+a.Name).Layout),
			)
		})
	})
}

// statusBar: what is happening — the running operation with its step and cancel, the last
// action's error, an edit of the workspace's files that does not load, and how many
// forwards are live.
func (u *UI) statusBar(gtx layout.Context, snap *runtime.Snapshot) layout.Dimensions {
	s := u.style
	runningOp := snap.Running()
	live := 0
	for _, f := range snap.Forwards {
		if f.Err == "" {
			live++
		}
	}
	return fill(gtx, s.pal.Sidebar, func(gtx layout.Context) layout.Dimensions {
		return layout.Inset{Top: 6, Bottom: 6, Left: 10, Right: 10}.Layout(gtx, func(gtx layout.Context) layout.Dimensions {
			var children []layout.FlexChild
			switch {
			case u.note != "":
				children = append(children, layout.Flexed(1, s.label(s.scale.Body, s.pal.Failed, u.noteApp+": "+u.note).Layout))
			case runningOp != nil:
				msg := fmt.Sprintf("%s %s: %s", runningOp.Kind, targetsText(runningOp.Targets), runningOp.Step)
				if n := len(runningOp.Log); n > 0 && runningOp.Log[n-1].Message != "" {
					msg += " · " + runningOp.Log[n-1].Message
				}
				children = append(children,
					layout.Flexed(1, s.label(s.scale.Body, s.pal.Text, msg).Layout),
					layout.Rigid(s.button(&u.cancelBtn, "Cancel", fmt.Sprintf("Cancel %s #%d", runningOp.Kind, runningOp.ID)).Layout))
			case snap.Workspace.Problem != "":
				children = append(children, layout.Flexed(1, s.label(s.scale.Body, s.pal.Failed,
					"The workspace's files do not load; showing the last version that did: "+snap.Workspace.Problem).Layout))
			default:
				msg := "Ready"
				for _, c := range snap.Connections {
					if c.State != runtime.Connected {
						msg = "Waiting for the cluster (see the top bar); the workspace can be browsed meanwhile"
					}
				}
				children = append(children, layout.Flexed(1, s.label(s.scale.Body, s.pal.Muted, msg).Layout))
			}
			children = append(children, layout.Rigid(layout.Spacer{Width: 16}.Layout),
				layout.Rigid(s.label(s.scale.Body, s.pal.Muted, fmt.Sprintf("%d forwards live", live)).Layout))
			return layout.Flex{Alignment: layout.Middle}.Layout(gtx, children...)
		})
	})
}

func targetsText(ks []runtime.InstanceKey) string {
	parts := make([]string, len(ks))
	for i, k := range ks {
		parts[i] = k.String()
	}
	return strings.Join(parts, ", ")
}

// since is a short age for a time: "3s ago", "2m ago".
func since(now, t time.Time) string {
	if t.IsZero() {
		return ""
	}
	d := now.Sub(t).Round(time.Second)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Round(time.Minute).Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Round(time.Hour).Hours()))
	}
	return fmt.Sprintf("%dd ago", int(d.Hours()/24))
}
