package gui

import (
	"bytes"
	"flag"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"testing"

	"gioui.org/gpu/headless"
	"gioui.org/io/input"
	"gioui.org/layout"
	"gioui.org/op"
	"gioui.org/unit"

	"github.com/rorokube/roro/themes"
)

var update = flag.Bool("update", false, "rewrite the reference images in testdata/")

// renderScreen draws the UI over eng at size with Gio's GPU renderer, offscreen.
func renderScreen(t *testing.T, eng Engine, k themes.Kind, size image.Point) *image.RGBA {
	t.Helper()
	if os.Getenv("DISPLAY") == "" && os.Getenv("EGL_PLATFORM") == "" {
		t.Setenv("EGL_PLATFORM", "surfaceless") // Mesa renders without any display
	}
	w, err := headless.NewWindow(size.X, size.Y)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("headless GPU rendering (EGL): %v", err)
		}
		t.Skipf("no headless GPU rendering here: %v", err)
	}
	defer w.Release()
	var r input.Router
	ui := NewUI(eng, Options{Theme: k, GoFonts: true})
	gtx := layout.Context{Ops: new(op.Ops), Source: r.Source(), Metric: unit.Metric{PxPerDp: 1, PxPerSp: 1}, Constraints: layout.Exact(size)}
	for range 2 {
		gtx.Reset()
		ui.Layout(gtx)
		r.Frame(gtx.Ops)
	}
	if err := w.Frame(gtx.Ops); err != nil {
		t.Fatal(err)
	}
	img := image.NewRGBA(image.Rectangle{Max: size})
	if err := w.Screenshot(img); err != nil {
		t.Fatal(err)
	}
	return img
}

// differs counts the pixels that differ by more than 24 in a channel.
func differs(a, b *image.RGBA) int {
	if a.Bounds() != b.Bounds() {
		return a.Bounds().Dx() * a.Bounds().Dy()
	}
	n := 0
	for i := 0; i+3 < len(a.Pix); i += 4 {
		for c := range 3 {
			d := int(a.Pix[i+c]) - int(b.Pix[i+c])
			if d > 24 || d < -24 {
				n++
				break
			}
		}
	}
	return n
}

// TestRenderedScreens: the main screen, drawn by the GPU renderer in both themes, matches its
// reference image in testdata/ to within 0.5 % of its pixels (drawn with Gio's embedded Go
// fonts, so it is the same on every machine). `go test -update` rewrites the references.
func TestRenderedScreens(t *testing.T) {
	size := image.Pt(1000, 640)
	for _, k := range []themes.Kind{themes.Light, themes.Dark} {
		got := renderScreen(t, &fakeEngine{snap: demoSnapshot()}, k, size)
		path := filepath.Join("testdata", "main-"+string(k)+".png")
		if *update {
			var b bytes.Buffer
			if err := png.Encode(&b, got); err != nil {
				t.Fatal(err)
			}
			if err := os.MkdirAll("testdata", 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		f, err := os.Open(path)
		if err != nil {
			t.Fatalf("%v (run go test -tags novulkan ./gui -update to make it)", err)
		}
		ref, err := png.Decode(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		want := image.NewRGBA(ref.Bounds())
		for y := range ref.Bounds().Dy() {
			for x := range ref.Bounds().Dx() {
				want.Set(x, y, ref.At(x, y))
			}
		}
		if n, limit := differs(got, want), size.X*size.Y/200; n > limit {
			out := filepath.Join(t.TempDir(), "main-"+string(k)+".png")
			var b bytes.Buffer
			_ = png.Encode(&b, got)
			_ = os.WriteFile(out, b.Bytes(), 0o644)
			t.Errorf("%s theme: %d pixels differ from %s (limit %d); this render is %s", k, n, path, limit, out)
		}
	}
}
