package themes

import (
	"image/color"

	"gioui.org/unit"
)

// Kind names a palette.
type Kind string

// The palettes.
const (
	Light Kind = "light"
	Dark  Kind = "dark"
)

// Palette is every colour the GUI draws with, grouped by purpose. Status colours always come
// with a word or a shape beside them; each text colour keeps at least 4.5:1 against the
// backgrounds it is drawn on.
type Palette struct {
	Kind Kind

	// Surfaces, from the window's background up.
	Bg, Sidebar, Surface, Selected, Border color.NRGBA
	// Text on those surfaces, and quieter text.
	Text, Muted color.NRGBA
	// Accent is for primary actions and focus; OnAccent is text on it.
	Accent, OnAccent color.NRGBA

	// Health and state: healthy or connected, working or progressing, failed or
	// unreachable, and not running (drawn hollow).
	Healthy, Working, Failed, Idle color.NRGBA
	// Error is the background of an error box; ErrorText is its text.
	Error, ErrorText color.NRGBA
}

func rgb(v uint32) color.NRGBA {
	return color.NRGBA{R: uint8(v >> 16), G: uint8(v >> 8), B: uint8(v), A: 0xff}
}

// LightPalette is the palette for a light desktop.
func LightPalette() Palette {
	return Palette{
		Kind:      Light,
		Bg:        rgb(0xffffff),
		Sidebar:   rgb(0xf4f5f7),
		Surface:   rgb(0xffffff),
		Selected:  rgb(0xe6eefb),
		Border:    rgb(0xd5d9e0),
		Text:      rgb(0x1c2026),
		Muted:     rgb(0x5a6270),
		Accent:    rgb(0x1f5fbf),
		OnAccent:  rgb(0xffffff),
		Healthy:   rgb(0x17692f),
		Working:   rgb(0x8a4d00),
		Failed:    rgb(0xc0262d),
		Idle:      rgb(0x535a66),
		Error:     rgb(0xfdecec),
		ErrorText: rgb(0x8f1d22),
	}
}

// DarkPalette is the palette for a dark desktop.
func DarkPalette() Palette {
	return Palette{
		Kind:      Dark,
		Bg:        rgb(0x16181d),
		Sidebar:   rgb(0x1d2026),
		Surface:   rgb(0x22252c),
		Selected:  rgb(0x243049),
		Border:    rgb(0x363a43),
		Text:      rgb(0xe8eaee),
		Muted:     rgb(0xa3a9b5),
		Accent:    rgb(0x6ea3ff),
		OnAccent:  rgb(0x0d1424),
		Healthy:   rgb(0x4cc274),
		Working:   rgb(0xf0a43a),
		Failed:    rgb(0xff8a8a),
		Idle:      rgb(0xa3aab7),
		Error:     rgb(0x3a1d20),
		ErrorText: rgb(0xffb3b3),
	}
}

// For returns the palette of kind, the light one for anything else.
func For(k Kind) Palette {
	if k == Dark {
		return DarkPalette()
	}
	return LightPalette()
}

// Scale is the type scale: the text sizes the GUI uses, by role.
type Scale struct {
	Title, Heading, Body, Small, Mono unit.Sp
}

// DefaultScale is the type scale at the desktop's normal size.
func DefaultScale() Scale {
	return Scale{Title: 18, Heading: 15, Body: 13, Small: 11.5, Mono: 12}
}
