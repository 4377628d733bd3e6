package gui

import (
	"fmt"
	"image"
	"os"
	"slices"
	"testing"
	"time"

	"gioui.org/gpu/headless"
	"gioui.org/io/input"
	"gioui.org/layout"
	"gioui.org/op"
	"gioui.org/unit"

	"github.com/rorokube/roro/core/runtime"
	"github.com/rorokube/roro/themes"
)

// manyApps is a snapshot of n apps in 20 groups, each with two instances.
func manyApps(n int) *runtime.Snapshot {
	s := demoSnapshot()
	s.Apps = nil
	for i := range n {
		name := fmt.Sprintf("app-%03d", i)
		h := []runtime.Health{runtime.Healthy, runtime.Progressing, runtime.NotRunning, runtime.Failed}[i%4]
		s.Apps = append(s.Apps, runtime.AppView{Name: name, Group: fmt.Sprintf("group-%02d", i%20), Namespace: name, Health: h,
			Instances: []runtime.InstanceView{{App: name, Instance: "default", Health: h}, {App: name, Instance: "blue", Health: runtime.NotRunning}}})
	}
	return s
}

// BenchmarkFrame500Apps measures one frame of the window with 500 apps: handling input,
// laying out and painting with the GPU renderer (offscreen), as the window does on each
// change. Target: under 8 ms a frame.
func BenchmarkFrame500Apps(b *testing.B) { benchFrame(b, manyApps(500)) }

// BenchmarkFrameDemo is the same frame with the demo's three apps: what painting costs with
// next to nothing to lay out.
func BenchmarkFrameDemo(b *testing.B) { benchFrame(b, demoSnapshot()) }

func benchFrame(b *testing.B, snap *runtime.Snapshot) {
	if os.Getenv("DISPLAY") == "" && os.Getenv("EGL_PLATFORM") == "" {
		b.Setenv("EGL_PLATFORM", "surfaceless")
	}
	size := image.Pt(1200, 760)
	w, err := headless.NewWindow(size.X, size.Y)
	if err != nil {
		b.Skipf("no headless GPU rendering: %v", err)
	}
	defer w.Release()
	var r input.Router
	ui := NewUI(&fakeEngine{snap: snap}, Options{Theme: themes.Light})
	gtx := layout.Context{Ops: new(op.Ops), Source: r.Source(), Metric: unit.Metric{PxPerDp: 1, PxPerSp: 1}, Constraints: layout.Exact(size)}
	frame := func() {
		gtx.Reset()
		ui.Layout(gtx)
		r.Frame(gtx.Ops)
		if err := w.Frame(gtx.Ops); err != nil {
			b.Fatal(err)
		}
	}
	frame() // shaping caches warm, as in a window that has drawn once
	times := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		frame()
		times = append(times, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(times)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(times[len(times)/2]), "ms-p50")
	b.ReportMetric(ms(times[len(times)*99/100]), "ms-p99")
}

// BenchmarkLayout500Apps measures the layout alone of one frame with 500 apps (no painting).
func BenchmarkLayout500Apps(b *testing.B) {
	size := image.Pt(1200, 760)
	var r input.Router
	ui := NewUI(&fakeEngine{snap: manyApps(500)}, Options{Theme: themes.Light})
	gtx := layout.Context{Ops: new(op.Ops), Source: r.Source(), Metric: unit.Metric{PxPerDp: 1, PxPerSp: 1}, Constraints: layout.Exact(size)}
	for range 2 {
		gtx.Reset()
		ui.Layout(gtx)
		r.Frame(gtx.Ops)
	}
	b.ResetTimer()
	for range b.N {
		gtx.Reset()
		ui.Layout(gtx)
		r.Frame(gtx.Ops)
	}
}
