package render

import (
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
	data := ctx.data()
	switch engine {
	case EngineGo, "":
		return executeGo(files, data)
	case EngineHandlebars:
		return executeHandlebars(files, data)
	case EngineJinja:
		return executeJinja(files, data)
	}
	return nil, fmt.Errorf("engine %q is unknown: use %s", engine, strings.Join(Engines, ", "))
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
