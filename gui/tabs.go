package gui

import (
	"context"
	"fmt"
	"image/color"
	"io"
	"slices"
	"strings"

	"gioui.org/io/clipboard"
	"gioui.org/layout"
	"gioui.org/widget"
	"gioui.org/widget/material"
	"sigs.k8s.io/yaml"

	"github.com/rorokube/roro/core/kube"
	"github.com/rorokube/roro/core/render"
	"github.com/rorokube/roro/core/runtime"
)

// colorName picks a message's colour.
type colorName int

const (
	quiet colorName = iota
	failed
)

// tab is one page of an app.
type tab string

// The app's pages, in the order people need them.
const (
	tabOverview  tab = "Overview"
	tabEnv       tab = "Env"
	tabManifests tab = "Manifests"
	tabDiff      tab = "Diff"
	tabLogs      tab = "Logs"
	tabHistory   tab = "History"
)

var tabs = []tab{tabOverview, tabEnv, tabManifests, tabDiff, tabLogs, tabHistory}

// pages is the state of the app's pages other than the overview.
type pages struct {
	current  tab
	buttons  map[tab]*widget.Clickable
	refresh  widget.Clickable
	copyEnv  widget.Clickable
	reveal   map[string]*widget.Clickable
	revealed map[string]bool // "app/NAME" shown in clear
	search   widget.Editor
	env      loader[*render.Env]
	manif    loader[[]string]
	diff     loader[[]string]
	// following is the instance whose logs the engine follows for this page.
	following string
	again     bool // the refresh button was clicked this frame
	// forceRefresh is set by Ctrl+R for the next frame.
	forceRefresh bool
}

// init readies the pages' state.
func (p *pages) init() {
	p.current, p.buttons, p.reveal, p.revealed = tabOverview, map[tab]*widget.Clickable{}, map[string]*widget.Clickable{}, map[string]bool{}
	for _, t := range tabs {
		p.buttons[t] = new(widget.Clickable)
	}
	p.search.SingleLine = true
}

// updatePages handles the tabs' input; copy puts text on the clipboard.
func (u *UI) updatePages(gtx layout.Context) {
	p := &u.pages
	for _, t := range tabs {
		if p.buttons[t].Clicked(gtx) {
			p.current = t
		}
	}
	p.again = p.refresh.Clicked(gtx) || p.forceRefresh
	p.forceRefresh = false
	for key, b := range p.reveal {
		if b.Clicked(gtx) {
			p.revealed[key] = !p.revealed[key]
		}
	}
	if p.copyEnv.Clicked(gtx) {
		if env, _, err := p.env.get(u.selected, false, nil, nil); err == nil && env != nil {
			data, err := env.DotEnv()
			if err == nil {
				gtx.Execute(clipboard.WriteCmd{Type: "application/text", Data: io.NopCloser(strings.NewReader(data))})
			}
			u.noteErr(u.selected, err)
		}
	}
	for {
		if _, ok := p.search.Update(gtx); !ok {
			break
		}
	}
	// Logs are followed only while their page shows.
	want := ""
	if p.current == tabLogs && u.selected != "" {
		want = u.selected
	}
	if want != p.following {
		if p.following != "" {
			u.eng.StopLogs(p.following, "")
		}
		if want != "" {
			_ = u.eng.FollowLogs(want, runtime.Selection{})
		}
		p.following = want
	}
}

// tabBar draws the app's tabs, the current one marked.
func (u *UI) tabBar(gtx layout.Context) layout.Dimensions {
	s := u.style
	var children []layout.FlexChild
	for _, t := range tabs {
		b := s.button(u.pages.buttons[t], string(t), "Tab "+string(t))
		if t != u.pages.current {
			b.quiet = true
		}
		children = append(children, layout.Rigid(b.Layout), layout.Rigid(layout.Spacer{Width: 6}.Layout))
	}
	return layout.Inset{Top: 8, Bottom: 4}.Layout(gtx, func(gtx layout.Context) layout.Dimensions {
		return layout.Flex{Alignment: layout.Middle}.Layout(gtx, children...)
	})
}

