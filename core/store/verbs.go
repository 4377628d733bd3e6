package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/rorokube/roro/core/render"
	"github.com/rorokube/roro/core/workspace"
)

// SetValues sets values in an app's app.json "values", each assignment in Helm's --set
// syntax (`replicas=3`, `image.tag=1.2`, `ports[0].port=80`, `a=x,b=y`, `dots\.in\.key=v`;
// `key=null` removes the key). With asString every value is a string, as --set-string.
// Only the "values" block of app.json is rewritten; the rest keeps its formatting.
func (s *Store) SetValues(app string, assignments []string, asString bool) (Commit, error) {
	message := fmt.Sprintf("Set %s of app %s", strings.Join(assignments, ", "), app)
	return s.change(message, func(read func(string) ([]byte, error)) (edit, error) {
		if len(assignments) == 0 {
			return nil, errors.New("give at least one KEY=VALUE")
		}
		rel, _, raw, err := s.appJSON(app, read)
		if err != nil {
			return nil, err
		}
		values, err := objectAt(raw, "values")
		if err != nil {
			return nil, fmt.Errorf("%s: %w", rel, err)
		}
		old, err := json.Marshal(values)
		if err != nil {
			return nil, err
		}
		for _, a := range assignments {
			if err := render.SetValue(values, a, asString); err != nil {
				return nil, err
			}
		}
		dropNulls(values)
		if now, err := json.Marshal(values); err != nil || bytes.Equal(now, old) {
			return nil, err // the same values: nothing to write
		}
		out, err := setBlock(raw, "values", values)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", rel, err)
		}
		return edit{rel: out}, nil
	})
}

// dropNulls removes the keys set to null, as Helm does with `--set key=null`.
func dropNulls(m map[string]any) {
	for k, v := range m {
		switch v := v.(type) {
		case nil:
			delete(m, k)
		case map[string]any:
			dropNulls(v)
		}
	}
}

// AddInstance adds a further instance of app named name to its app.json "instances".
func (s *Store) AddInstance(app, name string, inst workspace.Instance) (Commit, error) {
	var where []string
	switch {
	case inst.Suffix != "":
		where = append(where, "suffix "+inst.Suffix)
	case inst.Namespace != "":
		where = append(where, "namespace "+inst.Namespace)
	}
	if inst.Environment != "" {
		where = append(where, "environment "+inst.Environment)
	}
	message := fmt.Sprintf("Add instance %s of app %s", name, app)
	if len(where) > 0 {
		message += " (" + strings.Join(where, ", ") + ")"
	}
	return s.change(message, func(read func(string) ([]byte, error)) (edit, error) {
		if msgs := validation.IsDNS1123Label(name); len(msgs) > 0 {
			return nil, fmt.Errorf("%q is not a valid instance name: %s", name, strings.Join(msgs, "; "))
		}
		if name == workspace.DefaultInstance {
			return nil, errors.New(`"default" is the instance every app has: give the new one another name`)
		}
		if inst.Suffix != "" && inst.Namespace != "" {
			return nil, errors.New("an instance has a namespace of its own or a name suffix in its app's namespace, not both")
		}
		rel, _, raw, err := s.appJSON(app, read)
		if err != nil {
			return nil, err
		}
		instances, err := objectAt(raw, "instances")
		if err != nil {
			return nil, fmt.Errorf("%s: %w", rel, err)
		}
		if _, ok := instances[name]; ok {
			return nil, fmt.Errorf("app %s already has an instance %s: choose another name, or remove it first (roro instance rm %s %s)", app, name, app, name)
		}
		instances[name] = inst
		out, err := setBlock(raw, "instances", instances)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", rel, err)
		}
		return edit{rel: out}, nil
	})
}

// RemoveInstance removes the instance name from app's app.json. What runs of it in a cluster
// is left alone: `roro down APP --instance NAME` first removes it there.
func (s *Store) RemoveInstance(app, name string) (Commit, error) {
	return s.change(fmt.Sprintf("Remove instance %s of app %s", name, app), func(read func(string) ([]byte, error)) (edit, error) {
		rel, a, raw, err := s.appJSON(app, read)
		if err != nil {
			return nil, err
		}
		if _, ok := a.File.Instances[name]; !ok {
			have := a.InstanceNames()
			if len(have) == 0 {
				return nil, fmt.Errorf("app %s has no further instances (only its default one, which cannot be removed)", app)
			}
			return nil, fmt.Errorf("app %s has no instance %s (it has %s)", app, name, strings.Join(have, ", "))
		}
		instances, err := objectAt(raw, "instances")
		if err != nil {
			return nil, fmt.Errorf("%s: %w", rel, err)
		}
		delete(instances, name)
		var block any = instances
		if len(instances) == 0 {
			block = nil
		}
		out, err := setBlock(raw, "instances", block)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", rel, err)
		}
		return edit{rel: out}, nil
	})
}

