package render

import (
	"slices"
	"strings"
)

// SecretMask is what every secret value prints as.
const SecretMask = "******"

// SecretValues lists the values of the env's secret variables, longest first (so a secret
// that contains another is masked whole), without empty ones.
func (e *Env) SecretValues() []string {
	var out []string
	for name := range e.Secret {
		if v := e.Values[name]; v != "" && e.Secret[name] {
			out = append(out, v)
		}
	}
	slices.SortFunc(out, func(a, b string) int { return len(b) - len(a) })
	return slices.Compact(out)
}

// MaskString replaces every occurrence of a secret in s with SecretMask.
func MaskString(s string, secrets []string) string {
	for _, sec := range secrets {
		if sec != "" {
			s = strings.ReplaceAll(s, sec, SecretMask)
		}
	}
	return s
}

// MaskValue returns a copy of v (a decoded JSON or YAML tree) in which every occurrence of
// a secret in a string is masked.
func MaskValue(v any, secrets []string) any {
	switch v := v.(type) {
	case string:
		return MaskString(v, secrets)
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			out[k] = MaskValue(x, secrets)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = MaskValue(x, secrets)
		}
		return out
	}
	return v
}
