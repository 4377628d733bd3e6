package render

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"sort"
	"strings"
	"unicode"

	"github.com/rorokube/roro/core/workspace"
)

// ObjectReader reads one field of a cluster object, as an env source's fromObject names it.
// core/kube implements it with discovery, the dynamic client and JSONPath.
type ObjectReader interface {
	ReadField(ctx context.Context, ref ObjectField) (string, error)
}

// ObjectField is a fromObject env source with its environment's name and namespace applied.
type ObjectField struct {
	APIVersion, Kind, Namespace, Name, JSONPath string
}

func (f ObjectField) String() string {
	where := f.Name
	if f.Namespace != "" {
		where = f.Namespace + "/" + f.Name
	}
	return fmt.Sprintf("%s %s %s", f.Kind, where, f.JSONPath)
}

// FieldFor applies environment env's overrides to an object reference.
func FieldFor(ref *workspace.ObjectRef, env string) ObjectField {
	f := ObjectField{APIVersion: ref.APIVersion, Kind: ref.Kind, Namespace: ref.Namespace, Name: ref.Name, JSONPath: ref.JSONPath}
	if o, ok := ref.Environments[env]; ok {
		if o.Name != "" {
			f.Name = o.Name
		}
		if o.Namespace != "" {
			f.Namespace = o.Namespace
		}
	}
	return f
}

// Env is an app's resolved env: the values, and which of them are secret.
type Env struct {
	Values map[string]string
	Secret map[string]bool
	// Unresolved lists variables from cluster objects left as placeholders because no
	// ObjectReader was given.
	Unresolved []string
}

// ResolveEnv resolves the env sources of app for environment env. Host variables come from
// lookupHost (os.LookupEnv in the CLI). With a nil reader, fromObject variables get a
// visible placeholder and are listed in Unresolved. Every failure is reported, each naming
// the app, the variable and the source.
func ResolveEnv(ctx context.Context, app *workspace.App, env string, lookupHost func(string) (string, bool), reader ObjectReader) (*Env, error) {
	out := &Env{Values: map[string]string{}, Secret: map[string]bool{}}
	var errs []error
	for _, src := range app.File.Env {
		if src.Secret || fromSecret(src.FromObject) {
			out.Secret[src.Name] = true
		}
		switch {
		case src.Value != nil:
			out.Values[src.Name] = *src.Value
		case src.FromHost != "":
			v, ok := lookupHost(src.FromHost)
			switch {
			case ok:
				out.Values[src.Name] = v
			case src.Default != nil:
				out.Values[src.Name] = *src.Default
			default:
				errs = append(errs, fmt.Errorf("app %s: env %s: host variable %s is not set: export it, or give the source a \"default\"",
					app.Name, src.Name, src.FromHost))
			}
		case src.FromObject != nil:
			field := FieldFor(src.FromObject, env)
			if reader == nil {
				out.Values[src.Name] = "<" + src.Name + " from " + field.String() + ">"
				out.Unresolved = append(out.Unresolved, src.Name)
				continue
			}
			v, err := reader.ReadField(ctx, field)
			if err != nil {
				errs = append(errs, fmt.Errorf("app %s: env %s: %w", app.Name, src.Name, err))
				continue
			}
			if fromSecret(src.FromObject) && strings.HasPrefix(field.JSONPath, "{.data.") {
				// A Secret's data is base64 on the wire; the variable wants the value.
				decoded, err := base64.StdEncoding.DecodeString(v)
				if err != nil {
					errs = append(errs, fmt.Errorf("app %s: env %s: %s: not base64: %w", app.Name, src.Name, field, err))
					continue
				}
				v = string(decoded)
			}
			out.Values[src.Name] = v
		}
	}
	return out, errors.Join(errs...)
}

// fromSecret reports whether an env source reads a core Secret: its value is secret whether
// or not the source says so.
func fromSecret(ref *workspace.ObjectRef) bool {
	return ref != nil && ref.Kind == "Secret" && ref.APIVersion == "v1"
}

// DotEnv writes env as a .env file, every value in clear, single-quoted so that sourcing the
// file in a shell runs nothing ($(…), backticks, ;, | stay text). A value holding a control
// character (a newline among them) cannot be written safely and is an error naming it.
func (e *Env) DotEnv() (string, error) {
	names := make([]string, 0, len(e.Values))
	for n := range e.Values {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		v := e.Values[n]
		if i := strings.IndexFunc(v, unicode.IsControl); i >= 0 {
			return "", fmt.Errorf("the value of %s holds a control character (%q at byte %d): a .env file cannot carry it safely", n, v[i], i)
		}
		fmt.Fprintf(&b, "%s='%s'\n", n, strings.ReplaceAll(v, "'", `'\''`))
	}
	return b.String(), nil
}
