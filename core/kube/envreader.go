package kube

import (
	"bytes"
	"context"
	"fmt"
	"reflect"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/util/jsonpath"

	"github.com/rorokube/roro/core/render"
)

// ObjectReader reads env values from cluster objects, usually custom resources, with
// discovery, the dynamic client and kubectl-style JSONPath.
type ObjectReader struct {
	Cluster *Cluster
}

var _ render.ObjectReader = ObjectReader{}

// ReadField reads one field. Errors say which of these it was: the kind is not served (CRD
// not installed), the object is missing, the expression matches nothing, or several values.
func (r ObjectReader) ReadField(ctx context.Context, f render.ObjectField) (string, error) {
	probe := &unstructured.Unstructured{}
	probe.SetAPIVersion(f.APIVersion)
	probe.SetKind(f.Kind)
	probe.SetName(f.Name)
	probe.SetNamespace(f.Namespace)
	obj, err := r.Cluster.Get(ctx, probe)
	if err != nil {
		if strings.Contains(err.Error(), "does not serve") {
			return "", fmt.Errorf("%s: %s %s is not served by the cluster: install its CRD first", f, f.APIVersion, f.Kind)
		}
		return "", fmt.Errorf("%s: %w", f, err)
	}
	if obj == nil {
		return "", fmt.Errorf("%s: object not found: create it, or fix name/namespace (per environment under \"environments\")", f)
	}
	jp := jsonpath.New("env")
	if err := jp.Parse(f.JSONPath); err != nil {
		return "", fmt.Errorf("%s: bad JSONPath: %w", f, err)
	}
	results, err := jp.FindResults(obj.Object)
	if err != nil {
		return "", fmt.Errorf("%s: no match: %w", f, err)
	}
	var values []string
	for _, set := range results {
		for _, v := range set {
			var buf bytes.Buffer
			if err := jp.PrintResults(&buf, []reflect.Value{v}); err != nil {
				return "", fmt.Errorf("%s: %w", f, err)
			}
			values = append(values, buf.String())
		}
	}
	switch len(values) {
	case 0:
		return "", fmt.Errorf("%s: no match in the object: check the expression against `kubectl get %s %s -o yaml`", f, strings.ToLower(f.Kind), f.Name)
	case 1:
		return values[0], nil
	}
	// The matches are not shown: they may be secrets (tokens, passwords).
	return "", fmt.Errorf("%s: %d matches, want one: narrow the expression, for example with a filter [?(@.name==\"x\")]", f, len(values))
}
