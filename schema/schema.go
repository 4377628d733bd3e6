// Package schema holds the JSON Schemas of the workspace's files (roro.json, app.json and
// values/<env>.json), embedded so `roro init` can write them beside a new workspace.
package schema

import "embed"

// Files are the schemas, by file name.
//
//go:embed *.schema.json
var Files embed.FS

// File names of the schemas.
const (
	Workspace = "workspace.schema.json"
	App       = "app.schema.json"
	Values    = "values.schema.json"
)
