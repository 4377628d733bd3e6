package workspace

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/text/language"
	"golang.org/x/text/message"

	"github.com/rorokube/roro/schema"
)

// The loader is as strict as the JSON Schemas editors check the files with, and stricter
// than Go's JSON decoder alone, which matches field names in any case and keeps the last of
// a key given twice.

// schemas are the compiled schemas of the workspace's files, by schema file name.
var schemas = sync.OnceValues(func() (map[string]*jsonschema.Schema, error) {
	out := map[string]*jsonschema.Schema{}
	c := jsonschema.NewCompiler()
	names := []string{schema.Workspace, schema.App, schema.Values}
	for _, name := range names {
		data, err := fs.ReadFile(schema.Files, name)
		if err != nil {
			return nil, err
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if err := c.AddResource(name, doc); err != nil {
			return nil, err
		}
	}
	for _, name := range names {
		sch, err := c.Compile(name)
		if err != nil {
			return nil, fmt.Errorf("compile %s: %w", name, err)
		}
		out[name] = sch
	}
	return out, nil
})

// schemaFor names the schema of what v decodes.
func schemaFor(v any) string {
	switch v.(type) {
	case *File:
		return schema.Workspace
	case *AppFile:
		return schema.App
	case *map[string]any:
		return schema.Values
	}
	return ""
}

// checkKeys refuses a key given twice in one object, at its file, line and column.
func checkKeys(path string, data []byte) error {
	_, err := scanKeys(data, false)
	var dup *duplicateKey
	if errors.As(err, &dup) {
		line, col := position(data, dup.offset)
		fl, fc := position(data, dup.first)
		return fmt.Errorf("%s:%d:%d: key %q is given twice in the same object (first at %d:%d): keep one", path, line, col, dup.key, fl, fc)
	}
	return nil // a syntax error: the decoder has said where
}

// checkSchema refuses a document its schema rejects, at its file, line and column.
func checkSchema(path string, data []byte, v any) error {
	name := schemaFor(v)
	if name == "" {
		return nil
	}
	all, err := schemas()
	if err != nil {
		return fmt.Errorf("the schemas roro ships do not compile (a bug in roro): %w", err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		return nil // the decoder reports it
	}
	err = all[name].Validate(doc)
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return err
	}
	keys, err := keyOffsets(data)
	if err != nil {
		return nil // checkKeys and the decoder have said why
	}
	var msgs []string
	printer := message.NewPrinter(language.English)
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) > 0 {
			for _, c := range e.Causes {
				walk(c)
			}
			return
		}
		msg := e.ErrorKind.LocalizedString(printer)
		loc := ""
		for _, p := range e.InstanceLocation {
			loc += "/" + escapePointer(p)
		}
		at := loc
		if strings.HasPrefix(msg, "additional properties") {
			// The offending key is inside the object the error is about.
			if k := firstQuoted(msg); k != "" {
				at += "/" + escapePointer(k)
				msg += caseHint(k, v)
			}
		}
		line, col := position(data, keys[at])
		where := strings.Join(e.InstanceLocation, ".")
		if where != "" {
			where = " at " + where
		}
		expected := ""
		if strings.HasPrefix(msg, "'") || strings.HasPrefix(msg, "value must be") {
			// A value of the wrong shape: say what the field holds, as the schema describes it.
			if d := describe(name, e.InstanceLocation); d != "" {
				expected = "; expected " + strings.TrimSuffix(d, ".")
			}
		}
		msgs = append(msgs, fmt.Sprintf("%s:%d:%d: %s%s%s (the file's JSON Schema, %s)", path, line, col, msg, where, expected, name))
	}
	walk(ve)
	if len(msgs) == 0 {
		return fmt.Errorf("%s: does not match %s: %v", path, name, ve)
	}
	slices.Sort(msgs)
	return errors.New(strings.Join(slices.Compact(msgs), "\n"))
}

// caseHint says, for a key the schema does not know, which known field it differs from only
// in case: Go's decoder would have taken it silently.
func caseHint(key string, v any) string {
	for _, f := range knownFields(v) {
		if strings.EqualFold(f, key) && f != key {
			return fmt.Sprintf(": field names are case-sensitive, write %q", f)
		}
	}
	return ""
}

func firstQuoted(s string) string {
	i := strings.IndexAny(s, `'"`)
	if i < 0 {
		return ""
	}
	q := s[i]
	j := strings.IndexByte(s[i+1:], q)
	if j < 0 {
		return ""
	}
	return s[i+1 : i+1+j]
}

func escapePointer(k string) string {
	return strings.ReplaceAll(strings.ReplaceAll(k, "~", "~0"), "/", "~1")
}

