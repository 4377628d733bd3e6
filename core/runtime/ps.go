package runtime

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

// InstanceStatus is one running instance as the cluster shows it, for `roro ps`.
type InstanceStatus struct {
	App         string   `json:"app"`
	Instance    string   `json:"instance"`
	Environment string   `json:"environment"`
	Context     string   `json:"context"`
	Namespace   string   `json:"namespace"`
	Health      Health   `json:"health"`
	Objects     int      `json:"objects"`
	Ready       int      `json:"ready"`
	NotReady    []string `json:"notReady,omitempty"`
	// InWorkspace is false for an instance of an app the workspace no longer has.
	InWorkspace bool `json:"inWorkspace"`
	// Created is when the instance was first applied.
	Created time.Time `json:"created,omitzero"`
}

// EnvironmentError is a failure in one environment of a workspace-wide command.
type EnvironmentError struct {
	Environment string
	Err         error
}

func (e *EnvironmentError) Error() string {
	if e.Environment == "" {
		return e.Err.Error()
	}
	return "environment " + e.Environment + ": " + e.Err.Error()
}

func (e *EnvironmentError) Unwrap() error { return e.Err }

// Ps lists every instance of this workspace's apps running in the clusters of its
// environments, found from the clusters' labels (not the local cache), with kstatus health.
// Environments are asked in parallel; one that fails is one error, naming it, and the others
// are still listed. It refreshes the local cache when every environment answered.
func (e *Engine) Ps(ctx context.Context) ([]InstanceStatus, error) {
	ws := e.Workspace()
	envs := ws.EnvironmentNames()
	if len(envs) == 0 {
		envs = []string{""}
	}
	type answer struct {
		env, server, cluster string
		list                 []InstanceView
		err                  error
	}
	answers := make([]answer, len(envs))
	var wg sync.WaitGroup
	for i, env := range envs {
		wg.Go(func() {
			c, err := e.cluster(ctx, env)
			if err != nil {
				answers[i].err = &EnvironmentError{Environment: env, Err: err}
				return
			}
			answers[i].env, answers[i].server = env, c.Server()
			answers[i].cluster = c.Context() + "@" + c.Server()
			list, err := c.Instances(ctx)
			answers[i].list = list
			if err != nil {
				answers[i].err = &EnvironmentError{Environment: env, Err: err}
			}
		})
	}
	wg.Wait()
	seen := map[string]bool{} // clusters already listed
	seenErr := map[string]bool{}
	var out []InstanceStatus
	// One API server reached through several contexts (two users, or namespaced views, of one
	// cluster) lists each instance once: as seen through its own environment's context when
	// that is one of them. The row's index in out, and whether it came from there.
	type listed struct {
		i   int
		own bool
	}
	rows := map[string]listed{}
	var errs []error
	for _, a := range answers {
		if a.err != nil {
			// Environments on the same unreachable cluster fail alike: say it once.
			msg := a.err.(*EnvironmentError).Err.Error()
			if !seenErr[msg] {
				seenErr[msg] = true
				errs = append(errs, a.err)
			}
		}
		if a.cluster == "" || seen[a.cluster] {
			continue
		}
		seen[a.cluster] = true
		for _, iv := range a.list {
			if iv.Workspace != "" && iv.Workspace != ws.File.Name {
				continue
			}
			st := InstanceStatus{App: iv.App, Instance: iv.Instance, Environment: iv.Environment, Context: iv.Context,
				Namespace: iv.Namespace, Health: iv.Health, Objects: len(iv.Objects), InWorkspace: ws.App(iv.App) != nil, Created: iv.Created}
			for _, o := range iv.Objects {
				if o.Health.Status == status.CurrentStatus {
					st.Ready++
					continue
				}
				st.NotReady = append(st.NotReady, strings.TrimSpace(fmt.Sprintf("%s: %s %s", o.Ref, o.Health.Status, o.Health.Message)))
			}
			key := a.server + " " + iv.Namespace + " " + iv.App + " " + iv.Instance
			own := iv.Environment == a.env
			if prev, ok := rows[key]; ok {
				if own && !prev.own {
					out[prev.i] = st
					rows[key] = listed{i: prev.i, own: true}
				}
				continue
			}
			rows[key] = listed{i: len(out), own: own}
			out = append(out, st)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].App != out[j].App {
			return out[i].App < out[j].App
		}
		return out[i].Instance < out[j].Instance
	})
	if e.opts.Store != nil && len(errs) == 0 {
		_ = e.opts.Store.Update(func(st *State) {
			st.Workspace = ws.Dir
			st.Deployed = nil
			for _, s := range out {
				st.Record(Deployed{App: s.App, Instance: s.Instance, Environment: s.Environment, Context: s.Context,
					Namespace: s.Namespace, Objects: s.Objects, UpdatedAt: e.opts.Now()})
			}
		})
	}
	return out, errors.Join(errs...)
}
