package render

import (
	"context"
	"fmt"
	"path"
	"regexp"
	"strconv"
	"strings"
)

// Engine names, as app.json's "engine" field takes them.
const (
	EngineGo         = "go"
	EngineHandlebars = "handlebars"
	EngineJinja      = "jinja"
)

// Engines lists the template engines roro knows.
var Engines = []string{EngineGo, EngineHandlebars, EngineJinja}

// File is one template of an app, named by its path relative to the app folder.
type File struct {
	Name   string
	Source []byte
}

// Helper reports whether the file only holds helpers (named templates, partials, macros) for
// the others: its base name starts with "_", as Helm's _helpers.tpl does. Helpers produce
// no objects.
func (f File) Helper() bool { return strings.HasPrefix(path.Base(f.Name), "_") }

// Output is what one template file rendered to.
type Output struct {
	File string
	Data []byte
}

// Execute renders every non-helper file with the named engine over ctx, in order.
func Execute(engine string, files []File, ctx *Context) ([]Output, error) {
	return ExecuteTracked(engine, files, ctx, func(string) {})
}

// ExecuteTracked is Execute, calling started with a file's name before it executes that
// file, so that a render stopped from outside (a bound, Ctrl-C) can say where it was.
func ExecuteTracked(engine string, files []File, ctx *Context, started func(file string)) ([]Output, error) {
	data := ctx.data()
	var outs []Output
	var err error
	switch engine {
	case EngineGo, "":
		outs, err = executeGo(files, data, started)
	case EngineHandlebars:
		outs, err = executeHandlebars(files, data, started)
	case EngineJinja:
		outs, err = executeJinja(files, data, started)
	default:
		return nil, fmt.Errorf("engine %q is unknown: use %s", engine, strings.Join(Engines, ", "))
	}
	if err != nil {
		return nil, err
	}
	total := 0
	for _, o := range outs {
		if total += len(o.Data); total > MaxOutput {
			return nil, &TemplateError{File: o.File, Msg: fmt.Sprintf("the app's templates wrote more than %d MiB together: a template writes too much", MaxOutput>>20)}
		}
	}
	return outs, nil
}

// Rendered is what one template file rendered to: its objects (decoded YAML or JSON
// documents, empty ones skipped), in document order.
type Rendered struct {
	File    string
	Objects []map[string]any
}

// ExecuteDecode executes the templates as ExecuteTracked does and decodes each file's output
// with Decode: all the work a template's text drives, so all the work to bound.
func ExecuteDecode(engine string, files []File, ctx *Context, started func(file string)) ([]Rendered, error) {
	outs, err := ExecuteTracked(engine, files, ctx, started)
	if err != nil {
		return nil, err
	}
	rendered := make([]Rendered, 0, len(outs))
	for _, out := range outs {
		objs, err := Decode(out)
		if err != nil {
			return nil, err
		}
		r := Rendered{File: out.File, Objects: make([]map[string]any, len(objs))}
		for i, o := range objs {
			r.Objects[i] = o.Object
		}
		rendered = append(rendered, r)
	}
	return rendered, nil
}

// Executor runs an app's templates and decodes their output: ExecuteDecode's work, wherever
// it happens. A workspace is untrusted, so Roro runs templates in bounded worker processes
// (package core/render/worker); InProcess serves tests of pure logic.
type Executor interface {
	Render(ctx context.Context, engine string, files []File, data *Context) ([]Rendered, error)
}

// InProcess renders in the calling process, with the in-process bounds only (nesting and
// output): a template that loops forever or exhausts memory takes the process with it.
// ctx is checked before the templates run, not while they do.
type InProcess struct{}

// Render implements Executor.
func (InProcess) Render(ctx context.Context, engine string, files []File, data *Context) ([]Rendered, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return ExecuteDecode(engine, files, data, func(string) {})
}

// TemplateError is a template that failed to parse or execute, with where it failed.
type TemplateError struct {
	File   string
	Line   int // 0 when the engine did not say
	Column int // 0 when the engine did not say
	Msg    string
}

func (e *TemplateError) Error() string {
	switch {
	case e.Line > 0 && e.Column > 0:
		return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Column, e.Msg)
	case e.Line > 0:
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

// missingValueHint is added to errors about a value that is not set.
const missingValueHint = "set it in app.json \"values\", values/<env>.json, the environment's values, the instance's values, or with --set"

var lineRe = regexp.MustCompile(`(?i)\bline:? (\d+)(?:,? col(?:umn)?:? (\d+))?`)

// errorAt builds a TemplateError for file from an engine's message, taking the line (and
// column) from the message when the engine put them there in words.
func errorAt(file, msg string) *TemplateError {
	e := &TemplateError{File: file, Msg: strings.TrimSpace(msg)}
	if m := lineRe.FindStringSubmatch(msg); m != nil {
		e.Line, _ = strconv.Atoi(m[1])
		if m[2] != "" {
			e.Column, _ = strconv.Atoi(m[2])
		}
	}
	return e
}
