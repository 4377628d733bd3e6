package runtime

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"sigs.k8s.io/cli-utils/pkg/kstatus/status"

	"github.com/rorokube/roro/core/kube"
)

// Instance health summaries.
const (
	Healthy     = "healthy"
	Progressing = "progressing"
	Failed      = "failed"
)

// InstanceStatus is one running instance as the cluster shows it.
type InstanceStatus struct {
	App         string   `json:"app"`
	Instance    string   `json:"instance"`
	Environment string   `json:"environment"`
	Context     string   `json:"context"`
	Namespace   string   `json:"namespace"`
	Health      string   `json:"health"`
	Objects     int      `json:"objects"`
	Ready       int      `json:"ready"`
	NotReady    []string `json:"notReady,omitempty"`
	// InWorkspace is false for an instance of an app the workspace no longer has.
	InWorkspace bool `json:"inWorkspace"`
}

// Ps lists every instance of this workspace's apps running in the clusters of its
// environments, found from the cluster's labels (not the local cache), with kstatus health.
// It refreshes the local cache from what it found.
func (r *Runtime) Ps(ctx context.Context) ([]InstanceStatus, error) {
	envs := r.WS.EnvironmentNames()
	if len(envs) == 0 {
		envs = []string{""}
	}
	seen := map[string]bool{} // contexts already listed
	var out []InstanceStatus
	var errs []error
	for _, env := range envs {
		c, err := r.Connect(ctx, env)
		if err != nil {
			errs = append(errs, fmt.Errorf("environment %s: %w", env, err))
			continue
		}
		if seen[c.Context+"@"+c.Server] {
			continue
		}
		seen[c.Context+"@"+c.Server] = true
		parents, err := c.ListParents(ctx)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, p := range parents {
			if p.Set.Workspace != "" && p.Set.Workspace != r.WS.File.Name {
				continue
			}
			st := InstanceStatus{App: p.Set.App, Instance: p.Set.Instance, Environment: p.Set.Environment,
				Context: c.Context, Namespace: p.Set.ParentNamespace, InWorkspace: r.WS.App(p.Set.App) != nil}
			members, err := c.Members(ctx, p)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			st.Objects = len(members)
			st.Health = Healthy
			for _, m := range members {
				h := kube.HealthOf(m)
				switch h.Status {
				case status.CurrentStatus:
					st.Ready++
					continue
				case status.FailedStatus:
					st.Health = Failed
				default:
					if st.Health != Failed {
						st.Health = Progressing
					}
				}
				st.NotReady = append(st.NotReady, fmt.Sprintf("%s: %s %s", kube.Ref(m), h.Status, h.Message))
			}
			out = append(out, st)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].App != out[j].App {
			return out[i].App < out[j].App
		}
		return out[i].Instance < out[j].Instance
	})
	if r.Store != nil && len(errs) == 0 {
		_ = r.Store.Update(func(st *State) {
			st.Workspace = r.WS.Dir
			st.Deployed = nil
			for _, s := range out {
				st.Record(Deployed{App: s.App, Instance: s.Instance, Environment: s.Environment, Context: s.Context,
					Namespace: s.Namespace, Objects: s.Objects, UpdatedAt: r.now()})
			}
		})
	}
	return out, errors.Join(errs...)
}
