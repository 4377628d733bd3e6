package sandbox

import (
	"encoding/json"
	"net/http"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// echoAnswer answers r for pod the way the demo's HTTP image (mendhak/http-https-echo) does:
// a JSON echo of the request, the container's host name (the pod's name) under "os", and,
// when a container of the pod sets ECHO_INCLUDE_ENV_VARS, its environment under "env" (the
// values written in the pod spec; a value taken from a Secret or elsewhere is not shown,
// where the real image would print it). So the window, curl and a browser see the same shape
// on the sandbox as on a real cluster.
func echoAnswer(pod *corev1.Pod) http.HandlerFunc {
	var env map[string]string
	for _, c := range pod.Spec.Containers {
		include := false
		vars := map[string]string{}
		for _, e := range c.Env {
			if e.ValueFrom == nil {
				vars[e.Name] = e.Value
			}
			include = include || e.Name == "ECHO_INCLUDE_ENV_VARS" && e.Value != "" && e.Value != "0" && e.Value != "false"
		}
		if include {
			env = vars
		}
	}
	return func(w http.ResponseWriter, r *http.Request) {
		headers := map[string]string{}
		for k, v := range r.Header {
			headers[strings.ToLower(k)] = strings.Join(v, ", ")
		}
		query := map[string]string{}
		for k, v := range r.URL.Query() {
			query[k] = strings.Join(v, ", ")
		}
		protocol := "http"
		if r.TLS != nil {
			protocol = "https"
		}
		answer := map[string]any{
			"path":     r.URL.Path,
			"method":   r.Method,
			"headers":  headers,
			"query":    query,
			"hostname": r.Host,
			"protocol": protocol,
			"os":       map[string]string{"hostname": pod.Name},
			"sandbox":  "kwok runs no container: the Roro sandbox answers for pod " + pod.Namespace + "/" + pod.Name + " as its image would",
		}
		if env != nil {
			answer["env"] = env
		}
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(answer)
	}
}
