package render

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"text/template"

	"github.com/Masterminds/sprig/v3"
	"sigs.k8s.io/yaml"
)

// executeGo renders with text/template, sprig v3 and the Helm functions Helm users reach
// for: include, tpl, toYaml, fromYaml, toJson, fromJson and required. A missing map key is
// an error, never "<no value>".
func executeGo(files []File, data map[string]any, started func(string)) ([]Output, error) {
	var root *template.Template
	funcs := maps.Clone(baseFuncs())
	// include and tpl nest; a template that calls itself would grow the stack until the
	// process dies, so nesting stops at maxNesting (Helm's bound), with an error.
	depth := 0
	enter := func(what string) error {
		if depth++; depth > maxNesting {
			return fmt.Errorf("%s nested more than %d deep: a template includes itself", what, maxNesting)
		}
		return nil
	}
	funcs["include"] = func(name string, data any) (string, error) {
		defer func() { depth-- }()
		if err := enter("include " + strconv.Quote(name)); err != nil {
			return "", err
		}
		buf := limitedBuffer{max: MaxOutput}
		if err := root.ExecuteTemplate(&buf, name, data); err != nil {
			return "", err
		}
		return buf.String(), nil
	}
	funcs["tpl"] = func(text string, data any) (string, error) {
		defer func() { depth-- }()
		if err := enter("tpl"); err != nil {
			return "", err
		}
		t, err := root.Clone()
		if err != nil {
			return "", err
		}
		t, err = t.New(tplName).Parse(text)
		if err != nil {
			return "", err
		}
		buf := limitedBuffer{max: MaxOutput}
		if err := t.Execute(&buf, data); err != nil {
			return "", err
		}
		return buf.String(), nil
	}
	root = template.New("").Option("missingkey=error").Funcs(funcs)
	for _, f := range files {
		if _, err := root.New(f.Name).Parse(string(f.Source)); err != nil {
			return nil, goError(f.Name, err)
		}
	}
	var out []Output
	for _, f := range files {
		if f.Helper() {
			continue
		}
		started(f.Name)
		buf := limitedBuffer{max: MaxOutput}
		if err := root.ExecuteTemplate(&buf, f.Name, data); err != nil {
			return nil, goError(f.Name, err)
		}
		out = append(out, Output{File: f.Name, Data: buf.Bytes()})
	}
	return out, nil
}

// maxNesting bounds how deep include and tpl may nest (Helm stops at 1,000 too).
const maxNesting = 1000

// MaxOutput bounds what an instance's templates may write, one file or all together (64 MiB):
// a template is untrusted input.
const MaxOutput = 64 << 20

// limitedBuffer is a bytes.Buffer that refuses to grow past max.
type limitedBuffer struct {
	bytes.Buffer
	max int
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if b.Len()+len(p) > b.max {
		return 0, fmt.Errorf("the output passed %d MiB: a template writes too much", b.max>>20)
	}
	return b.Buffer.Write(p)
}

// baseFuncs are the functions every go template gets that do not depend on the template set:
// sprig's, and Helm's toYaml, fromYaml, fromJson and required. Built once; never modified.
var baseFuncs = sync.OnceValue(func() template.FuncMap {
	funcs := sprig.TxtFuncMap()
	// A workspace is untrusted: its templates must not read the host environment behind its
	// back (env sources are declared in app.json), nor reach the network (getHostByName can
	// send a value out through DNS). Helm removes the same.
	delete(funcs, "env")
	delete(funcs, "expandenv")
	delete(funcs, "getHostByName")
	funcs["toYaml"] = toYAML
	funcs["fromYaml"] = fromYAML
	funcs["fromJson"] = fromJSON
	funcs["required"] = required
	return funcs
})

// goErrRe matches text/template's "template: NAME:LINE[:COL]: MESSAGE".
var goErrRe = regexp.MustCompile(`^template: (.+?):(\d+)(?::(\d+))?: (.*)$`)

// noEntryRe matches the message of a missing map key, with the expression that asked for it.
var noEntryRe = regexp.MustCompile(`executing ".*?" at <(.+?)>: map has no entry for key "(.*?)"`)

func goError(file string, err error) error {
	msg := err.Error()
	// An error inside include or tpl nests: the innermost message is the useful one, at the
	// innermost location that is a file of the app (text given to tpl has none of its own).
	inner := msg
	if i := strings.LastIndex(msg, "template: "); i > 0 {
		inner = msg[i:]
	}
	e := &TemplateError{File: file, Msg: inner}
	located := false
	for rest := msg; ; {
		i := strings.Index(rest, "template: ")
		if i < 0 {
			break
		}
		rest = rest[i:]
		if m := goLocRe.FindStringSubmatch(rest); m != nil && m[1] != tplName {
			e.File = m[1]
			e.Line, _ = strconv.Atoi(m[2])
			e.Column = 0
			if m[3] != "" {
				e.Column, _ = strconv.Atoi(m[3])
			}
			located = true
		}
		rest = rest[len("template: "):]
	}
	if m := goErrRe.FindStringSubmatch(inner); m != nil {
		e.Msg = m[4]
		if m[1] == tplName && located {
			e.Msg = "in text given to tpl: " + m[4]
		}
	}
	if m := noEntryRe.FindStringSubmatch(e.Msg); m != nil {
		e.Msg = fmt.Sprintf("value %s is missing (no key %q): %s", m[1], m[2], missingValueHint)
	}
	return e
}

// tplName names the text tpl parses, in text/template's errors.
const tplName = "tpl"

// goLocRe matches the location at the start of one of text/template's "template: " prefixes.
var goLocRe = regexp.MustCompile(`^template: ([^:\n]+):(\d+)(?::(\d+))?: `)

func toYAML(v any) (string, error) {
	b, err := yaml.Marshal(v)
	if err != nil {
		return "", err
	}
	return strings.TrimSuffix(string(b), "\n"), nil
}

func fromYAML(s string) (map[string]any, error) {
	m := map[string]any{}
	if err := yaml.Unmarshal([]byte(s), &m); err != nil {
		return nil, fmt.Errorf("fromYaml: %w", err)
	}
	return m, nil
}

func fromJSON(s string) (any, error) {
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		return nil, fmt.Errorf("fromJson: %w", err)
	}
	return v, nil
}

// required fails the render with msg when v is nil or empty, as Helm's required does.
func required(msg string, v any) (any, error) {
	if v == nil {
		return nil, errors.New(msg)
	}
	if s, ok := v.(string); ok && s == "" {
		return nil, errors.New(msg)
	}
	return v, nil
}
