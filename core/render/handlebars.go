package render

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"path"
	"strings"

	"github.com/mailgun/raymond/v2"
	"github.com/mailgun/raymond/v2/ast"
	"github.com/mailgun/raymond/v2/parser"

	"github.com/rorokube/roro/core/workspace"
)

// roots are the context's top-level names; a path that starts with one must resolve.
var roots = map[string]bool{"Values": true, "Env": true, "App": true, "Instance": true, "Environment": true, "Workspace": true}

// handlebarsHelpers are the helpers every handlebars template gets, beside the built-in
// if/unless/each/with/lookup.
var handlebarsHelpers = map[string]any{
	"quote": func(v any) raymond.SafeString { return raymond.SafeString(fmt.Sprintf("%q", str(v))) },
	"upper": func(v any) raymond.SafeString { return raymond.SafeString(strings.ToUpper(str(v))) },
	"lower": func(v any) raymond.SafeString { return raymond.SafeString(strings.ToLower(str(v))) },
	"b64enc": func(v any) raymond.SafeString {
		return raymond.SafeString(base64.StdEncoding.EncodeToString([]byte(str(v))))
	},
	"toJson": func(v any) raymond.SafeString {
		b, _ := json.Marshal(plain(v))
		return raymond.SafeString(b)
	},
	"toYaml": func(v any) raymond.SafeString {
		s, _ := toYAML(plain(v))
		return raymond.SafeString(s)
	},
	"indent": func(n int, v any) raymond.SafeString {
		pad := strings.Repeat(" ", n)
		return raymond.SafeString(pad + strings.ReplaceAll(str(v), "\n", "\n"+pad))
	},
	"default": func(def, v any) any {
		if v == nil || str(v) == "" {
			return def
		}
		return v
	},
}

func str(v any) string {
	if s, ok := v.(raymond.SafeString); ok {
		return string(s)
	}
	return fmt.Sprint(v)
}

// safe marks every string in v as a raymond.SafeString, so {{x}} prints it as is: manifests
// are YAML, not HTML, and must not get HTML entities.
func safe(v any) any {
	switch v := v.(type) {
	case string:
		return raymond.SafeString(v)
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			out[k] = safe(x)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = safe(x)
		}
		return out
	}
	return v
}

// plain undoes safe, for helpers that serialise values.
func plain(v any) any {
	switch v := v.(type) {
	case raymond.SafeString:
		return string(v)
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			out[k] = plain(x)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = plain(x)
		}
		return out
	}
	return v
}

// executeHandlebars renders with mailgun/raymond. Helper files (_name.ext) become partials,
// usable as {{> name}}. Output is not HTML-escaped: manifests are YAML, not HTML. A path
// that starts with a context root (Values.x, Env.X, …) and does not resolve is an error.
func executeHandlebars(files []File, data map[string]any, started func(string)) ([]Output, error) {
	ctx := safe(data)
	partials := map[string]string{}
	for _, f := range files {
		if f.Helper() {
			base := path.Base(f.Name)
			name := strings.TrimPrefix(strings.TrimSuffix(base, path.Ext(base)), "_")
			partials[name] = string(f.Source)
			partials[f.Name] = string(f.Source)
		}
	}
	var out []Output
	for _, f := range files {
		if f.Helper() {
			if _, err := parser.Parse(string(f.Source)); err != nil {
				return nil, handlebarsError(f.Name, err)
			}
			continue
		}
		started(f.Name)
		prog, err := parser.Parse(string(f.Source))
		if err != nil {
			return nil, handlebarsError(f.Name, err)
		}
		if err := checkPaths(f.Name, prog, data); err != nil {
			return nil, err
		}
		tpl, err := raymond.Parse(string(f.Source))
		if err != nil {
			return nil, handlebarsError(f.Name, err)
		}
		tpl.RegisterHelpers(handlebarsHelpers)
		tpl.RegisterPartials(partials)
		text, err := tpl.Exec(ctx)
		if err != nil {
			return nil, handlebarsError(f.Name, err)
		}
		if len(text) > MaxOutput {
			return nil, &TemplateError{File: f.Name, Msg: fmt.Sprintf("the output passed %d MiB: a template writes too much", MaxOutput>>20)}
		}
		out = append(out, Output{File: f.Name, Data: []byte(text)})
	}
	return out, nil
}

