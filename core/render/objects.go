package render

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"
)

// Labels roro puts on every object it renders; core/kube reads them back from the cluster.
const (
	LabelManagedBy = "app.kubernetes.io/managed-by"
	ManagedByValue = "roro"
	LabelApp       = "roro.dev/app"
	LabelInstance  = "roro.dev/instance"
	// LabelApplySetPartOf marks an ApplySet member (KEP-3659), with the set's ID as value.
	LabelApplySetPartOf = "applyset.kubernetes.io/part-of"
)

// ApplySet identifies one instance's ApplySet: a Secret parent in the instance's namespace,
// named roro.<app>.<instance>, and the ID derived from it as kubectl derives it.
type ApplySet struct {
	ParentName      string
	ParentNamespace string
	ID              string
}

// NewApplySet returns the ApplySet of instance inst of app.
func NewApplySet(app string, inst InstanceInfo) ApplySet {
	name := "roro." + app + "." + inst.Name
	// kubectl: base64url(sha256(name.namespace.kind.group)), wrapped so the label value
	// starts and ends with a letter.
	sum := sha256.Sum256([]byte(strings.Join([]string{name, inst.Namespace, "Secret", ""}, ".")))
	return ApplySet{ParentName: name, ParentNamespace: inst.Namespace,
		ID: "applyset-" + base64.RawURLEncoding.EncodeToString(sum[:]) + "-v1"}
}

// ObjectError is a rendered object that is not a valid Kubernetes object, with where it came
// from: the template file and the document's index and first line in that file's output.
type ObjectError struct {
	File     string
	Document int // 1-based
	Line     int // first line of the document in the rendered output
	Object   string
	Msg      string
}

func (e *ObjectError) Error() string {
	obj := ""
	if e.Object != "" {
		obj = " (" + e.Object + ")"
	}
	return fmt.Sprintf("%s: document %d at line %d of the rendered output%s: %s", e.File, e.Document, e.Line, obj, e.Msg)
}

// document is one YAML document of a template's output and the line it starts on.
type document struct {
	data []byte
	line int
}

// splitDocuments splits YAML at lines that are "---" (optionally followed by a comment).
func splitDocuments(data []byte) []document {
	var docs []document
	start, line, docStart := 0, 1, 1
	for pos := 0; pos < len(data); {
		end := bytes.IndexByte(data[pos:], '\n')
		next := len(data)
		if end >= 0 {
			next = pos + end + 1
		}
		text := bytes.TrimRight(data[pos:next], " \t\r\n")
		if bytes.Equal(text, []byte("---")) || bytes.HasPrefix(text, []byte("--- #")) {
			docs = append(docs, document{data: data[start:pos], line: docStart})
			start, docStart = next, line+1
		}
		pos = next
		line++
	}
	return append(docs, document{data: data[start:], line: docStart})
}

var yamlLineRe = regexp.MustCompile(`line (\d+)`)

// Decode turns one template's output (multi-document YAML, or JSON) into objects. Empty
// documents are skipped. An error names the file, the document and its line.
func Decode(out Output) ([]*unstructured.Unstructured, error) {
	var objs []*unstructured.Unstructured
	for i, doc := range splitDocuments(out.Data) {
		if len(bytes.TrimSpace(stripComments(doc.data))) == 0 {
			continue
		}
		var m map[string]any
		if err := yaml.Unmarshal(doc.data, &m); err != nil {
			msg := strings.TrimPrefix(err.Error(), "error converting YAML to JSON: ")
			line := doc.line
			// Point at the failing line of the output rather than the document.
			if sm := yamlLineRe.FindStringSubmatch(msg); sm != nil {
				n, _ := strconv.Atoi(sm[1])
				line = doc.line + n - 1
				msg = yamlLineRe.ReplaceAllString(msg, "line "+strconv.Itoa(line))
			}
			return nil, &ObjectError{File: out.File, Document: i + 1, Line: doc.line,
				Msg: "not valid YAML: " + msg + "; run `roro render` to see the output"}
		}
		if m == nil {
			continue
		}
		obj := &unstructured.Unstructured{Object: m}
		if err := checkObject(obj); err != "" {
			return nil, &ObjectError{File: out.File, Document: i + 1, Line: doc.line, Object: describe(obj), Msg: err}
		}
		objs = append(objs, obj)
	}
	return objs, nil
}

