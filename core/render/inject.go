package render

import (
	"slices"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// podSpecPaths are where each workload kind keeps its pod spec.
var podSpecPaths = map[string][]string{
	"Pod":         {"spec"},
	"Deployment":  {"spec", "template", "spec"},
	"StatefulSet": {"spec", "template", "spec"},
	"DaemonSet":   {"spec", "template", "spec"},
	"ReplicaSet":  {"spec", "template", "spec"},
	"Job":         {"spec", "template", "spec"},
	"CronJob":     {"spec", "jobTemplate", "spec", "template", "spec"},
}

// EnvSecretName is the Secret that carries an instance's secret env when it is injected.
func EnvSecretName(app string, inst InstanceInfo) string {
	return "roro-env-" + app + inst.Suffix
}

// InjectEnv adds the resolved env to every container (and init container) of the result's
// workloads, for apps that opt in with "injectEnv". Plain values go in as values; secret ones
// through a Secret the result gains, referenced with secretKeyRef, so they never appear in a
// workload's spec. A variable a container already sets is left as the template wrote it.
func InjectEnv(res *Result, env *Env) {
	if env == nil || len(env.Values) == 0 {
		return
	}
	names := make([]string, 0, len(env.Values))
	for n := range env.Values {
		names = append(names, n)
	}
	slices.Sort(names)
	secretName := EnvSecretName(res.App, res.Instance)
	secretData := map[string]any{}
	var vars []any
	for _, n := range names {
		if env.Secret[n] {
			secretData[n] = env.Values[n]
			vars = append(vars, map[string]any{"name": n, "valueFrom": map[string]any{
				"secretKeyRef": map[string]any{"name": secretName, "key": n},
			}})
			continue
		}
		vars = append(vars, map[string]any{"name": n, "value": env.Values[n]})
	}
	injected := false
	for _, o := range res.Objects {
		path, ok := podSpecPaths[o.GetKind()]
		if !ok {
			continue
		}
		for _, field := range []string{"containers", "initContainers"} {
			containers, found, _ := unstructured.NestedSlice(o.Object, append(slices.Clone(path), field)...)
			if !found {
				continue
			}
			for i, c := range containers {
				cm, ok := c.(map[string]any)
				if !ok {
					continue
				}
				existing, _ := cm["env"].([]any)
				have := map[string]bool{}
				for _, e := range existing {
					if em, ok := e.(map[string]any); ok {
						if n, ok := em["name"].(string); ok {
							have[n] = true
						}
					}
				}
				for _, v := range vars {
					if !have[v.(map[string]any)["name"].(string)] {
						existing = append(existing, v)
					}
				}
				cm["env"] = existing
				containers[i] = cm
				injected = true
			}
			_ = unstructured.SetNestedSlice(o.Object, containers, append(slices.Clone(path), field)...)
		}
	}
	if !injected || len(secretData) == 0 {
		return
	}
	secret := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
		"metadata":   map[string]any{"name": secretName, "namespace": res.Instance.Namespace},
		"stringData": secretData,
	}}
	secret.SetLabels(map[string]string{
		LabelManagedBy: ManagedByValue, LabelApp: res.App, LabelInstance: res.Instance.Name,
		LabelApplySetPartOf: res.ApplySet.ID,
	})
	res.Objects = append([]*unstructured.Unstructured{secret}, res.Objects...)
	if len(res.Sources) > 0 {
		res.Sources = append([]string{res.App + " (env injected by roro)"}, res.Sources...)
	}
}