// checkPaths walks the template and reports the first path rooted at a context root that
// does not resolve in data.
func checkPaths(file string, prog *ast.Program, data map[string]any) error {
	guarded := map[string]int{} // paths an enclosing {{#if}} has tested
	scoped := 0                 // inside {{#each}} or {{#with}}, where names are the item's
	check := func(p *ast.PathExpression) error {
		for g, n := range guarded {
			if n > 0 && (p.Original == g || strings.HasPrefix(p.Original, g+".")) {
				return nil
			}
		}
		if err := checkRoot(file, p, scoped > 0); err != nil {
			return err
		}
		return checkPath(file, p, data)
	}
	var walk func(n ast.Node) error
	checkExpr := func(e *ast.Expression, conditional bool) error {
		if e == nil {
			return nil
		}
		// With params or a hash, the path names a helper; without, a bare helper name.
		helperCall := len(e.Params) > 0 || e.Hash != nil
		if p, ok := e.Path.(*ast.PathExpression); ok && !helperCall {
			if _, isHelper := handlebarsHelpers[p.Original]; !isHelper && !conditional {
				if err := check(p); err != nil {
					return err
				}
			}
		}
		for _, param := range e.Params {
			if _, ok := param.(*ast.PathExpression); ok && conditional {
				continue
			}
			if err := walk(param); err != nil {
				return err
			}
		}
		if e.Hash != nil {
			for _, pair := range e.Hash.Pairs {
				if err := walk(pair.Val); err != nil {
					return err
				}
			}
		}
		return nil
	}
	walk = func(n ast.Node) error {
		switch n := n.(type) {
		case *ast.Program:
			if n == nil {
				return nil
			}
			for _, s := range n.Body {
				if err := walk(s); err != nil {
					return err
				}
			}
		case *ast.MustacheStatement:
			return checkExpr(n.Expression, false)
		case *ast.BlockStatement:
			helper := ""
			if p, ok := n.Expression.Path.(*ast.PathExpression); ok {
				helper = p.Original
			}
			// {{#if X}} and {{#unless X}} exist to test whether X is set, and X may be used
			// in the branch where it is.
			conditional := helper == "if" || helper == "unless"
			if err := checkExpr(n.Expression, conditional); err != nil {
				return err
			}
			var tested string
			if conditional && len(n.Expression.Params) == 1 {
				if p, ok := n.Expression.Params[0].(*ast.PathExpression); ok {
					tested = p.Original
				}
			}
			setBranch, unsetBranch := n.Program, n.Inverse
			if helper == "unless" {
				setBranch, unsetBranch = n.Inverse, n.Program
			}
			if setBranch != nil {
				if tested != "" {
					guarded[tested]++
				}
				if helper == "each" || helper == "with" {
					scoped++
				}
				err := walk(setBranch)
				if helper == "each" || helper == "with" {
					scoped--
				}
				if tested != "" {
					guarded[tested]--
				}
				if err != nil {
					return err
				}
			}
			if unsetBranch != nil {
				return walk(unsetBranch)
			}
		case *ast.SubExpression:
			return checkExpr(n.Expression, false)
		case *ast.PathExpression:
			return check(n)
		}
		return nil
	}
	return walk(prog)
}

// rootNames are the context's roots, for suggestions.
var rootNames = []string{"App", "Env", "Environment", "Instance", "Values", "Workspace"}

// checkRoot refuses a name that is no root of the context ({{Valuse.image}}): at the top of a
// template every name is a root or a helper; inside {{#each}} and {{#with}} names are the
// item's, and only a likely typo of a root is refused.
func checkRoot(file string, p *ast.PathExpression, scoped bool) error {
	if p.Data || p.Depth > 0 || len(p.Parts) == 0 || roots[p.Parts[0]] || p.Parts[0] == "this" {
		return nil
	}
	first := p.Parts[0]
	if _, helper := handlebarsHelpers[first]; helper {
		return nil
	}
	hint := workspace.Suggest(first, rootNames)
	if scoped && hint == "" {
		return nil
	}
	return &TemplateError{File: file, Line: p.Line,
		Msg: fmt.Sprintf("{{%s}}: %q is not a value of the template%s; the roots are %s", p.Original, first, hint, strings.Join(rootNames, ", "))}
}

func checkPath(file string, p *ast.PathExpression, data map[string]any) error {
	parts := p.Parts
	if p.Data {
		if len(parts) == 0 || parts[0] != "root" {
			return nil // @index, @key, …
		}
		parts = parts[1:]
	} else if p.Depth > 0 {
		return nil
	}
	if len(parts) == 0 || !roots[parts[0]] {
		return nil
	}
	var cur any = data
	for i, part := range parts {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil // lists and scalars are indexed at run time; leave them be
		}
		v, found := m[part]
		if !found {
			return &TemplateError{File: file, Line: p.Line,
				Msg: fmt.Sprintf("value {{%s}} is missing (no key %q in %s): %s", p.Original, part, strings.Join(parts[:i], "."), missingValueHint)}
		}
		cur = v
	}
	return nil
}

// handlebarsError turns raymond's "Parse error on line N:\nDETAIL" into one located line.
func handlebarsError(file string, err error) error {
	e := errorAt(file, err.Error())
	if _, detail, ok := strings.Cut(e.Msg, "\n"); ok {
		e.Msg = "syntax error: " + strings.Join(strings.Fields(detail), " ")
	}
	return e
}
