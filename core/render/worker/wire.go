package worker

import (
	"encoding/gob"
	"encoding/json"

	"github.com/rorokube/roro/core/render"
)

// request is one render sent to a worker: the templates and the context they see.
type request struct {
	Engine  string
	Files   []render.File
	Context render.Context
}

// frame is one message from a worker about the request it is running: a file it started
// (Started), or the end (Done) with the outputs or the error.
type frame struct {
	Started  string
	Done     bool
	Rendered []render.Rendered
	Err      *wireError
}

// wireError carries a render error across the pipe, keeping a template's or an object's
// location.
type wireError struct {
	File         string
	Line, Column int
	Msg          string
	Located      bool                // a *render.TemplateError
	Object       *render.ObjectError // an object that is not valid
}

func (e *wireError) err() error {
	if e.Object != nil {
		return e.Object
	}
	if e.Located {
		return &render.TemplateError{File: e.File, Line: e.Line, Column: e.Column, Msg: e.Msg}
	}
	return plainError(e.Msg)
}

// plainError is an error from the worker that had no location.
type plainError string

func (e plainError) Error() string { return string(e) }

// registered names, once, the types that travel inside interfaces (values hold what JSON,
// YAML and --set decode to), as gob needs. A package variable, so that it happens before
// any init: the worker serves from init.
var registered = registerTypes()

func registerTypes() bool {
	gob.Register(map[string]any{})
	gob.Register([]any{})
	gob.Register(map[string]string{})
	gob.Register([]string{})
	gob.Register(json.Number(""))
	gob.Register(int64(0))
	gob.Register(float64(0))
	return true
}
