// Package render turns an app's templates into Kubernetes objects: the three template
// engines (go, handlebars, jinja), layered values, instances and the labels every object
// roro applies carries. It does no network I/O.
package render
