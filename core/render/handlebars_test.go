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
