// Package forward runs port forwards that survive pod churn. A Forward binds its local
// listeners once and keeps them bound for as long as it runs; it follows the target's pods
// with a watch, sends each new local connection to a Ready pod (holding it while none is),
// carries many local connections over one upgraded connection per pod (WebSocket first, SPDY
// as the fallback), and reports a status that tells the truth.
package forward

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Kinds of target a forward accepts, as kubectl names them.
const (
	KindService     = "service"
	KindDeployment  = "deployment"
	KindStatefulSet = "statefulset"
	KindPod         = "pod"
)

// Spec says what to forward.
type Spec struct {
	// Namespace of the target.
	Namespace string
	// Target is "service/NAME", "deployment/NAME", "statefulset/NAME" or "pod/NAME"
	// (svc, deploy, sts and po work too).
	Target string
	// Ports are "LOCAL:REMOTE" pairs or a lone "REMOTE"; REMOTE is a number or a port name,
	// LOCAL empty or 0 picks a free port.
	Ports []string
	// Address is the local address to bind; default 127.0.0.1.
	Address string
	// Hold is how long a connection that arrives while no pod is Ready waits for one;
	// default 30 s.
	Hold time.Duration
}

// target is a parsed Spec.Target.
type target struct {
	kind, name string
}

func (t target) String() string { return t.kind + "/" + t.name }

func parseTarget(s string) (target, error) {
	kind, name, ok := strings.Cut(s, "/")
	if !ok || name == "" {
		return target{}, fmt.Errorf("target %q: want KIND/NAME, such as service/web", s)
	}
	switch strings.ToLower(kind) {
	case "service", "services", "svc":
		kind = KindService
	case "deployment", "deployments", "deploy":
		kind = KindDeployment
	case "statefulset", "statefulsets", "sts":
		kind = KindStatefulSet
	case "pod", "pods", "po":
		kind = KindPod
	default:
		return target{}, fmt.Errorf("target %q: kind %q is not one of service, deployment, statefulset, pod", s, kind)
	}
	return target{kind: kind, name: name}, nil
}

// portSpec is one parsed port pair: Local 0 picks a free port; Remote is a number or a name.
type portSpec struct {
	Local  int
	Remote string
}

func parsePorts(ports []string) ([]portSpec, error) {
	if len(ports) == 0 {
		return nil, fmt.Errorf("no ports: give LOCAL:REMOTE pairs, such as 8080:http")
	}
	var out []portSpec
	for _, p := range ports {
		local, remote, pair := strings.Cut(p, ":")
		if !pair {
			local, remote = "", p
		}
		ps := portSpec{Remote: remote}
		if local != "" {
			n, err := strconv.Atoi(local)
			if err != nil || n < 0 || n > 65535 {
				return nil, fmt.Errorf("port %q: local port %q is not a number from 0 to 65535", p, local)
			}
			ps.Local = n
		} else if n, err := strconv.Atoi(remote); err == nil && !pair {
			ps.Local = n // a lone number forwards the same port, as kubectl does
		}
		if remote == "" {
			return nil, fmt.Errorf("port %q: the remote port is missing", p)
		}
		if n, err := strconv.Atoi(remote); err == nil && (n < 1 || n > 65535) {
			return nil, fmt.Errorf("port %q: remote port %d is out of range", p, n)
		}
		out = append(out, ps)
	}
	return out, nil
}

// Check reports what is wrong with spec's target and ports, without starting anything, so a
// workspace can be checked before anything is applied.
func (spec Spec) Check() error {
	if _, err := parseTarget(spec.Target); err != nil {
		return err
	}
	_, err := parsePorts(spec.Ports)
	return err
}
