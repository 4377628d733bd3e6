package render

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/rorokube/roro/core/workspace"
)

// imagePorts says which ports each image of the demo really listens on, given a container's
// env, with where that is written down. An image the demo starts using must be added here.
var imagePorts = map[string]struct {
	source  string
	listens func(env map[string]string) []int
}{
	"docker.io/mendhak/http-https-echo": {
		source: "https://github.com/mendhak/docker-http-https-echo#choose-your-ports",
		listens: func(env map[string]string) []int {
			return []int{envPort(env, "HTTP_PORT", 8080), envPort(env, "HTTPS_PORT", 8443)}
		},
	},
	"docker.io/library/postgres": {
		source:  "https://hub.docker.com/_/postgres",
		listens: func(map[string]string) []int { return []int{5432} },
	},
}

func envPort(env map[string]string, name string, def int) int {
	if n, err := strconv.Atoi(env[name]); err == nil {
		return n
	}
	return def
}

// imageRef is a fully qualified public image reference with a tag: a registry we know to be
// public, a repository, a tag that is not "latest".
var imageRef = regexp.MustCompile(`^(docker\.io|ghcr\.io|registry\.k8s\.io|quay\.io)/([a-z0-9._-]+/)+[a-z0-9._-]+:([A-Za-z0-9._-]+)$`)

// TestDemoRunsOnARealCluster checks, for every instance of every demo app in every
// environment, what a real cluster needs and kwok does not: every image is a fully qualified
// public reference pinned by a tag (no "latest", no invented registry); every container
// declares only ports its image listens on (imagePorts, whose source is written beside the
// image in the manifest); every container has a readiness probe and resource requests; and
// every port the app forwards reaches one of those ports through its Service.
func TestDemoRunsOnARealCluster(t *testing.T) {
	ws, err := workspace.Load(filepath.Join("..", "..", "fixtures", "demo"))
	if err != nil {
		t.Fatal(err)
	}
	for _, app := range ws.Apps {
		checkImageSources(t, app)
		for _, inst := range append([]string{workspace.DefaultInstance}, app.InstanceNames()...) {
			for _, env := range ws.EnvironmentNames() {
				if pinned := app.File.Instances[inst].Environment; pinned != "" && pinned != env {
					continue
				}
				res, err := App(context.Background(), InProcess{}, ws, app, Request{Environment: env, Instance: inst, Env: goldenEnv})
				if err != nil {
					t.Fatal(err)
				}
				where := fmt.Sprintf("%s/%s in %s", app.Name, inst, env)
				listening := checkWorkloads(t, where, res.Objects)
				checkForwards(t, where, app, res.Objects, listening, res.Instance.Suffix)
			}
		}
	}
}

// checkImageSources: each manifest that names an image says, in a comment above it, where the
// image's ports are documented, and that is the source imagePorts gives.
func checkImageSources(t *testing.T, app *workspace.App) {
	t.Helper()
	for _, m := range app.Manifests {
		b, err := os.ReadFile(filepath.Join(app.Dir, m))
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(string(b), "\n")
		for i, l := range lines {
			if !strings.Contains(l, "image:") {
				continue
			}
			above := strings.Join(lines[max(0, i-6):i], "\n")
			found := false
			for _, p := range imagePorts {
				found = found || strings.Contains(above, "source: "+p.source)
			}
			if !found {
				t.Errorf("%s/%s:%d: the image has no comment above it giving its ports' source (one of imagePorts')", app.Name, m, i+1)
			}
		}
	}
}

