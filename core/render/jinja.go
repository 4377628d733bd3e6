package render

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"path"
	"regexp"
	"strings"

	"github.com/nikolalohinski/gonja/v2"
	"github.com/nikolalohinski/gonja/v2/builtins"
	"github.com/nikolalohinski/gonja/v2/config"
	"github.com/nikolalohinski/gonja/v2/exec"
	"github.com/nikolalohinski/gonja/v2/loaders"
	"github.com/nikolalohinski/gonja/v2/parser"
)

// executeJinja renders with nikolalohinski/gonja (Jinja2 syntax, which Tera follows too).
// Undefined names are errors (StrictUndefined). Templates may {% include %} or
// {% import %} the app's other files by their path relative to the app folder.
func executeJinja(files []File, data map[string]any, started func(string)) ([]Output, error) {
	loader := memoryLoader{}
	for _, f := range files {
		loader[f.Name] = f.Source
	}
	cfg := config.New()
	cfg.StrictUndefined = true
	cfg.KeepTrailingNewline = true
	env := &exec.Environment{
		Context:           gonja.DefaultContext,
		Filters:           builtins.Filters,
		Tests:             builtins.Tests,
		ControlStructures: builtins.ControlStructures,
		Methods:           builtins.Methods,
	}
	var out []Output
	for _, f := range files {
		started(f.Name)
		tpl, err := exec.NewTemplate(f.Name, cfg, loader, env)
		if err != nil {
			return nil, jinjaError(f.Name, err)
		}
		if f.Helper() {
			continue
		}
		buf := limitedBuffer{max: MaxOutput}
		if err := executeSafely(tpl, &buf, data); err != nil {
			return nil, jinjaError(f.Name, err)
		}
		out = append(out, Output{File: f.Name, Data: buf.Bytes()})
	}
	return out, nil
}

// executeSafely runs a jinja template, turning a panic of the engine (gonja panics on
// {{ 1 % 0 }}) into an error: a template is untrusted input and must not take Roro down.
func executeSafely(tpl *exec.Template, w io.Writer, data map[string]any) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("the template failed: %v", r)
		}
	}()
	return tpl.Execute(w, exec.NewContext(data))
}

func jinjaError(file string, err error) error {
	var syn *parser.SyntaxError
	if errors.As(err, &syn) {
		return &TemplateError{File: file, Line: syn.Line, Column: syn.Column, Msg: syn.Message}
	}
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "unable to execute template: ")
	e := errorAt(file, msg)
	if m := jinjaUndefinedRe.FindStringSubmatch(msg); m != nil {
		e.Msg = fmt.Sprintf("value %s is missing (%s): %s", m[1], m[2], missingValueHint)
	}
	return e
}

// jinjaUndefinedRe picks the expression and the cause out of gonja's nested undefined-name error.
var jinjaUndefinedRe = regexp.MustCompile(`at line \d+: (\S+): .*?(attribute '[^']*' not found|Unable to evaluate name "[^"]*")`)

// memoryLoader serves the app's templates to gonja by their path relative to the app folder.
type memoryLoader map[string][]byte

var _ loaders.Loader = memoryLoader{}

func (l memoryLoader) Read(name string) (io.Reader, error) {
	src, ok := l[name]
	if !ok {
		return nil, fmt.Errorf("no template %q in this app's manifests", name)
	}
	return bytes.NewReader(src), nil
}

func (l memoryLoader) Resolve(name string) (string, error) {
	return path.Clean(name), nil
}

func (l memoryLoader) Inherit(string) (loaders.Loader, error) { return l, nil }
