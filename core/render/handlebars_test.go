package render

import (
	"strings"
	"testing"
)

// TestHandlebarsStrictPaths checks which paths must resolve: those rooted at the context,
// except where an enclosing {{#if}} or {{#unless}} has tested them.
func TestHandlebarsStrictPaths(t *testing.T) {
	ctx := &Context{Values: map[string]any{"set": "yes", "items": []any{map[string]any{"n": "a"}}}}
	tests := []struct {
		src     string
		want    string // output, or the error's substring when wantErr
		wantErr bool
	}{
		{`{{Values.set}}`, "yes", false},
		{`{{Values.nope}}`, `value {{Values.nope}} is missing`, true},
		{`{{#if Values.tag}}{{Values.tag}}{{else}}latest{{/if}}`, "latest", false},
		{`{{#unless Values.tag}}none{{else}}{{Values.tag}}{{/unless}}`, "none", false},
		{`{{#if Values.tag}}ok{{else}}{{Values.tag}}{{/if}}`, `value {{Values.tag}} is missing`, true},
		{`{{#each Values.items}}{{n}}{{/each}}`, "a", false},
		{`{{quote Values.nope}}`, `value {{Values.nope}} is missing`, true},
		{`{{@root.Values.set}}`, "yes", false},
		{`{{@root.Values.nope}}`, `is missing`, true},
	}
	for _, tt := range tests {
		out, err := Execute(EngineHandlebars, []File{{Name: "a.yaml", Source: []byte(tt.src)}}, ctx)
		switch {
		case tt.wantErr && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%s: error %v, want one containing %q", tt.src, err, tt.want)
		case !tt.wantErr && err != nil:
			t.Errorf("%s: %v", tt.src, err)
		case !tt.wantErr && string(out[0].Data) != tt.want:
			t.Errorf("%s = %q, want %q", tt.src, out[0].Data, tt.want)
		}
	}
}

// TestHandlebarsUnknownNames: a typo of a root is an error with the fix, at the top of a
// template and inside {{#each}} and {{#with}}; an item's own fields inside them are fine.
func TestHandlebarsUnknownNames(t *testing.T) {
	ctx := &Context{Values: map[string]any{"image": "x", "ports": []any{map[string]any{"name": "http"}}}}
	for _, tt := range []struct {
		src, want string
	}{
		{"image: {{Valuse.image}}\n", `"Valuse" is not a value of the template (did you mean "Values"?)`},
		{"image: {{image}}\n", `"image" is not a value of the template; the roots are App, Env`},
		{"{{#each Values.ports}}- {{Valuse.image}}\n{{/each}}", `(did you mean "Values"?)`},
		{"{{#with Values}}- {{Vaules.image}}\n{{/with}}", `(did you mean "Values"?)`},
		{"{{#each Values.ports}}- {{name}}\n{{/each}}", ""},
	} {
		_, err := Execute("handlebars", []File{{Name: "m.yaml", Source: []byte(tt.src)}}, ctx)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%q: %v", tt.src, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "m.yaml:")):
			t.Errorf("%q: error %v, want %q with its location", tt.src, err, tt.want)
		}
	}
}
