package gui

import (
	"image"

	"gioui.org/io/input"
	"gioui.org/layout"
	"gioui.org/op"
	"gioui.org/unit"
)

// Locate lays the UI out offscreen over eng at size (one pixel a dp) and returns the bounds
// of the widget described as description ("Up api"). The window lays out the same way, so an
// end-to-end test learns here where to click on the real window.
func Locate(eng Engine, opts Options, size image.Point, description string) (image.Rectangle, bool) {
	var r input.Router
	ui := NewUI(eng, opts)
	gtx := layout.Context{Ops: new(op.Ops), Source: r.Source(), Metric: unit.Metric{PxPerDp: 1, PxPerSp: 1},
		Constraints: layout.Exact(size)}
	for range 2 { // the second frame sees the first's selection
		gtx.Reset()
		ui.Layout(gtx)
		r.Frame(gtx.Ops)
	}
	return findDescribed(r.AppendSemantics(nil), description)
}

// findDescribed walks a semantic tree for the node described as desc.
func findDescribed(nodes []input.SemanticNode, desc string) (image.Rectangle, bool) {
	for _, n := range nodes {
		if n.Desc.Description == desc {
			return n.Desc.Bounds, true
		}
		if b, ok := findDescribed(n.Children, desc); ok {
			return b, true
		}
	}
	return image.Rectangle{}, false
}
