package workspace

import (
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"strings"

	"github.com/rorokube/roro/schema"
)

// SchemaDir is where a workspace made by Scaffold keeps its JSON Schemas, so editors check
// its files offline and at the version of roro that made it.
const SchemaDir = ".roro/schema"

var nonName = regexp.MustCompile(`[^a-z0-9-]+`)

// NameFor turns a folder name into a workspace name: lower case, letters, digits and '-'.
func NameFor(folder string) string {
	n := strings.Trim(nonName.ReplaceAllString(strings.ToLower(folder), "-"), "-")
	if n == "" {
		return "workspace"
	}
	return n
}

// Scaffold returns the files of a new workspace named name, by slash-separated path: roro.json,
// one example app with a forward and per-environment values, the schemas, a .gitignore.
func Scaffold(name string) (map[string][]byte, error) {
	files := map[string][]byte{
		FileName: fmt.Appendf(nil, `{
  "$schema": "%s/workspace.schema.json",
  "name": %q,
  "members": ["apps/*"],
  "defaultEnvironment": "dev",
  "environments": {
    "dev": { "values": { "logLevel": "debug" } },
    "staging": { "values": { "logLevel": "info" } }
  }
}
`, SchemaDir, name),
		"apps/hello/" + AppFileName: fmt.Appendf(nil, `{
  "$schema": "../../%s/app.schema.json",
  "group": "examples",
  "engine": "go",
  "manifests": ["manifests/*.yaml"],
  "values": { "image": "nginx:1.27", "replicas": 1 },
  "forwards": [ { "target": "service/hello", "ports": ["8080:http"] } ]
}
`, SchemaDir),
		"apps/hello/values/staging.json": fmt.Appendf(nil, `{
  "$schema": "../../../%s/values.schema.json",
  "replicas": 2
}
`, SchemaDir),
		"apps/hello/manifests/hello.yaml": []byte(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: hello{{ .Instance.Suffix }}
spec:
  replicas: {{ .Values.replicas }}
  selector:
    matchLabels:
      app.kubernetes.io/name: hello{{ .Instance.Suffix }}
  template:
    metadata:
      labels:
        app.kubernetes.io/name: hello{{ .Instance.Suffix }}
    spec:
      containers:
      - name: web
        image: {{ .Values.image }}
        env:
        - name: LOG_LEVEL
          value: {{ .Values.logLevel | quote }}
        ports:
        - name: http
          containerPort: 80
---
apiVersion: v1
kind: Service
metadata:
  name: hello{{ .Instance.Suffix }}
spec:
  selector:
    app.kubernetes.io/name: hello{{ .Instance.Suffix }}
  ports:
  - name: http
    port: 80
    targetPort: http
`),
		".gitignore": []byte("# Exported env files hold secrets; roro never commits them.\n.env\n*.env\n"),
	}
	err := fs.WalkDir(schema.Files, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(schema.Files, p)
		if err != nil {
			return err
		}
		files[path.Join(SchemaDir, p)] = data
		return nil
	})
	return files, err
}
