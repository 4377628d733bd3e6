package workspace

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/util/jsonpath"
)

// suffixRe is what an instance's name suffix may hold; its length is checked on the names
// it makes.
var suffixRe = regexp.MustCompile(`^[-a-z0-9]+$`)

// DefaultInstance names an app's default instance.
const DefaultInstance = "default"

func loadApp(ws *Workspace, dir string) (*App, []error) {
	path := filepath.Join(dir, AppFileName)
	app := &App{Dir: dir, Name: filepath.Base(dir)}
	if err := ws.decodeFile(path, &app.File); err != nil {
		return nil, []error{err}
	}
	if app.File.Name != "" {
		app.Name = app.File.Name
	}
	var errs []error
	fail := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{path}, args...)...))
	}
	if msgs := validation.IsDNS1123Label(app.Name); len(msgs) > 0 {
		fail("app name %q is not a valid Kubernetes name: %s", app.Name, strings.Join(msgs, "; "))
	}
	if ns := app.File.Namespace; ns != "" {
		if msgs := validation.IsDNS1123Label(ns); len(msgs) > 0 {
			fail("namespace %q is not a valid namespace name: %s", ns, strings.Join(msgs, "; "))
		}
	}
	switch app.File.Engine {
	case "", "go", "handlebars", "jinja":
	default:
		fail("engine %q is unknown: use \"go\", \"handlebars\" or \"jinja\"%s", app.File.Engine,
			suggest(app.File.Engine, []string{"go", "handlebars", "jinja"}))
	}
	manifests, err := matchManifests(dir, app.File.Manifests)
	if err != nil {
		errs = append(errs, fmt.Errorf("%s: %w", path, err))
	}
	app.Manifests = manifests
	for _, name := range app.InstanceNames() {
		inst := app.File.Instances[name]
		where := fmt.Sprintf("instances.%s", name)
		if name == DefaultInstance {
			fail("%s: %q names the default instance; choose another name", where, name)
		} else if msgs := validation.IsDNS1123Label(name); len(msgs) > 0 {
			fail("%s: %q is not a valid instance name: %s", where, name, strings.Join(msgs, "; "))
		}
		if inst.Environment != "" {
			if _, ok := ws.File.Environments[inst.Environment]; !ok {
				fail("%s.environment: %q is not an environment of the workspace (have %s)%s", where,
					inst.Environment, strings.Join(ws.EnvironmentNames(), ", "), suggest(inst.Environment, ws.EnvironmentNames()))
			}
		}
		if inst.Suffix != "" && inst.Namespace != "" {
			fail("%s: give either \"suffix\" (share the app's namespace) or \"namespace\", not both", where)
		}
		if inst.Suffix != "" {
			if !suffixRe.MatchString(inst.Suffix) {
				fail("%s.suffix: %q may hold only lower-case letters, digits and '-'", where, inst.Suffix)
			}
		}
		if inst.Namespace != "" {
			if msgs := validation.IsDNS1123Label(inst.Namespace); len(msgs) > 0 {
				fail("%s.namespace: %q is not a valid namespace name: %s", where, inst.Namespace, strings.Join(msgs, "; "))
			}
		}
	}
	for i, fw := range app.File.Forwards {
		if _, err := fw.HoldDuration(); err != nil {
			fail("forwards[%d].hold: %v", i, err)
		}
		if fw.Address != "" && fw.Address != "localhost" && net.ParseIP(fw.Address) == nil {
			fail("forwards[%d].address: %q is not an IP address (or localhost), such as \"127.0.0.1\"", i, fw.Address)
		}
	}
	for i, src := range app.File.Env {
		errs = append(errs, checkEnvSource(path, i, src)...)
	}
	app.EnvValues, err = loadEnvValues(ws, dir)
	if err != nil {
		errs = append(errs, err)
	}
	return app, errs
}

func checkEnvSource(path string, i int, src EnvSource) []error {
	where := fmt.Sprintf("%s: env[%d]", path, i)
	var errs []error
	if src.Name == "" {
		errs = append(errs, fmt.Errorf("%s: \"name\" is required", where))
	} else if msgs := validation.IsEnvVarName(src.Name); len(msgs) > 0 {
		errs = append(errs, fmt.Errorf("%s (%s): not a valid variable name: %s", where, src.Name, strings.Join(msgs, "; ")))
	}
	n := 0
	if src.Value != nil {
		n++
	}
	if src.FromHost != "" {
		n++
	}
	if src.FromObject != nil {
		n++
		o := src.FromObject
		if o.APIVersion == "" || o.Kind == "" || o.Name == "" || o.JSONPath == "" {
			errs = append(errs, fmt.Errorf("%s (%s): fromObject needs apiVersion, kind, name and jsonPath", where, src.Name))
		} else if err := jsonpath.New(src.Name).Parse(o.JSONPath); err != nil {
			errs = append(errs, fmt.Errorf("%s (%s): fromObject.jsonPath %q is not a JSONPath expression: %v (kubectl's syntax, such as {.spec.host})", where, src.Name, o.JSONPath, err))
		}
	}
	if n != 1 {
		errs = append(errs, fmt.Errorf("%s (%s): give exactly one of \"value\", \"fromHost\" and \"fromObject\"", where, src.Name))
	}
	return errs
}

