package gui

import (
	"fmt"
	"io"
	"strings"

	"gioui.org/io/clipboard"
	"gioui.org/layout"
	"gioui.org/widget"

	"github.com/rorokube/roro/core/runtime"
	"github.com/rorokube/roro/gitserve"
)

// Sharing turns the embedded git server on and off and approves refused keys:
// *gitserve.Switch. Its state reaches the window through the snapshot's Sharing.
type Sharing interface {
	Start() error
	Stop()
	Approve(fingerprint, role string) error
}

var _ Sharing = (*gitserve.Switch)(nil)

// sharingState is the Sharing page's state.
type sharingState struct {
	open    bool // the page shows instead of the app's
	button  widget.Clickable
	toggle  widget.Clickable
	copy    map[string]*widget.Clickable // by clone URL
	approve map[string]*widget.Clickable // by fingerprint + "/" + role
	results results
}

// updateSharing handles the Sharing page's input; the server's calls run off the window's
// goroutine, their outcome in the snapshot (and an error in results).
func (u *UI) updateSharing(gtx layout.Context, snap *runtime.Snapshot) {
	sh := &u.sharing
	if u.share == nil {
		return
	}
	if sh.button.Clicked(gtx) {
		sh.open = !sh.open
	}
	if sh.toggle.Clicked(gtx) {
		on := !snap.Sharing.Running
		go func() {
			var err error
			if on {
				err = u.share.Start()
			} else {
				u.share.Stop()
			}
			res := result{}
			if err != nil {
				res = result{text: err.Error(), failed: true}
			}
			sh.results.set("server", res)
			u.invalidate()
		}()
	}
	for url, b := range sh.copy {
		if b.Clicked(gtx) {
			gtx.Execute(clipboard.WriteCmd{Type: "application/text", Data: io.NopCloser(strings.NewReader("git clone " + url))})
		}
	}
	for key, b := range sh.approve {
		if b.Clicked(gtx) {
			fp, role, _ := strings.Cut(key, "/")
			go func() {
				res := result{text: "approved " + fp + " to " + role}
				if err := u.share.Approve(fp, role); err != nil {
					res = result{text: err.Error(), failed: true}
				}
				sh.results.set("keys", res)
				u.invalidate()
			}()
		}
	}
}

// sharingButton is the top bar's way to the Sharing page, saying when keys wait.
func (u *UI) sharingButton(snap *runtime.Snapshot) []layout.FlexChild {
	if u.share == nil {
		return nil
	}
	label := "Sharing"
	if snap.Sharing.Running {
		label = "Sharing: on"
	}
	if n := len(snap.Sharing.Refused); n > 0 {
		label += fmt.Sprintf(" (%d waiting)", n)
	}
	b := u.style.button(&u.sharing.button, label, "Share this workspace with teammates over git")
	b.quiet = !u.sharing.open
	return []layout.FlexChild{layout.Rigid(layout.Spacer{Width: 12}.Layout), layout.Rigid(b.Layout)}
}

// sharingPage is the embedded git server: on or off, where teammates clone from, the keys
// with their roles, and the refused keys with Approve.
func (u *UI) sharingPage(gtx layout.Context, snap *runtime.Snapshot) layout.Dimensions {
	s := u.style
	sh := &u.sharing
	v := snap.Sharing
	var lines []layout.Widget
	add := func(w ...layout.Widget) { lines = append(lines, w...) }
	note := func(where string) {
		if res, ok := sh.results.get(where); ok && res.text != "" {
			col := s.pal.Muted
			if res.failed {
				col = s.pal.Failed
			}
			add(s.wrap(col, res.text).Layout)
		}
	}
	add(s.bold(s.scale.Title, "Sharing").Layout)
	add(s.wrap(s.pal.Muted, "Teammates clone, fetch and push this workspace with plain git, straight from this machine. Only keys you give a role get in: read (clone, fetch) or write (push too). A push is checked with the workspace loader first, never rewrites history, and updates your files only when you have no uncommitted edits.").Layout)
	state, btn := "The server is off.", "Turn on"
	if v.Running {
		state, btn = "Serving on "+v.Addr+" (host key "+v.HostKey+").", "Turn off"
	}
	add(func(gtx layout.Context) layout.Dimensions {
		return layout.Flex{Alignment: layout.Middle}.Layout(gtx,
			layout.Rigid(s.label(s.scale.Body, s.pal.Text, state).Layout),
			layout.Rigid(layout.Spacer{Width: 10}.Layout),
			layout.Rigid(s.button(&sh.toggle, btn, btn+" the git server").Layout))
	})
	if v.Err != "" {
		add(s.wrap(s.pal.Failed, v.Err).Layout)
	}
	note("server")
	if v.Running {
		for _, url := range v.CloneURLs {
			b := u.git.clickable(&sh.copy, url)
			line := "git clone " + url
			add(func(gtx layout.Context) layout.Dimensions {
				return layout.Flex{Alignment: layout.Middle}.Layout(gtx,
					layout.Rigid(s.mono(s.pal.Text, line).Layout),
					layout.Rigid(layout.Spacer{Width: 8}.Layout),
					layout.Rigid(s.button(b, "Copy", "Copy "+line).Layout))
			})
		}
		if strings.HasPrefix(v.Addr, "127.") {
			add(s.wrap(s.pal.Muted, "It listens on this machine only: teammates on your network reach it when you serve on another address (roro serve --addr 0.0.0.0:2222).").Layout)
		}
	}
	add(u.section("Keys"))
	if len(v.Keys) == 0 {
		add(s.wrap(s.pal.Muted, "No key has a role yet: approve one below once it tried to log in, or add one with roro serve keys add FILE --role read|write.").Layout)
	}
	for _, k := range v.Keys {
		add(s.mono(s.pal.Text, fmt.Sprintf("%-5s  %s  %s", k.Role, k.Fingerprint, k.Comment)).Layout)
	}
	note("keys")
	if len(v.Refused) > 0 {
		add(u.section("Waiting for approval"))
		for _, k := range v.Refused {
			read := u.git.clickable(&sh.approve, k.Fingerprint+"/"+gitserve.RoleRead)
			write := u.git.clickable(&sh.approve, k.Fingerprint+"/"+gitserve.RoleWrite)
			line := fmt.Sprintf("%s  from %s, %s (%d attempts)", k.Fingerprint, k.Address, k.At.Local().Format("2006-01-02 15:04"), k.Attempts)
			fp := k.Fingerprint
			add(func(gtx layout.Context) layout.Dimensions {
				return layout.Flex{Alignment: layout.Middle}.Layout(gtx,
					layout.Rigid(s.mono(s.pal.Text, line).Layout),
					layout.Rigid(layout.Spacer{Width: 8}.Layout),
					layout.Rigid(s.button(read, "Approve: read", "Approve "+fp+" to read").Layout),
					layout.Rigid(layout.Spacer{Width: 4}.Layout),
					layout.Rigid(s.button(write, "Approve: write", "Approve "+fp+" to write").Layout))
			})
		}
	}
	return u.pageList(gtx, lines)
}
