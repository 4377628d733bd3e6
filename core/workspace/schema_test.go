package workspace

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/rorokube/roro/internal/testfs"
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

// TestSchemaAndLoaderAgree runs every case through both the JSON Schema that editors use and
// the loader (Load on a workspace holding it): both accept it or both refuse it, and the
// loader's refusal names the file with a line and column, or the field (issue 13, item 8).
func TestSchemaAndLoaderAgree(t *testing.T) {
	app := compileSchema(t, schema.App)
	ws := compileSchema(t, schema.Workspace)
	const m = `"manifests": ["m.yaml"]`
	for _, tc := range []struct {
		file, doc string
		ok        bool
	}{
		{AppFileName, `{` + m + `}`, true},
		{AppFileName, `{` + m + `, "manifest": []}`, false},
		{AppFileName, `{` + m + `, "Manifests": []}`, false},
		{AppFileName, `{` + m + `, "engine": "erb"}`, false},
		{AppFileName, `{` + m + `, "engine": "jinja"}`, true},
		{AppFileName, `{` + m + `, "namespace": "Bad_NS"}`, false},
		{AppFileName, `{` + m + `, "instances": {"default": {}}}`, false},
		{AppFileName, `{` + m + `, "instances": {"x": {"suffix": "-a", "namespace": "b"}}}`, false},
		{AppFileName, `{` + m + `, "instances": {"pr-1": {"namespace": "pr-1"}}}`, true},
		{AppFileName, `{` + m + `, "env": [{"name": "A", "value": "1", "fromHost": "B"}]}`, false},
		{AppFileName, `{` + m + `, "env": [{"name": "A", "value": "1"}]}`, true},
		{AppFileName, `{` + m + `, "forwards": [{"target": "ingress/x", "ports": ["80"]}]}`, false},
		{AppFileName, `{` + m + `, "forwards": [{"target": "service/x", "ports": ["x:80"]}]}`, false},
		{AppFileName, `{` + m + `, "forwards": [{"target": "service/x", "ports": []}]}`, false},
		{AppFileName, `{` + m + `, "forwards": [{"target": "service/x", "ports": ["80"], "hold": "5 minutes"}]}`, false},
		{AppFileName, `{` + m + `, "forwards": [{"target": "sts/x", "ports": ["8080:http", "0:80", "9090"], "hold": "30s"}]}`, true},
		{AppFileName, `{` + m + `, "dependsOn": ["Web"]}`, false},
		{FileName, `{"name": "w", "members": ["apps/*"]}`, true},
		{FileName, `{"name": "w", "Members": ["apps/*"]}`, false},
		{FileName, `{"name": "w", "members": ["apps/*"], "sync": {"interval": "often"}}`, false},
		{FileName, `{"name": "w", "members": ["apps/*"], "sync": {"interval": "-5m"}}`, false},
		{FileName, `{"name": "w", "members": ["apps/*"], "sync": {"interval": "1h30m"}}`, true},
		{FileName, `{"name": "w", "members": ["apps/*"], "sync": {"interval": "0"}}`, true},
		{FileName, `{"name": "My Workspace!", "members": ["apps/*"]}`, true}, // a name is free text
		{FileName, `{"name": "", "members": ["apps/*"]}`, false},
	} {
		t.Run(tc.doc, func(t *testing.T) {
			sch, files := ws, map[string]string{
				FileName: `{"name": "w", "members": ["apps/*"]}`, "apps/a/" + AppFileName: `{` + m + `}`, "apps/a/m.yaml": "kind: ConfigMap\n",
			}
			if tc.file == FileName {
				files[FileName] = tc.doc
			} else {
				sch, files["apps/a/"+AppFileName] = app, tc.doc
			}
			doc, err := jsonschema.UnmarshalJSON(strings.NewReader(tc.doc))
			if err != nil {
				t.Fatal(err)
			}
			schemaErr := sch.Validate(doc)
			_, loadErr := Load(testfs.Layout(t, files))
			if (schemaErr == nil) != tc.ok || (loadErr == nil) != tc.ok {
				t.Fatalf("want ok=%v; the schema says %v; the loader says %v", tc.ok, schemaErr, loadErr)
			}
			if loadErr != nil && !regexp.MustCompile(regexp.QuoteMeta(tc.file)+`(:\d+:\d+)?: `).MatchString(loadErr.Error()) {
				t.Errorf("the loader's refusal does not name its place: %v", loadErr)
			}
		})
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
