package workspace

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/rorokube/roro/schema"
)

func compileSchema(t *testing.T, name string) *jsonschema.Schema {
	t.Helper()
	data, err := fs.ReadFile(schema.Files, name)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource(name, doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile(name)
	if err != nil {
		t.Fatalf("compile %s: %v", name, err)
	}
	return sch
}

func validateFile(t *testing.T, sch *jsonschema.Schema, path string, data []byte) {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if err := sch.Validate(doc); err != nil {
		t.Errorf("%s does not match its schema: %v", path, err)
	}
}

// TestSchemasAcceptTheFixturesAndScaffold checks the shipped schemas against the files roro
// itself ships and writes, and that each file references its schema.
func TestSchemasAcceptTheFixturesAndScaffold(t *testing.T) {
	schemas := map[string]*jsonschema.Schema{
		schema.Workspace: compileSchema(t, schema.Workspace),
		schema.App:       compileSchema(t, schema.App),
		schema.Values:    compileSchema(t, schema.Values),
	}
	kindOf := func(p string) string {
		switch {
		case filepath.Base(p) == FileName:
			return schema.Workspace
		case filepath.Base(p) == AppFileName:
			return schema.App
		}
		return schema.Values
	}
	demo := filepath.Join("..", "..", "fixtures", "demo")
	paths, _ := filepath.Glob(filepath.Join(demo, "apps", "*", "*.json"))
	more, _ := filepath.Glob(filepath.Join(demo, "apps", "*", "values", "*.json"))
	paths = append(append(paths, filepath.Join(demo, FileName)), more...)
	if len(paths) < 5 {
		t.Fatalf("found only %v", paths)
	}
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		validateFile(t, schemas[kindOf(p)], p, data)
		var head struct {
			Schema string `json:"$schema"`
		}
		_ = json.Unmarshal(data, &head)
		ref := filepath.Join(filepath.Dir(p), head.Schema)
		if filepath.Base(ref) != kindOf(p) {
			t.Errorf("%s: $schema %q, want a path to %s", p, head.Schema, kindOf(p))
		} else if _, err := os.Stat(ref); err != nil {
			t.Errorf("%s: $schema %q does not resolve: %v", p, head.Schema, err)
		}
	}
	files, err := Scaffold("new")
	if err != nil {
		t.Fatal(err)
	}
	for p, data := range files {
		if strings.HasSuffix(p, ".json") && !strings.HasPrefix(p, SchemaDir) {
			validateFile(t, schemas[kindOf(p)], p, data)
		}
	}
}

// TestSchemasRejectWhatTheLoaderRejects spot-checks that the schema and the loader agree on
// unknown fields and enums.
func TestSchemasRejectWhatTheLoaderRejects(t *testing.T) {
	app := compileSchema(t, schema.App)
	for _, bad := range []string{
		`{"manifests": ["m.yaml"], "manifest": []}`,
		`{"manifests": ["m.yaml"], "engine": "erb"}`,
		`{"manifests": ["m.yaml"], "instances": {"default": {}}}`,
		`{"manifests": ["m.yaml"], "instances": {"x": {"suffix": "-a", "namespace": "b"}}}`,
		`{"manifests": ["m.yaml"], "env": [{"name": "A", "value": "1", "fromHost": "B"}]}`,
		`{"manifests": ["m.yaml"], "forwards": [{"target": "ingress/x", "ports": ["80"]}]}`,
	} {
		doc, _ := jsonschema.UnmarshalJSON(strings.NewReader(bad))
		if err := app.Validate(doc); err == nil {
			t.Errorf("schema accepts %s", bad)
		}
	}
}

// TestSchemasKnowEveryField keeps the schemas and the Go types in step: every JSON field of
// the types is a property in the schema, and the reverse.
func TestSchemasKnowEveryField(t *testing.T) {
	for _, tc := range []struct {
		schema string
		v      any
	}{{schema.Workspace, File{}}, {schema.App, AppFile{}}} {
		data, _ := fs.ReadFile(schema.Files, tc.schema)
		var doc any
		if err := json.Unmarshal(data, &doc); err != nil {
			t.Fatal(err)
		}
		props := map[string]bool{}
		var walk func(v any)
		walk = func(v any) {
			switch v := v.(type) {
			case map[string]any:
				if p, ok := v["properties"].(map[string]any); ok {
					for k := range p {
						props[k] = true
					}
				}
				for _, x := range v {
					walk(x)
				}
			case []any:
				for _, x := range v {
					walk(x)
				}
			}
		}
		walk(doc)
		fields := knownFields(tc.v)
		for _, f := range fields {
			if !props[f] {
				t.Errorf("%s lacks field %q of the Go type", tc.schema, f)
			}
		}
		for p := range props {
			if !slices.Contains(fields, p) {
				t.Errorf("%s has property %q the Go type does not", tc.schema, p)
			}
		}
	}
}