// duplicateKey is a key given twice in one object.
type duplicateKey struct {
	key           string
	offset, first int64
}

func (d *duplicateKey) Error() string { return "duplicate key " + d.key }

// keyOffsets maps the JSON pointer of every value in data to the offset of its key (of the
// value itself for the root and list items), and fails on a key given twice in an object.
// It is a byte-level scan, cheap enough to run on every file a load reads; data that is not
// JSON ends it quietly (the decoder reports that).
func keyOffsets(data []byte) (map[string]int64, error) {
	return scanKeys(data, true)
}

// scanKeys is keyOffsets; with record false it only looks for keys given twice.
func scanKeys(data []byte, record bool) (map[string]int64, error) {
	type frame struct {
		object bool
		path   string
		index  int
		seen   map[string]int64
		key    string
		want   bool // an object expects a key next
	}
	var out map[string]int64
	if record {
		out = map[string]int64{"": 0}
	}
	var stack []*frame
	child := func() string {
		f := stack[len(stack)-1]
		if f.object {
			return f.path + "/" + escapePointer(f.key)
		}
		return f.path + "/" + strconv.Itoa(f.index)
	}
	// value notes the start of a value in the current container.
	value := func(at int) {
		if record && len(stack) > 0 {
			if p := child(); out[p] == 0 {
				out[p] = int64(at)
			}
		}
	}
	done := func() {
		if len(stack) == 0 {
			return
		}
		f := stack[len(stack)-1]
		if f.object {
			f.want = true
		} else {
			f.index++
		}
	}
	for i := 0; i < len(data); i++ {
		c := data[i]
		switch c {
		case ' ', '\t', '\r', '\n', ',', ':':
			continue
		case '"':
			start := i
			esc := false
			for i++; i < len(data); i++ {
				if data[i] == '\\' {
					esc = true
					i++
					continue
				}
				if data[i] == '"' {
					break
				}
			}
			if i >= len(data) {
				return out, nil
			}
			raw := data[start : i+1]
			if len(stack) > 0 && stack[len(stack)-1].object && stack[len(stack)-1].want {
				f := stack[len(stack)-1]
				key := string(raw[1 : len(raw)-1])
				if esc {
					if u, err := strconv.Unquote(string(raw)); err == nil {
						key = u
					}
				}
				if first, dup := f.seen[key]; dup {
					return nil, &duplicateKey{key: key, offset: int64(start), first: first}
				}
				f.seen[key], f.key, f.want = int64(start), key, false
				if record {
					out[child()] = int64(start)
				}
				continue
			}
			value(start)
			done()
		case '{', '[':
			path := ""
			if len(stack) > 0 {
				value(i)
				if record {
					path = child()
				}
			}
			f := &frame{object: c == '{', path: path, want: c == '{'}
			if f.object {
				f.seen = map[string]int64{}
			}
			stack = append(stack, f)
		case '}', ']':
			if len(stack) == 0 {
				return out, nil
			}
			stack = stack[:len(stack)-1]
			done()
		default: // a number, true, false or null
			value(i)
			for i+1 < len(data) && !strings.ContainsRune(" \t\r\n,:]}", rune(data[i+1])) {
				i++
			}
			done()
		}
	}
	return out, nil
}

// describe returns the description the schema gives the value at loc, or that of its nearest
// described parent ("" when none has one): what the field should hold, for an error about it.
func describe(name string, loc []string) string {
	data, err := fs.ReadFile(schema.Files, name)
	if err != nil {
		return ""
	}
	var root map[string]any
	if json.Unmarshal(data, &root) != nil {
		return ""
	}
	deref := func(n map[string]any) map[string]any {
		for range 8 { // local $refs only, bounded
			ref, ok := n["$ref"].(string)
			if !ok {
				break
			}
			def, _ := root["$defs"].(map[string]any)[strings.TrimPrefix(ref, "#/$defs/")].(map[string]any)
			if def == nil {
				break
			}
			merged := map[string]any{}
			for k, v := range def {
				merged[k] = v
			}
			for k, v := range n {
				if k != "$ref" {
					merged[k] = v
				}
			}
			n = merged
		}
		return n
	}
	node, found := deref(root), ""
	for _, step := range loc {
		if d, ok := node["description"].(string); ok {
			found = d
		}
		var next map[string]any
		if props, ok := node["properties"].(map[string]any); ok {
			next, _ = props[step].(map[string]any)
		}
		if next == nil {
			if items, ok := node["items"].(map[string]any); ok {
				next = items
			} else if add, ok := node["additionalProperties"].(map[string]any); ok {
				next = add
			}
		}
		if next == nil {
			return found
		}
		node = deref(next)
	}
	if d, ok := node["description"].(string); ok {
		found = d
	}
	return found
}
