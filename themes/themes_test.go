package themes

import (
	"image/color"
	"math"
	"testing"
)

// luminance is WCAG's relative luminance.
func luminance(c color.NRGBA) float64 {
	ch := func(v uint8) float64 {
		s := float64(v) / 255
		if s <= 0.03928 {
			return s / 12.92
		}
		return math.Pow((s+0.055)/1.055, 2.4)
	}
	return 0.2126*ch(c.R) + 0.7152*ch(c.G) + 0.0722*ch(c.B)
}

func contrast(a, b color.NRGBA) float64 {
	la, lb := luminance(a), luminance(b)
	if la < lb {
		la, lb = lb, la
	}
	return (la + 0.05) / (lb + 0.05)
}

// TestContrast: every text and status colour keeps at least 4.5:1 (WCAG AA) against every
// background it is drawn on, in both palettes.
func TestContrast(t *testing.T) {
	for _, p := range []Palette{LightPalette(), DarkPalette()} {
		backgrounds := map[string]color.NRGBA{"Bg": p.Bg, "Sidebar": p.Sidebar, "Surface": p.Surface, "Selected": p.Selected}
		fore := map[string]color.NRGBA{"Text": p.Text, "Muted": p.Muted, "Healthy": p.Healthy, "Working": p.Working, "Failed": p.Failed, "Idle": p.Idle, "Accent": p.Accent}
		for bn, bg := range backgrounds {
			for fn, fg := range fore {
				if c := contrast(fg, bg); c < 4.5 {
					t.Errorf("%s: %s on %s is %.2f:1, want 4.5:1", p.Kind, fn, bn, c)
				}
			}
		}
		if c := contrast(p.OnAccent, p.Accent); c < 4.5 {
			t.Errorf("%s: OnAccent on Accent is %.2f:1", p.Kind, c)
		}
		if c := contrast(p.ErrorText, p.Error); c < 4.5 {
			t.Errorf("%s: ErrorText on Error is %.2f:1", p.Kind, c)
		}
	}
}
