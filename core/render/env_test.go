package render

import (
	"context"
	"strings"
	"testing"

	"github.com/rorokube/roro/core/workspace"
)

// fakeReader answers ReadField from a map of "Kind name path" to value: pure logic, the
// real reader is tested against the control plane in core/kube.
type fakeReader map[string]string

func (f fakeReader) ReadField(_ context.Context, o ObjectField) (string, error) {
	return f[o.Kind+" "+o.Name+" "+o.JSONPath], nil
}

// TestEnvFromSecretIsSecret: a value read from a Secret is masked whether or not the source
// says "secret", and its base64 data is decoded.
func TestEnvFromSecretIsSecret(t *testing.T) {
	v := "plain"
	app := &workspace.App{Name: "a", File: workspace.AppFile{Env: []workspace.EnvSource{
		{Name: "PASSWORD", FromObject: &workspace.ObjectRef{APIVersion: "v1", Kind: "Secret", Name: "db", JSONPath: "{.data.password}"}},
		{Name: "HOST", FromObject: &workspace.ObjectRef{APIVersion: "v1", Kind: "ConfigMap", Name: "db", JSONPath: "{.data.host}"}},
		{Name: "PLAIN", Value: &v},
	}}}
	reader := fakeReader{"Secret db {.data.password}": "czNjcjN0", "ConfigMap db {.data.host}": "db.local"}
	env, err := ResolveEnv(context.Background(), app, "dev", func(string) (string, bool) { return "", false }, reader)
	if err != nil {
		t.Fatal(err)
	}
	if env.Values["PASSWORD"] != "s3cr3t" || !env.Secret["PASSWORD"] {
		t.Errorf("PASSWORD = %q, secret %v", env.Values["PASSWORD"], env.Secret["PASSWORD"])
	}
	if env.Secret["HOST"] || env.Secret["PLAIN"] || env.Values["HOST"] != "db.local" {
		t.Errorf("HOST %q secret %v, PLAIN secret %v", env.Values["HOST"], env.Secret["HOST"], env.Secret["PLAIN"])
	}
	reader["Secret db {.data.password}"] = "not base64!"
	_, err = ResolveEnv(context.Background(), app, "dev", func(string) (string, bool) { return "", false }, reader)
	if err == nil || !strings.Contains(err.Error(), "app a: env PASSWORD: Secret db {.data.password}: not base64") {
		t.Errorf("error %v", err)
	}
}