// checkWorkloads checks the pod templates' containers and returns, by the pod template's
// labels, each container port name and number the image really listens on.
func checkWorkloads(t *testing.T, where string, objs []*unstructured.Unstructured) []podPorts {
	t.Helper()
	var out []podPorts
	for _, o := range objs {
		if o.GetKind() != "Deployment" && o.GetKind() != "StatefulSet" {
			continue
		}
		labels, _, _ := unstructured.NestedStringMap(o.Object, "spec", "template", "metadata", "labels")
		containers, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "containers")
		pp := podPorts{labels: labels, named: map[string]int{}}
		for _, c := range containers {
			c := c.(map[string]any)
			name, image := c["name"].(string), c["image"].(string)
			at := fmt.Sprintf("%s: %s %s container %s", where, o.GetKind(), o.GetName(), name)
			m := imageRef.FindStringSubmatch(image)
			if m == nil || m[3] == "latest" {
				t.Errorf("%s: image %q is not a fully qualified public reference pinned by a tag", at, image)
				continue
			}
			repo, _, _ := strings.Cut(image, ":"+m[3])
			known, ok := imagePorts[repo]
			if !ok {
				t.Errorf("%s: image %s is not in imagePorts: add the ports it listens on, with their source", at, repo)
				continue
			}
			env := map[string]string{}
			vars, _ := c["env"].([]any)
			for _, v := range vars {
				v := v.(map[string]any)
				if s, ok := v["value"].(string); ok {
					env[v["name"].(string)] = s
				}
			}
			listens := known.listens(env)
			ports, _ := c["ports"].([]any)
			for _, p := range ports {
				p := p.(map[string]any)
				n, _ := number(p["containerPort"])
				if !slices.Contains(listens, n) {
					t.Errorf("%s: declares port %d, but %s listens on %v (%s)", at, n, repo, listens, known.source)
				}
				if pn, ok := p["name"].(string); ok {
					pp.named[pn] = n
				}
			}
			if _, ok := c["readinessProbe"]; !ok {
				t.Errorf("%s: no readinessProbe, so healthy would not mean serving", at)
			}
			if req, _, _ := unstructured.NestedStringMap(c, "resources", "requests"); req["cpu"] == "" || req["memory"] == "" {
				t.Errorf("%s: no cpu and memory requests", at)
			}
			pp.listens = append(pp.listens, listens...)
		}
		out = append(out, pp)
	}
	return out
}

// podPorts is what one pod template's containers listen on.
type podPorts struct {
	labels  map[string]string
	named   map[string]int // container port name → number
	listens []int
}

// checkForwards follows each forwarded port of the app through its Service to a container
// port, which must be one the image listens on.
func checkForwards(t *testing.T, where string, app *workspace.App, objs []*unstructured.Unstructured, pods []podPorts, suffix string) {
	t.Helper()
	for _, f := range app.File.Forwards {
		kind, name, _ := strings.Cut(f.Target, "/")
		if kind != "service" {
			t.Errorf("%s: forward %s: the demo forwards to Services only", where, f.Target)
			continue
		}
		var svc *unstructured.Unstructured
		for _, o := range objs {
			if o.GetKind() == "Service" && o.GetName() == name+suffix {
				svc = o
			}
		}
		if svc == nil {
			t.Errorf("%s: forward %s: no Service %s%s", where, f.Target, name, suffix)
			continue
		}
		selector, _, _ := unstructured.NestedStringMap(svc.Object, "spec", "selector")
		var pod *podPorts
		for i := range pods {
			matches := len(selector) > 0
			for k, v := range selector {
				matches = matches && pods[i].labels[k] == v
			}
			if matches {
				pod = &pods[i]
			}
		}
		if pod == nil {
			t.Errorf("%s: forward %s: no workload's pods match the Service's selector %v", where, f.Target, selector)
			continue
		}
		svcPorts, _, _ := unstructured.NestedSlice(svc.Object, "spec", "ports")
		for _, spec := range f.Ports {
			_, remote, _ := strings.Cut(spec, ":")
			target, ok := any(nil), false
			for _, p := range svcPorts {
				p := p.(map[string]any)
				if p["name"] == remote || fmt.Sprint(p["port"]) == remote {
					target, ok = p["targetPort"], true
				}
			}
			if !ok {
				t.Errorf("%s: forward %s %s: the Service has no such port", where, f.Target, spec)
				continue
			}
			n, isNumber := number(target)
			if !isNumber {
				named, found := pod.named[fmt.Sprint(target)]
				if !found {
					t.Errorf("%s: forward %s %s: no container port named %q", where, f.Target, spec, target)
					continue
				}
				n = named
			}
			if !slices.Contains(pod.listens, n) {
				t.Errorf("%s: forward %s %s reaches container port %d, which the image does not listen on (it listens on %v)", where, f.Target, spec, n, pod.listens)
			}
		}
	}
}

// number is a port number as a template engine left it in an object (int64, float64 or int).
func number(v any) (int, bool) {
	switch n := v.(type) {
	case int64:
		return int(n), true
	case float64:
		return int(n), true
	case int:
		return n, true
	}
	return 0, false
}
