package kube

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/rorokube/roro/core/render"
	"github.com/rorokube/roro/internal/testcluster"
)

// TestReadFieldErrors reads env from the sample DevEnvironment custom resource: a good read,
// and each failure, whose message must name the object and the expression and say which
// failure it is.
func TestReadFieldErrors(t *testing.T) {
	tc := testcluster.Get(t)
	ctx := testcluster.Context(t, time.Minute)
	tc.InstallDevEnvironments(t)
	c, err := Connect(ctx, ConnectOptions{Kubeconfig: tc.Kubeconfig})
	if err != nil {
		t.Fatal(err)
	}
	r := ObjectReader{Cluster: c}
	field := func(name, path string) render.ObjectField {
		return render.ObjectField{APIVersion: "demo.roro.dev/v1", Kind: "DevEnvironment", Namespace: "roro-config", Name: name, JSONPath: path}
	}
	got, err := r.ReadField(ctx, field("staging", `{.spec.tokens[?(@.name=="api")].value}`))
	if err != nil || got != "staging-token-7d21e4" {
		t.Fatalf("read = %q, %v", got, err)
	}
	if got, err := r.ReadField(ctx, field("dev", `{.spec.database.port}`)); err != nil || got != "5432" {
		t.Errorf("a number reads as %q, %v", got, err)
	}
	tests := []struct {
		name  string
		field render.ObjectField
		want  []string
	}{
		{"CRD not installed", render.ObjectField{APIVersion: "nope.roro.dev/v1", Kind: "Missing", Name: "x", Namespace: "roro-config", JSONPath: "{.spec}"},
			[]string{"Missing roro-config/x {.spec}", "is not served by the cluster", "install its CRD"}},
		{"object missing", field("prod", "{.spec.database.host}"),
			[]string{"DevEnvironment roro-config/prod {.spec.database.host}", "object not found"}},
		{"no match", field("dev", "{.spec.database.user}"),
			[]string{"DevEnvironment roro-config/dev {.spec.database.user}", "no match"}},
		{"no match in a filter", field("dev", `{.spec.tokens[?(@.name=="web")].value}`),
			[]string{`DevEnvironment roro-config/dev {.spec.tokens[?(@.name=="web")].value}`, "no match"}},
		{"several matches", field("dev", "{.spec.database.*}"),
			[]string{"DevEnvironment roro-config/dev {.spec.database.*}", "2 matches", "want one"}},
		{"bad expression", field("dev", "{.spec[}"),
			[]string{"bad JSONPath"}},
	}
	tests = append(tests, struct {
		name  string
		field render.ObjectField
		want  []string
	}{"several tokens, none shown", field("dev", "{.spec.tokens[0].*}"), []string{"2 matches", "want one"}})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := r.ReadField(context.Background(), tt.field)
			if err == nil {
				t.Fatal("no error")
			}
			if strings.Contains(err.Error(), "dev-token-0f3c9a") {
				t.Errorf("the error shows a token it matched: %v", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}
