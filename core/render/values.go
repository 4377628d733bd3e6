package render

import (
	"fmt"
	"maps"
	"os"
	"strings"

	"helm.sh/helm/v3/pkg/strvals"
	"sigs.k8s.io/yaml"
)

// Merge layers values: each later map wins over the earlier ones. Maps merge key by key,
// recursively; any other value (lists included) is replaced whole; null removes the key, as
// Helm does. The inputs are not modified.
func Merge(layers ...map[string]any) map[string]any {
	out := map[string]any{}
	for _, l := range layers {
		mergeInto(out, l)
	}
	return out
}

func mergeInto(dst, src map[string]any) {
	for k, v := range src {
		if v == nil {
			delete(dst, k)
			continue
		}
		if sm, ok := v.(map[string]any); ok {
			if dm, ok := dst[k].(map[string]any); ok {
				merged := maps.Clone(dm)
				mergeInto(merged, sm)
				dst[k] = merged
				continue
			}
			fresh := map[string]any{}
			mergeInto(fresh, sm)
			dst[k] = fresh
			continue
		}
		dst[k] = v
	}
}

// Sets are the command line's assignments, in Helm's syntax (dotted paths, list indices,
// several per argument separated by commas, a backslash before a dot that belongs to a key),
// applied in this order: --set, --set-string, --set-file.
type Sets struct {
	// Typed values: integers, true/false and null get their type (null removes the key
	// where layered); anything else, 1.10, 010 and Infinity included, stays a string.
	Typed []string
	// Strings are kept strings whatever they look like (--set-string).
	Strings []string
	// Files set a key to the content of a file (--set-file key=path), at most 4 MiB.
	Files []string
}

// MaxSetFile bounds a --set-file's file.
const MaxSetFile = 4 << 20

// Parse applies the assignments to a new values map.
func (s Sets) Parse() (map[string]any, error) {
	out := map[string]any{}
	for _, a := range s.Typed {
		if err := SetValue(out, a, false); err != nil {
			return nil, fmt.Errorf("--set %w", err)
		}
	}
	for _, a := range s.Strings {
		if err := SetValue(out, a, true); err != nil {
			return nil, fmt.Errorf("--set-string %w", err)
		}
	}
	for _, a := range s.Files {
		err := strvals.ParseIntoFile(a, out, func(path []rune) (any, error) {
			p := string(path)
			info, err := os.Stat(p)
			if err != nil {
				return nil, err
			}
			if info.Size() > MaxSetFile {
				return nil, fmt.Errorf("%s is %d bytes, over the %d MiB --set-file takes", p, info.Size(), MaxSetFile>>20)
			}
			data, err := os.ReadFile(p)
			return string(data), err
		})
		if err != nil {
			return nil, fmt.Errorf("--set-file %q: %w (write key=path)", a, err)
		}
	}
	return out, nil
}

// SetValue applies one assignment in Helm's --set syntax to values (asString: as
// --set-string does).
func SetValue(values map[string]any, assignment string, asString bool) error {
	if !strings.Contains(assignment, "=") {
		return fmt.Errorf("%q: want KEY=VALUE, for example image.tag=1.2", assignment)
	}
	parse := strvals.ParseInto
	if asString {
		parse = strvals.ParseIntoString
	}
	if err := parse(assignment, values); err != nil {
		return fmt.Errorf("%q: %w (the syntax is Helm's --set: key.sub=value, list[0]=value, a=1,b=2)", assignment, err)
	}
	return nil
}

// ReadValuesFile reads a JSON (or YAML) file whose top level is an object of values, as
// --values takes it.
func ReadValuesFile(path string) (map[string]any, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--values: %w", err)
	}
	var m map[string]any
	// Strict: a key given twice is an error, not the last one silently.
	if err := yaml.UnmarshalStrict(data, &m); err != nil {
		return nil, fmt.Errorf("--values %s: %w", path, err)
	}
	if m == nil {
		m = map[string]any{}
	}
	return m, nil
}