// AddApp adds an app named name, a copy of the workspace's app from (its templates, values
// and settings; not its namespace, its name or its further instances), in the folder of the
// first members glob that ends in "/*".
func (s *Store) AddApp(name, from string) (Commit, error) {
	return s.change(fmt.Sprintf("Add app %s from app %s", name, from), func(read func(string) ([]byte, error)) (edit, error) {
		if msgs := validation.IsDNS1123Label(name); len(msgs) > 0 {
			return nil, fmt.Errorf("%q is not a valid app name: %s", name, strings.Join(msgs, "; "))
		}
		ws, err := workspace.Load(s.dir)
		if err != nil {
			return nil, fmt.Errorf("the workspace does not load as it is; fix it first: %w", err)
		}
		if ws.App(name) != nil {
			return nil, fmt.Errorf("the workspace already has an app %s", name)
		}
		tmpl, err := ws.Lookup(from)
		if err != nil {
			return nil, err
		}
		parent := ""
		for _, g := range ws.File.Members {
			if p, ok := strings.CutSuffix(g, "/*"); ok && !strings.ContainsAny(p, "*?[") {
				parent = p
				break
			}
		}
		if parent == "" {
			return nil, fmt.Errorf("no members glob of %s ends in \"/*\" (like \"apps/*\"), so there is no folder to put a new app in: add one", workspace.FileName)
		}
		dest := slash(parent, name)
		if _, err := os.Lstat(filepath.Join(s.dir, filepath.FromSlash(dest))); err == nil {
			return nil, fmt.Errorf("%s already exists", dest)
		}
		ed := edit{}
		srcRel, _ := filepath.Rel(s.dir, tmpl.Dir)
		err = filepath.WalkDir(tmpl.Dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !d.Type().IsRegular() {
				return err
			}
			rel, _ := filepath.Rel(tmpl.Dir, p)
			data, err := read(slash(filepath.ToSlash(srcRel), filepath.ToSlash(rel)))
			if err != nil {
				return err
			}
			ed[slash(dest, filepath.ToSlash(rel))] = data
			return nil
		})
		if err != nil {
			return nil, err
		}
		appJSON := slash(dest, workspace.AppFileName)
		for _, field := range []string{"name", "namespace", "instances"} {
			if ed[appJSON], err = sjson.DeleteBytes(ed[appJSON], field); err != nil {
				return nil, err
			}
		}
		return ed, nil
	})
}

// SetEnvironment sets (adds or replaces) the environment name in roro.json.
func (s *Store) SetEnvironment(name string, env workspace.Environment) (Commit, error) {
	message := "Set environment " + name
	if env.Context != "" {
		message += " (context " + env.Context + ")"
	}
	return s.change(message, func(read func(string) ([]byte, error)) (edit, error) {
		if msgs := validation.IsDNS1123Label(name); len(msgs) > 0 {
			return nil, fmt.Errorf("%q is not a valid environment name: %s", name, strings.Join(msgs, "; "))
		}
		raw, err := read(workspace.FileName)
		if err != nil {
			return nil, err
		}
		envs, err := objectAt(raw, "environments")
		if err != nil {
			return nil, fmt.Errorf("%s: %w", workspace.FileName, err)
		}
		envs[name] = env
		out, err := setBlock(raw, "environments", envs)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", workspace.FileName, err)
		}
		if bytes.Equal(out, raw) {
			return nil, nil
		}
		return edit{workspace.FileName: out}, nil
	})
}

// objectAt decodes the top-level field key of a JSON object as an object (numbers keep
// their text); a missing field is an empty object.
func objectAt(raw []byte, key string) (map[string]any, error) {
	out := map[string]any{}
	v := gjson.GetBytes(raw, sjsonKey(key))
	if !v.Exists() {
		return out, nil
	}
	dec := json.NewDecoder(strings.NewReader(v.Raw))
	dec.UseNumber()
	if err := dec.Decode(&out); err != nil || out == nil {
		return nil, fmt.Errorf("%q is not an object", key)
	}
	return out, nil
}

// setBlock sets the top-level field key of the JSON object raw to value, written indented as
// the workspace's files are; nil removes the field. The rest of raw keeps its formatting.
func setBlock(raw []byte, key string, value any) ([]byte, error) {
	path := sjsonKey(key)
	if value == nil {
		return sjson.DeleteBytes(raw, path)
	}
	block, err := indentJSON(value)
	if err != nil {
		return nil, err
	}
	block = nest(block, 1)
	if gjson.GetBytes(raw, path).Exists() {
		return sjson.SetRawBytes(raw, path, block)
	}
	// A new field goes last, on its own line, before the object's closing brace.
	end := bytes.LastIndexByte(raw, '}')
	if end < 0 {
		return nil, errors.New("not a JSON object")
	}
	body := bytes.TrimRight(raw[:end], " \t\r\n")
	var out bytes.Buffer
	out.Write(body)
	if len(body) > 0 && body[len(body)-1] != '{' {
		out.WriteByte(',')
	}
	keyJSON, _ := json.Marshal(key)
	fmt.Fprintf(&out, "\n  %s: %s\n", keyJSON, block)
	out.Write(raw[end:])
	return out.Bytes(), nil
}

// sjsonKey escapes a map key for an sjson/gjson path.
func sjsonKey(k string) string {
	var b strings.Builder
	for _, r := range k {
		if strings.ContainsRune(`.*?|#@\:!=<>%`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// nest indents a JSON block (as indentJSON writes it) to sit level objects deep, without its
// final newline.
func nest(block []byte, level int) []byte {
	pad := strings.Repeat("  ", level)
	lines := strings.Split(strings.TrimSuffix(string(block), "\n"), "\n")
	for i := 1; i < len(lines); i++ {
		lines[i] = pad + lines[i]
	}
	return []byte(strings.Join(lines, "\n"))
}

// appJSON reads app's app.json: its path relative to the workspace, the app, its bytes.
func (s *Store) appJSON(app string, read func(string) ([]byte, error)) (string, *workspace.App, []byte, error) {
	rel, a, err := s.appFile(app)
	if err != nil {
		return "", nil, nil, err
	}
	raw, err := read(rel)
	return rel, a, raw, err
}