// tabLines are the lines of the current tab other than the overview.
func (u *UI) tabLines(snap *runtime.Snapshot, app *runtime.AppView) []layout.Widget {
	s := u.style
	p := &u.pages
	inv := u.invalidate
	msg := func(c colorName, txt string) []layout.Widget {
		col := s.pal.Muted
		if c == failed {
			col = s.pal.Failed
		}
		return []layout.Widget{s.wrap(col, txt).Layout}
	}
	switch p.current {
	case tabEnv:
		env, loading, err := p.env.get(app.Name, p.again, func(ctx context.Context) (*render.Env, error) {
			return u.eng.Env(ctx, app.Name, runtime.Selection{})
		}, inv)
		switch {
		case loading:
			return msg(quiet, "Resolving env (host variables, cluster objects)…")
		case err != nil:
			return append(msg(failed, err.Error()), u.refreshButton())
		case len(env.Values) == 0:
			return msg(quiet, "This app declares no env (\"env\" in its app.json).")
		}
		out := []layout.Widget{func(gtx layout.Context) layout.Dimensions {
			return layout.Flex{}.Layout(gtx, layout.Rigid(s.button(&p.copyEnv, "Copy as .env", "Copy the env of "+app.Name+" as .env").Layout),
				layout.Rigid(layout.Spacer{Width: 6}.Layout), layout.Rigid(u.refreshButton()))
		}}
		names := make([]string, 0, len(env.Values))
		for n := range env.Values {
			names = append(names, n)
		}
		slices.Sort(names)
		for _, n := range names {
			val := env.Values[n]
			if env.Secret[n] {
				key := app.Name + "/" + n
				b := p.reveal[key]
				if b == nil {
					b = new(widget.Clickable)
					p.reveal[key] = b
				}
				label, desc := "Reveal", "Reveal "+n
				if p.revealed[key] {
					label, desc = "Hide", "Hide "+n
				} else {
					val = render.SecretMask
				}
				line := n + "=" + val
				out = append(out, func(gtx layout.Context) layout.Dimensions {
					return layout.Flex{Alignment: layout.Middle}.Layout(gtx, layout.Rigid(s.mono(s.pal.Text, line).Layout),
						layout.Rigid(layout.Spacer{Width: 8}.Layout), layout.Rigid(s.button(b, label, desc).Layout))
				})
				continue
			}
			out = append(out, s.mono(s.pal.Text, n+"="+val).Layout)
		}
		return out
	case tabManifests:
		lines, loading, err := p.manif.get(app.Name, p.again, func(ctx context.Context) ([]string, error) {
			res, env, err := u.eng.Render(ctx, app.Name, runtime.Selection{})
			if err != nil {
				return nil, err
			}
			var out []string
			for i, o := range res.Objects {
				y, err := yaml.Marshal(render.MaskObject(o.Object, env.SecretValues()))
				if err != nil {
					return nil, err
				}
				if i > 0 {
					out = append(out, "---")
				}
				out = append(out, strings.Split(strings.TrimRight(string(y), "\n"), "\n")...)
			}
			return out, nil
		}, inv)
		return u.textLines(lines, loading, err, "Rendering…", "", s.pal.Text)
	case tabDiff:
		lines, loading, err := p.diff.get(app.Name, p.again, func(ctx context.Context) ([]string, error) {
			d, err := u.eng.Diff(ctx, app.Name, runtime.Selection{}, nil)
			if err != nil {
				return nil, err
			}
			return strings.Split(strings.TrimRight(d, "\n"), "\n"), nil
		}, inv)
		if !loading && err == nil && len(lines) == 1 && lines[0] == "" {
			return append(msg(quiet, "No difference: the cluster has what up would apply."), u.refreshButton())
		}
		return u.textLines(lines, loading, err, "Asking the cluster for a server-side dry run…", "", s.pal.Text)
	case tabHistory:
		return u.historyLines(snap, app)
	case tabLogs:
		buf := u.eng.LogLines(app.Name, "")
		q := strings.ToLower(p.search.Text())
		out := []layout.Widget{func(gtx layout.Context) layout.Dimensions {
			ed := material.Editor(s.th, &p.search, "Search the logs")
			ed.Color, ed.HintColor = s.pal.Text, s.pal.Muted
			return ed.Layout(gtx)
		}}
		if buf.Err != nil {
			out = append(out, msg(failed, buf.Err.Error())...)
		}
		shown := 0
		for i := len(buf.Lines) - 1; i >= 0 && shown < 500; i-- { // the latest 500 that match
			l := buf.Lines[i]
			if q != "" && !strings.Contains(strings.ToLower(l.Line), q) && !strings.Contains(l.Pod, q) {
				continue
			}
			shown++
			out = append(out, logLine(s, l))
		}
		if shown == 0 {
			out = append(out, msg(quiet, "No log lines yet (following the app's pods).")...)
		} else {
			slices.Reverse(out[len(out)-shown:])
		}
		return out
	}
	return nil
}

func logLine(s style, l kube.LogLine) layout.Widget {
	txt := fmt.Sprintf("%s [%s/%s] %s", l.Time.Format("15:04:05"), l.Pod, l.Container, l.Line)
	c := s.pal.Text
	if l.Err {
		c = s.pal.Failed
	}
	return s.mono(c, txt).Layout
}

// textLines shows loaded text as monospace lines, or its state.
func (u *UI) textLines(lines []string, loading bool, err error, busy, empty string, c color.NRGBA) []layout.Widget {
	s := u.style
	switch {
	case loading:
		return []layout.Widget{s.wrap(s.pal.Muted, busy).Layout}
	case err != nil:
		return []layout.Widget{s.wrap(s.pal.Failed, err.Error()).Layout, u.refreshButton()}
	}
	out := []layout.Widget{u.refreshButton()}
	for _, l := range lines {
		col := c
		switch {
		case strings.HasPrefix(l, "+") && !strings.HasPrefix(l, "+++"):
			col = s.pal.Healthy
		case strings.HasPrefix(l, "-") && !strings.HasPrefix(l, "---"):
			col = s.pal.Failed
		}
		out = append(out, s.mono(col, l).Layout)
	}
	return out
}

func (u *UI) refreshButton() layout.Widget {
	b := u.style.button(&u.pages.refresh, "Refresh", "Refresh the page")
	return func(gtx layout.Context) layout.Dimensions {
		return layout.Flex{}.Layout(gtx, layout.Rigid(b.Layout)) // its own width, not the page's
	}
}
