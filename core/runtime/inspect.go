package runtime

import (
	"context"
	"strings"

	"github.com/pmezard/go-difflib/difflib"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/rorokube/roro/core/kube"
	"github.com/rorokube/roro/core/render"
)

// Env resolves one app's env for the selection against its environment's cluster.
func (r *Runtime) Env(ctx context.Context, app string, sel Selection) (*render.Env, error) {
	a, err := r.WS.Lookup(app)
	if err != nil {
		return nil, err
	}
	_, env, err := r.environmentOf(a, sel)
	if err != nil {
		return nil, err
	}
	c, err := r.Connect(ctx, env)
	if err != nil {
		return nil, err
	}
	return render.ResolveEnv(ctx, a, env, r.LookupHost, kube.ObjectReader{Cluster: c})
}

// Diff compares what an up would apply (a server-side dry run of the rendered objects) with
// the live objects, as a unified diff per object. Secret data and secret env values are
// masked on both sides. An object the cluster lacks shows as all added; an object the
// instance owns but no longer renders, as all removed.
func (r *Runtime) Diff(ctx context.Context, app string, sel Selection, values map[string]any) (string, error) {
	a, err := r.WS.Lookup(app)
	if err != nil {
		return "", err
	}
	inst, env, err := r.environmentOf(a, sel)
	if err != nil {
		return "", err
	}
	c, err := r.Connect(ctx, env)
	if err != nil {
		return "", err
	}
	res, resolved, err := r.renderInstance(ctx, c, a, inst, env, values)
	if err != nil {
		return "", err
	}
	var secrets []string
	for name := range resolved.Secret {
		secrets = append(secrets, resolved.Values[name])
	}
	var b strings.Builder
	seen := map[string]bool{}
	for _, o := range res.Objects {
		if !isMember(o) {
			continue
		}
		seen[kube.Key(o)] = true
		live, err := c.Get(ctx, o)
		if err != nil {
			return "", err
		}
		var after *unstructured.Unstructured
		if live == nil {
			after = o
		} else if after, err = c.Apply(ctx, o.DeepCopy(), kube.ApplyOptions{DryRun: true, ForceConflicts: true}); err != nil {
			return "", err
		}
		writeDiff(&b, kube.Ref(o), live, after, secrets)
	}
	if parent, err := findParent(ctx, c, a.Name, inst); err == nil && parent != nil {
		members, err := c.Members(ctx, parent)
		if err != nil {
			return "", err
		}
		for _, m := range members {
			if !seen[kube.Key(m)] {
				writeDiff(&b, kube.Ref(m)+" (pruned by the next up)", m, nil, secrets)
			}
		}
	}
	return b.String(), nil
}

// writeDiff appends the unified diff of one object's live and desired forms.
func writeDiff(b *strings.Builder, name string, live, want *unstructured.Unstructured, secrets []string) {
	from, to := comparable(live, secrets), comparable(want, secrets)
	if from == to {
		return
	}
	d, _ := difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
		A: difflib.SplitLines(from), B: difflib.SplitLines(to),
		FromFile: "live/" + name, ToFile: "rendered/" + name, Context: 3,
	})
	b.WriteString(d)
}

// comparable is an object as YAML without the fields the server owns, with secrets masked.
func comparable(o *unstructured.Unstructured, secrets []string) string {
	if o == nil {
		return ""
	}
	c := o.DeepCopy()
	for _, f := range []string{"managedFields", "resourceVersion", "uid", "creationTimestamp", "generation", "selfLink"} {
		unstructured.RemoveNestedField(c.Object, "metadata", f)
	}
	unstructured.RemoveNestedField(c.Object, "status")
	if anns := c.GetAnnotations(); anns != nil {
		delete(anns, "deployment.kubernetes.io/revision")
		if len(anns) == 0 {
			anns = nil
		}
		c.SetAnnotations(anns)
	}
	if c.GetKind() == "Secret" {
		for _, field := range []string{"data", "stringData"} {
			if m, ok := c.Object[field].(map[string]any); ok {
				for k := range m {
					m[k] = "******"
				}
			}
		}
	}
	y, err := yaml.Marshal(c.Object)
	if err != nil {
		return err.Error()
	}
	s := string(y)
	for _, sec := range secrets {
		if sec != "" {
			s = strings.ReplaceAll(s, sec, "******")
		}
	}
	return s
}