// matchManifests expands the manifest globs of the app in dir. Each glob must match at least
// one file, and no match may leave the app folder, through ".." or a symbolic link.
func matchManifests(dir string, globs []string) ([]string, error) {
	if len(globs) == 0 {
		return nil, errors.New(`"manifests" is empty: list the app's templates, for example ["manifests/*.yaml"]`)
	}
	realDir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return nil, err
	}
	// A match is inside the app when its real folder is and it is not a link out; the real
	// folder is worked out once per folder.
	realDirs := map[string]string{}
	var out []string
	for _, g := range globs {
		if filepath.IsAbs(g) || slices.Contains(strings.Split(filepath.ToSlash(g), "/"), "..") {
			return nil, fmt.Errorf("manifests: %q leaves the app folder: use a path inside it, such as \"manifests/*.yaml\"", g)
		}
		matches, err := filepath.Glob(filepath.Join(dir, g))
		if err != nil {
			return nil, fmt.Errorf("manifests: %q: %w", g, err)
		}
		n := 0
		for _, m := range matches {
			info, err := os.Stat(m)
			if err != nil || info.IsDir() {
				continue
			}
			if !info.Mode().IsRegular() {
				return nil, fmt.Errorf("manifests: %s is not a regular file (%s): roro reads only regular files", m, kindOf(info.Mode()))
			}
			real, err := realPath(m, realDirs)
			if err != nil {
				return nil, fmt.Errorf("manifests: %s: %w", m, err)
			}
			if rel, err := filepath.Rel(realDir, real); err != nil || strings.HasPrefix(rel, "..") {
				return nil, fmt.Errorf("manifests: %s is a link to %s, outside the app folder: copy the file in instead", m, real)
			}
			rel, _ := filepath.Rel(dir, m)
			out = append(out, filepath.ToSlash(rel))
			n++
		}
		if n == 0 {
			return nil, fmt.Errorf("manifests: %q matches no file in %s", g, dir)
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// realPath resolves the symbolic links of path, remembering each folder's real path in dirs.
func realPath(path string, dirs map[string]string) (string, error) {
	info, err := os.Lstat(path)
	if err != nil {
		return "", err
	}
	if info.Mode()&os.ModeSymlink != 0 {
		return filepath.EvalSymlinks(path)
	}
	dir := filepath.Dir(path)
	real, ok := dirs[dir]
	if !ok {
		if real, err = filepath.EvalSymlinks(dir); err != nil {
			return "", err
		}
		dirs[dir] = real
	}
	return filepath.Join(real, filepath.Base(path)), nil
}

// loadEnvValues reads values/<env>.json for every file there; each must name an environment.
func loadEnvValues(ws *Workspace, dir string) (map[string]map[string]any, error) {
	entries, err := os.ReadDir(filepath.Join(dir, "values"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	out := map[string]map[string]any{}
	var errs []error
	for _, e := range entries {
		if e.IsDir() || filepath.Ext(e.Name()) != ".json" {
			continue
		}
		env := strings.TrimSuffix(e.Name(), ".json")
		path := filepath.Join(dir, "values", e.Name())
		if _, ok := ws.File.Environments[env]; !ok {
			errs = append(errs, fmt.Errorf("%s: %q is not an environment of the workspace (have %s)%s; rename the file",
				path, env, strings.Join(ws.EnvironmentNames(), ", "), suggest(env, ws.EnvironmentNames())))
			continue
		}
		var values map[string]any
		if err := ws.decodeFile(path, &values); err != nil {
			errs = append(errs, err)
			continue
		}
		delete(values, "$schema")
		out[env] = values
	}
	return out, errors.Join(errs...)
}

// checkCycles reports a dependsOn cycle, printing it as a → b → a.
func checkCycles(ws *Workspace) error {
	const (
		unvisited = iota
		active
		done
	)
	state := map[string]int{}
	var stack []string
	var visit func(name string) error
	visit = func(name string) error {
		switch state[name] {
		case active:
			i := slices.Index(stack, name)
			cycle := append(slices.Clone(stack[i:]), name)
			return fmt.Errorf("dependsOn has a cycle: %s; remove one of these dependencies", strings.Join(cycle, " → "))
		case done:
			return nil
		}
		state[name] = active
		stack = append(stack, name)
		if app := ws.App(name); app != nil {
			for _, dep := range app.File.DependsOn {
				if err := visit(dep); err != nil {
					return err
				}
			}
		}
		stack = stack[:len(stack)-1]
		state[name] = done
		return nil
	}
	for _, app := range ws.Apps {
		if err := visit(app.Name); err != nil {
			return fmt.Errorf("%s: %w", filepath.Join(app.Dir, AppFileName), err)
		}
	}
	return nil
}
