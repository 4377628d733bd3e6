// Package render turns an app's templates into Kubernetes objects: three template engines
// (go, handlebars, jinja) over one shared context, layered values, instances, and the labels
// every object roro applies carries. It reads files and does no network I/O.
package render

// Context is what every engine sees, under the same names in all three: .Values, .Env, .App,
// .Instance, .Environment and .Workspace.
type Context struct {
	Values      map[string]any
	Env         map[string]string
	App         AppInfo
	Instance    InstanceInfo
	Environment EnvironmentInfo
	Workspace   WorkspaceInfo
}

// AppInfo describes the app being rendered.
type AppInfo struct {
	Name      string
	Namespace string
	Group     string
}

// InstanceInfo describes the instance being rendered: "default" or a named further instance.
type InstanceInfo struct {
	Name      string
	Suffix    string
	Namespace string
}

// EnvironmentInfo describes the environment being rendered.
type EnvironmentInfo struct {
	Name    string
	Context string
}

// WorkspaceInfo describes the workspace.
type WorkspaceInfo struct {
	Name string
}

// data is the context as plain maps, the one form all three engines read alike.
func (c *Context) data() map[string]any {
	env := make(map[string]any, len(c.Env))
	for k, v := range c.Env {
		env[k] = v
	}
	values := c.Values
	if values == nil {
		values = map[string]any{}
	}
	return map[string]any{
		"Values": values,
		"Env":    env,
		"App":    map[string]any{"Name": c.App.Name, "Namespace": c.App.Namespace, "Group": c.App.Group},
		"Instance": map[string]any{
			"Name": c.Instance.Name, "Suffix": c.Instance.Suffix, "Namespace": c.Instance.Namespace,
		},
		"Environment": map[string]any{"Name": c.Environment.Name, "Context": c.Environment.Context},
		"Workspace":   map[string]any{"Name": c.Workspace.Name},
	}
}
