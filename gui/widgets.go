package gui

import (
	"image"
	"image/color"

	"gioui.org/font"
	"gioui.org/font/gofont"
	"gioui.org/io/semantic"
	"gioui.org/layout"
	"gioui.org/op/clip"
	"gioui.org/op/paint"
	"gioui.org/text"
	"gioui.org/unit"
	"gioui.org/widget"
	"gioui.org/widget/material"

	"github.com/rorokube/roro/core/runtime"
	"github.com/rorokube/roro/themes"
)

// style is the theme a frame draws with: Gio's material theme, our palette and type scale.
type style struct {
	th    *material.Theme
	pal   themes.Palette
	scale themes.Scale
}

func newStyle(k themes.Kind, goFonts bool) style {
	th := material.NewTheme()
	if goFonts {
		th.Shaper = text.NewShaper(text.NoSystemFonts(), text.WithCollection(gofont.Collection()))
	}
	s := style{th: th, pal: themes.For(k), scale: themes.DefaultScale()}
	th.Palette = material.Palette{Bg: s.pal.Bg, Fg: s.pal.Text, ContrastBg: s.pal.Accent, ContrastFg: s.pal.OnAccent}
	th.TextSize = s.scale.Body
	return s
}

// label is body text in c.
func (s style) label(size unit.Sp, c color.NRGBA, txt string) material.LabelStyle {
	l := material.Label(s.th, size, txt)
	l.Color = c
	l.MaxLines = 1
	l.Truncator = "…"
	return l
}

// bold is a one-line label in the heading weight.
func (s style) bold(size unit.Sp, txt string) material.LabelStyle {
	l := s.label(size, s.pal.Text, txt)
	l.Font.Weight = font.Bold
	return l
}

// mono is a line of monospace text (logs, addresses).
func (s style) mono(c color.NRGBA, txt string) material.LabelStyle {
	l := s.label(s.scale.Mono, c, txt)
	l.Font.Typeface = "monospace"
	return l
}

// wrap is text that may take several lines.
func (s style) wrap(c color.NRGBA, txt string) material.LabelStyle {
	l := material.Label(s.th, s.scale.Body, txt)
	l.Color = c
	l.Alignment = text.Start
	return l
}

// actionButton is a small button whose description names it for screen readers (and the
// screen tests): "Up api", not just "Up".
type actionButton struct {
	style       style
	button      *widget.Clickable
	text        string
	description string
	// quiet draws it as a surface with text, not in the accent (an unselected tab).
	quiet bool
}

// button returns a small action button.
func (s style) button(b *widget.Clickable, txt, description string) actionButton {
	return actionButton{style: s, button: b, text: txt, description: description}
}

func (b actionButton) Layout(gtx layout.Context) layout.Dimensions {
	s := b.style
	bl := material.ButtonLayout(s.th, b.button)
	bl.Background = s.pal.Accent
	fg := s.pal.OnAccent
	if b.quiet {
		bl.Background, fg = s.pal.Sidebar, s.pal.Text
	}
	bl.CornerRadius = 4
	return bl.Layout(gtx, func(gtx layout.Context) layout.Dimensions {
		semantic.DescriptionOp(b.description).Add(gtx.Ops)
		return layout.Inset{Top: 3, Bottom: 3, Left: 8, Right: 8}.Layout(gtx, func(gtx layout.Context) layout.Dimensions {
			return s.label(s.scale.Small, fg, b.text).Layout(gtx)
		})
	})
}

// healthColor is the colour of a health, and whether its dot is hollow.
func (s style) healthColor(h runtime.Health) (color.NRGBA, bool) {
	switch h {
	case runtime.Healthy:
		return s.pal.Healthy, false
	case runtime.Progressing:
		return s.pal.Working, false
	case runtime.Failed:
		return s.pal.Failed, false
	case runtime.Unknown:
		return s.pal.Idle, false
	}
	return s.pal.Idle, true
}

// dot draws a status dot: filled, or a ring when hollow.
func dot(gtx layout.Context, c color.NRGBA, hollow bool, size unit.Dp) layout.Dimensions {
	d := gtx.Dp(size)
	rect := image.Rect(0, 0, d, d)
	if hollow {
		w := max(gtx.Dp(1.5), 1)
		paint.FillShape(gtx.Ops, c, clip.Stroke{Path: clip.Ellipse(rect.Inset(w / 2)).Path(gtx.Ops), Width: float32(w)}.Op())
	} else {
		paint.FillShape(gtx.Ops, c, clip.Ellipse(rect).Op(gtx.Ops))
	}
	return layout.Dimensions{Size: rect.Max}
}

// fill paints the whole constraint area in c under w.
func fill(gtx layout.Context, c color.NRGBA, w layout.Widget) layout.Dimensions {
	return layout.Background{}.Layout(gtx, func(gtx layout.Context) layout.Dimensions {
		paint.FillShape(gtx.Ops, c, clip.Rect{Max: gtx.Constraints.Min}.Op())
		return layout.Dimensions{Size: gtx.Constraints.Min}
	}, w)
}

// rule is a one-pixel line across the available width.
func rule(gtx layout.Context, c color.NRGBA) layout.Dimensions {
	size := image.Pt(gtx.Constraints.Max.X, max(gtx.Dp(1), 1))
	paint.FillShape(gtx.Ops, c, clip.Rect{Max: size}.Op())
	return layout.Dimensions{Size: size}
}

// healthWord is a health in words, beside its dot (colour never alone).
func healthWord(h runtime.Health) string {
	if h == "" {
		return string(runtime.NotRunning)
	}
	return string(h)
}
