package render

import (
	"encoding/json"
	"errors"
	"testing"
)

// fuzzTemplates is one small app per engine that reads values of several shapes.
var fuzzTemplates = map[string]string{
	EngineGo: `apiVersion: v1
kind: ConfigMap
metadata:
  name: app{{ .Instance.Suffix }}
data:
  name: {{ .Values.name | quote }}
  replicas: "{{ .Values.replicas }}"
  tags: {{ .Values.tags | toJson | quote }}
{{- range $k, $v := .Values.extra }}
  {{ $k | quote }}: {{ $v | toString | quote }}
{{- end }}
`,
	EngineHandlebars: `apiVersion: v1
kind: ConfigMap
metadata:
  name: app{{Instance.Suffix}}
data:
  name: {{quote Values.name}}
  replicas: "{{Values.replicas}}"
  tags: {{quote (toJson Values.tags)}}
{{#each Values.extra}}
  {{quote @key}}: {{quote this}}
{{/each}}
`,
	EngineJinja: `apiVersion: v1
kind: ConfigMap
metadata:
  name: app{{ Instance.Suffix }}
data:
  name: {{ Values.name | tojson }}
  replicas: "{{ Values.replicas }}"
  tags: {{ Values.tags | tojson | tojson }}
{%- for k, v in Values.extra.items() %}
  {{ k | tojson }}: {{ v | string | tojson }}
{%- endfor %}
`,
}

// FuzzRender renders with arbitrary values (any JSON object) on every engine. It must never
// panic; it either yields checked objects or an error that names the file.
func FuzzRender(f *testing.F) {
	f.Add([]byte(`{"name": "web", "replicas": 2, "tags": ["a", "b"], "extra": {"k": "v"}}`))
	f.Add([]byte(`{"name": "a\"b: c\n- d", "replicas": null, "tags": {}, "extra": {"": 1}}`))
	f.Add([]byte(`{"name": "{{ .Values.name }}", "replicas": "x", "tags": [], "extra": []}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, valuesJSON []byte) {
		var values map[string]any
		if err := json.Unmarshal(valuesJSON, &values); err != nil {
			return
		}
		for _, engine := range Engines {
			ctx := &Context{Values: values, Instance: InstanceInfo{Name: "default", Namespace: "ns"}, Env: map[string]string{}}
			out, err := Execute(engine, []File{{Name: "app.yaml", Source: []byte(fuzzTemplates[engine])}}, ctx)
			if err != nil {
				var te *TemplateError
				if !errors.As(err, &te) || te.File != "app.yaml" {
					t.Fatalf("%s: error without the file: %v", engine, err)
				}
				continue
			}
			objs, err := Decode(out[0])
			if err != nil {
				var oe *ObjectError
				if !errors.As(err, &oe) || oe.File != "app.yaml" || oe.Document < 1 {
					t.Fatalf("%s: decode error without its place: %v", engine, err)
				}
				continue
			}
			for _, o := range objs {
				if o.GetKind() == "" || o.GetName() == "" {
					t.Fatalf("%s: object without kind or name passed the checks: %v", engine, o.Object)
				}
			}
		}
	})
}
