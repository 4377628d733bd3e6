package render

import (
	"fmt"
	"maps"
	"os"
	"strconv"
	"strings"

	"sigs.k8s.io/yaml"
)

// Merge layers values: each later map wins over the earlier ones. Maps merge key by key,
// recursively; any other value (lists included) is replaced whole. The inputs are not
// modified.
func Merge(layers ...map[string]any) map[string]any {
	out := map[string]any{}
	for _, l := range layers {
		mergeInto(out, l)
	}
	return out
}

func mergeInto(dst, src map[string]any) {
	for k, v := range src {
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

// ParseSet turns "a.b=c" assignments (the command line's --set) into a values map. A value
// of true, false, null or a number gets that type; anything else stays a string. Keys may not
// be empty.
func ParseSet(assignments []string) (map[string]any, error) {
	out := map[string]any{}
	for _, a := range assignments {
		key, raw, ok := strings.Cut(a, "=")
		if !ok {
			return nil, fmt.Errorf("--set %q: want KEY=VALUE, for example --set image.tag=1.2", a)
		}
		parts := strings.Split(key, ".")
		for _, p := range parts {
			if p == "" {
				return nil, fmt.Errorf("--set %q: the key %q has an empty part; write a.b.c", a, key)
			}
		}
		m := out
		for _, p := range parts[:len(parts)-1] {
			next, ok := m[p].(map[string]any)
			if !ok {
				next = map[string]any{}
				m[p] = next
			}
			m = next
		}
		m[parts[len(parts)-1]] = scalar(raw)
	}
	return out, nil
}

func scalar(s string) any {
	switch s {
	case "true":
		return true
	case "false":
		return false
	case "null":
		return nil
	}
	if i, err := strconv.ParseInt(s, 10, 64); err == nil {
		return i
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil && !strings.ContainsAny(s, "xXpP_") {
		return f
	}
	return s
}

// ReadValuesFile reads a JSON (or YAML) file whose top level is an object of values, as
// --values takes it.
func ReadValuesFile(path string) (map[string]any, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--values: %w", err)
	}
	var m map[string]any
	if err := yaml.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("--values %s: %w", path, err)
	}
	if m == nil {
		m = map[string]any{}
	}
	return m, nil
}