func stripComments(data []byte) []byte {
	var out bytes.Buffer
	for _, l := range bytes.Split(data, []byte("\n")) {
		if t := bytes.TrimSpace(l); len(t) > 0 && t[0] != '#' {
			out.Write(l)
			out.WriteByte('\n')
		}
	}
	return out.Bytes()
}

func describe(o *unstructured.Unstructured) string {
	kind := o.GetKind()
	if kind == "" {
		kind = "object"
	}
	if o.GetName() == "" {
		return kind
	}
	return kind + " " + o.GetName()
}

func checkObject(o *unstructured.Unstructured) string {
	var missing []string
	if s, _ := o.Object["apiVersion"].(string); s == "" {
		missing = append(missing, "apiVersion")
	}
	if s, _ := o.Object["kind"].(string); s == "" {
		missing = append(missing, "kind")
	}
	md, ok := o.Object["metadata"].(map[string]any)
	if !ok {
		missing = append(missing, "metadata")
	} else if s, _ := md["name"].(string); s == "" {
		if g, _ := md["generateName"].(string); g != "" {
			return "metadata.generateName is not supported: roro must know every object's name to update and prune it; set metadata.name"
		}
		missing = append(missing, "metadata.name")
	}
	if len(missing) > 0 {
		return strings.Join(missing, ", ") + " missing: every object needs apiVersion, kind and metadata.name"
	}
	return ""
}

// clusterScoped are the built-in kinds that live outside namespaces. Custom cluster-scoped
// kinds are corrected by the kube layer, which asks the API server.
var clusterScoped = map[string]bool{
	"Namespace": true, "Node": true, "PersistentVolume": true, "CustomResourceDefinition": true,
	"ClusterRole": true, "ClusterRoleBinding": true, "StorageClass": true, "PriorityClass": true,
	"IngressClass": true, "RuntimeClass": true, "APIService": true, "CSIDriver": true, "CSINode": true,
	"ValidatingWebhookConfiguration": true, "MutatingWebhookConfiguration": true,
	"ValidatingAdmissionPolicy": true, "ValidatingAdmissionPolicyBinding": true, "VolumeAttachment": true,
}

// finish namespaces, names-checks, de-duplicates and labels the objects of r; sources[i]
// names the template file of r.Objects[i].
func finish(r *Result, sources []string) error {
	type key struct{ gk, ns, name string }
	seen := map[key]string{}
	var errs []string
	for i, o := range r.Objects {
		file := sources[i]
		kind := o.GetKind()
		if clusterScoped[kind] {
			o.SetNamespace("")
		} else if o.GetNamespace() == "" {
			o.SetNamespace(r.Instance.Namespace)
		}
		if msg := checkName(kind, o.GetName()); msg != "" {
			hint := ""
			if r.Instance.Suffix != "" {
				hint = fmt.Sprintf(" (with the instance suffix %q): use a shorter suffix or name", r.Instance.Suffix)
			}
			errs = append(errs, fmt.Sprintf("%s: %s %q: %s%s", file, kind, o.GetName(), msg, hint))
			continue
		}
		k := key{o.GroupVersionKind().GroupKind().String(), o.GetNamespace(), o.GetName()}
		if other, dup := seen[k]; dup {
			where := k.name
			if k.ns != "" {
				where = k.ns + "/" + k.name
			}
			errs = append(errs, fmt.Sprintf("%s: %s %s is also defined in %s: each object may be defined once per instance", file, kind, where, other))
			continue
		}
		seen[k] = file
		labels := o.GetLabels()
		if labels == nil {
			labels = map[string]string{}
		}
		labels[LabelManagedBy] = ManagedByValue
		labels[LabelApp] = r.App
		labels[LabelInstance] = r.Instance.Name
		labels[LabelApplySetPartOf] = r.ApplySet.ID
		o.SetLabels(labels)
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "\n"))
	}
	return nil
}

// checkName says what is wrong with an object's name, or "".
func checkName(kind, name string) string {
	var msgs []string
	switch kind {
	case "Namespace", "Service":
		// Namespaces and Services are DNS labels: 63 characters at most.
		msgs = validation.IsDNS1123Label(name)
	default:
		msgs = validation.IsDNS1123Subdomain(name)
	}
	if len(msgs) == 0 {
		return ""
	}
	if len(name) > 63 {
		return fmt.Sprintf("name is %d characters long: %s", len(name), strings.Join(msgs, "; "))
	}
	return strings.Join(msgs, "; ")
}
