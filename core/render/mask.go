package render

import (
	"encoding/base64"
	"encoding/json"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// SecretMask is what every secret value prints as.
const SecretMask = "******"

// MinMaskable is the shortest secret that is masked: a shorter one would mask every
// occurrence of its letters and so reveal itself; it is reported instead (ShortSecrets).
const MinMaskable = 4

// SecretValues lists what masking looks for, longest first (so a secret that contains
// another is masked whole): each secret value of at least MinMaskable characters, and the
// forms a template or a serialiser turns it into — base64 (standard and URL, padded or not),
// JSON-escaped, URL-escaped, upper and lower case.
func (e *Env) SecretValues() []string {
	var out []string
	for name := range e.Secret {
		v := e.Values[name]
		if !e.Secret[name] || len(v) < MinMaskable {
			continue
		}
		out = append(out, encodings(v)...)
	}
	slices.SortFunc(out, func(a, b string) int {
		if len(a) != len(b) {
			return len(b) - len(a)
		}
		return strings.Compare(a, b)
	})
	return slices.Compact(out)
}

// encodings are the common forms of a secret value.
func encodings(v string) []string {
	b := []byte(v)
	forms := []string{v, strings.ToUpper(v), strings.ToLower(v),
		base64.StdEncoding.EncodeToString(b), base64.RawStdEncoding.EncodeToString(b),
		base64.URLEncoding.EncodeToString(b), base64.RawURLEncoding.EncodeToString(b),
		url.QueryEscape(v), url.PathEscape(v)}
	if q := strconv.Quote(v); len(q) > 2 {
		forms = append(forms, q[1:len(q)-1])
	}
	if j, err := json.Marshal(v); err == nil && len(j) > 2 {
		forms = append(forms, string(j[1:len(j)-1]))
	}
	out := forms[:0]
	for _, f := range forms {
		if len(f) >= MinMaskable {
			out = append(out, f)
		}
	}
	return out
}

// ShortSecrets names the secret variables too short to mask (under MinMaskable characters),
// for a warning: their values print as they are.
func (e *Env) ShortSecrets() []string {
	var out []string
	for name := range e.Secret {
		if e.Secret[name] && e.Values[name] != "" && len(e.Values[name]) < MinMaskable {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
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
// a secret in a string or a map key is masked.
func MaskValue(v any, secrets []string) any {
	switch v := v.(type) {
	case string:
		return MaskString(v, secrets)
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			out[MaskString(k, secrets)] = MaskValue(x, secrets)
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

// MaskObject returns a copy of a Kubernetes object fit to show: by structure first, every
// value of a Secret's data and stringData is SecretMask whatever it holds (its keys stay
// visible); then every occurrence of a secret anywhere else is masked as MaskValue does.
func MaskObject(obj map[string]any, secrets []string) map[string]any {
	out := MaskValue(obj, secrets).(map[string]any)
	if kind, _ := obj["kind"].(string); kind != "Secret" {
		return out
	}
	if api, _ := obj["apiVersion"].(string); api != "v1" {
		return out
	}
	for _, field := range []string{"data", "stringData"} {
		data, ok := out[field].(map[string]any)
		if !ok {
			continue
		}
		for k := range data {
			data[k] = SecretMask
		}
	}
	return out
}

// MaskError returns err with every occurrence of a secret in its message masked: a
// template's error can quote a value (`fail`, a parse error of a decoded secret). The
// returned error unwraps to err, for its type; show only its message.
func MaskError(err error, secrets []string) error {
	if err == nil || len(secrets) == 0 {
		return err
	}
	return &maskedError{msg: MaskString(err.Error(), secrets), err: err}
}

type maskedError struct {
	msg string
	err error
}

func (e *maskedError) Error() string { return e.msg }
func (e *maskedError) Unwrap() error { return e.err }
