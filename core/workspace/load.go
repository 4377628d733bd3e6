package workspace

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"
)

// Find walks up from dir to the first folder holding roro.json and returns that folder.
func Find(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for d := abs; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, FileName)); err == nil {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no %s in %s or any parent folder: run `roro init` or pass --workspace", FileName, abs)
		}
	}
}

// Load reads and checks the workspace rooted at dir. Every problem found is returned,
// joined, so a user fixes them all in one pass.
func Load(dir string) (*Workspace, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	ws := &Workspace{Dir: abs}
	path := filepath.Join(abs, FileName)
	if err := ws.decodeFile(path, &ws.File); err != nil {
		return nil, err
	}
	var errs []error
	if ws.File.Name == "" {
		errs = append(errs, fmt.Errorf("%s: field \"name\" is required: name the workspace", path))
	}
	for _, env := range ws.EnvironmentNames() {
		// Environment names become label values on what roro applies.
		if msgs := validation.IsDNS1123Label(env); len(msgs) > 0 {
			errs = append(errs, fmt.Errorf("%s: environment %q is not a valid name (%s): use lower-case letters, digits and '-'",
				path, env, strings.Join(msgs, "; ")))
		}
	}
	if ws.File.DefaultEnvironment != "" {
		if _, ok := ws.File.Environments[ws.File.DefaultEnvironment]; !ok {
			errs = append(errs, fmt.Errorf("%s: defaultEnvironment %q is not in \"environments\" (have %s)",
				path, ws.File.DefaultEnvironment, strings.Join(ws.EnvironmentNames(), ", ")))
		}
	}
	if _, err := ws.SyncInterval(); err != nil {
		errs = append(errs, fmt.Errorf("%s: %w", path, err))
	}
	dirs, err := memberDirs(abs, ws.File.Members)
	if err != nil {
		errs = append(errs, fmt.Errorf("%s: %w", path, err))
	}
	seen := map[string]string{}
	for _, d := range dirs {
		app, appErrs := loadApp(ws, d)
		errs = append(errs, appErrs...)
		if app == nil {
			continue
		}
		if other, dup := seen[app.Name]; dup {
			errs = append(errs, fmt.Errorf("%s: app name %q is already used by %s: rename one of them",
				filepath.Join(d, AppFileName), app.Name, filepath.Join(other, AppFileName)))
			continue
		}
		seen[app.Name] = d
		ws.Apps = append(ws.Apps, app)
	}
	for _, app := range ws.Apps {
		for _, dep := range app.File.DependsOn {
			if _, ok := seen[dep]; !ok {
				errs = append(errs, fmt.Errorf("%s: dependsOn names %q, which is not an app of this workspace%s",
					filepath.Join(app.Dir, AppFileName), dep, suggest(dep, ws.AppNames())))
			}
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if err := checkCycles(ws); err != nil {
		return nil, err
	}
	// What the loader accepts must also match the schemas editors check the files with
	// (field names' case, for one); its own messages, above, say more where both apply.
	for _, f := range ws.read {
		errs = append(errs, checkSchema(f.path, f.data, f.v))
	}
	ws.read = nil
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return ws, nil
}

// DefaultSyncInterval is how often Roro syncs in the background when roro.json's
// sync.interval does not say.
const DefaultSyncInterval = 5 * time.Minute

// SyncInterval is the time between background syncs (0: only on demand).
func (w *Workspace) SyncInterval() (time.Duration, error) {
	if w.File.Sync == nil || w.File.Sync.Interval == "" {
		return DefaultSyncInterval, nil
	}
	d, err := time.ParseDuration(w.File.Sync.Interval)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("sync.interval %q is not a duration: write it as 5m, 30s or 1h (0: only on demand)", w.File.Sync.Interval)
	}
	return d, nil
}

// App returns the app with the given name, or nil.
func (w *Workspace) App(name string) *App {
	for _, a := range w.Apps {
		if a.Name == name {
			return a
		}
	}
	return nil
}

// Lookup returns the app with the given name, or an error that lists the apps there are.
func (w *Workspace) Lookup(name string) (*App, error) {
	if a := w.App(name); a != nil {
		return a, nil
	}
	return nil, fmt.Errorf("no app %q in workspace %s (apps: %s)", name, w.File.Name, strings.Join(w.AppNames(), ", "))
}

// AppNames lists the apps' names in workspace order.
func (w *Workspace) AppNames() []string {
	names := make([]string, len(w.Apps))
	for i, a := range w.Apps {
		names[i] = a.Name
	}
	return names
}

// EnvironmentNames lists the workspace's environments in sorted order.
func (w *Workspace) EnvironmentNames() []string {
	names := make([]string, 0, len(w.File.Environments))
	for n := range w.File.Environments {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// memberDirs expands the member globs into the sorted, de-duplicated folders that hold an
// app.json.
func memberDirs(root string, globs []string) ([]string, error) {
	if len(globs) == 0 {
		return nil, errors.New(`field "members" is empty: list the app folders, for example ["apps/*"]`)
	}
	set := map[string]bool{}
	for _, g := range globs {
		if filepath.IsAbs(g) || strings.HasPrefix(filepath.Clean(g), "..") {
			return nil, fmt.Errorf("member %q leaves the workspace: use a path relative to it", g)
		}
		matches, err := filepath.Glob(filepath.Join(root, g))
		if err != nil {
			return nil, fmt.Errorf("member %q: %w", g, err)
		}
		n := 0
		for _, m := range matches {
			if _, err := os.Lstat(filepath.Join(m, AppFileName)); err == nil {
				set[m] = true
				n++
			}
		}
		if n == 0 {
			return nil, fmt.Errorf("member %q matches no app folder (a folder holding %s) in %s: fix the glob, or add an app", g, AppFileName, root)
		}
	}
	dirs := make([]string, 0, len(set))
	for d := range set {
		dirs = append(dirs, d)
	}
	sort.Strings(dirs)
	return dirs, nil
}

// decodeFile reads one JSON file of the workspace strictly (see ReadFile): unknown fields,
// wrong types and keys given twice are errors that name the file, line and column. The
// file is kept for the schema check at the end of the load.
func (w *Workspace) decodeFile(path string, v any) error {
	data, err := ReadFile(w.Dir, path)
	if err != nil {
		return err
	}
	if err := decode(path, data, v); err != nil {
		return err
	}
	w.read = append(w.read, readFile{path: path, data: data, v: v})
	return nil
}

// decode is decodeFile on data already read.
func decode(path string, data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		offset := dec.InputOffset()
		var syn *json.SyntaxError
		var typ *json.UnmarshalTypeError
		switch {
		case errors.As(err, &syn):
			offset = syn.Offset
		case errors.As(err, &typ):
			offset = typ.Offset
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			// The decoder stops after the field's value; point at its key instead.
			key := strings.TrimPrefix(err.Error(), "json: unknown field ")
			if i := bytes.LastIndex(data[:offset], []byte(key)); i >= 0 {
				offset = int64(i)
			}
		}
		line, col := position(data, offset)
		msg := strings.TrimPrefix(err.Error(), "json: ")
		if field, ok := strings.CutPrefix(msg, "unknown field "); ok {
			msg += suggest(strings.Trim(field, `"`), knownFields(v))
		}
		return fmt.Errorf("%s:%d:%d: %s", path, line, col, msg)
	}
	if dec.More() {
		line, col := position(data, dec.InputOffset())
		return fmt.Errorf("%s:%d:%d: unexpected data after the JSON object", path, line, col)
	}
	return checkKeys(path, data)
}

// position turns a byte offset into a 1-based line and column.
func position(data []byte, offset int64) (line, col int) {
	if offset > int64(len(data)) {
		offset = int64(len(data))
	}
	before := data[:offset]
	line = bytes.Count(before, []byte("\n")) + 1
	col = int(offset) - bytes.LastIndexByte(before, '\n')
	return line, col
}
