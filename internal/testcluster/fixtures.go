package testcluster

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// FixturesDir returns the repository's fixtures folder, found from the test's working folder.
func FixturesDir(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for ; ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "fixtures", "crds")); err == nil {
			return filepath.Join(dir, "fixtures")
		}
		if filepath.Dir(dir) == dir {
			t.Fatal("no fixtures/crds in this folder or any parent")
		}
	}
}

// InstallDevEnvironments applies the sample DevEnvironment CRD of fixtures/crds, waits until
// it serves, and applies its objects (one per environment, in namespace roro-config).
func (c *Cluster) InstallDevEnvironments(t testing.TB) {
	t.Helper()
	ctx := Context(t, time.Minute)
	crds := filepath.Join(FixturesDir(t), "crds")
	if _, err := c.ApplyFile(ctx, "", filepath.Join(crds, "devenvironment.crd.yaml")); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitCRDEstablished(ctx, "devenvironments.demo.roro.dev"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ApplyFile(ctx, "", filepath.Join(crds, "devenvironments.yaml")); err != nil {
		t.Fatal(err)
	}
}
