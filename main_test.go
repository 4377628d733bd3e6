package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// runCLI runs roro in-process and returns its exit code, stdout and stderr.
func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestCLIExitCodesAndMessages(t *testing.T) {
	// No display here, whatever the desktop the tests run from: `roro` alone must say so.
	t.Setenv("DISPLAY", "")
	t.Setenv("WAYLAND_DISPLAY", "")
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout string // substring expected on stdout
		stderr string // substring expected on stderr
	}{
		{"help", []string{"--help"}, exitOK, "Usage:\n  roro [flags]", ""},
		{"help lists version", []string{"--help"}, exitOK, "version", ""},
		{"version", []string{"version"}, exitOK, "roro dev (go", ""},
		{"unknown command", []string{"frobnicate"}, exitUsage, "", `unknown command "frobnicate" for "roro"`},
		{"unknown flag", []string{"--frobnicate"}, exitUsage, "", "unknown flag: --frobnicate"},
		{"unknown flag of a subcommand", []string{"version", "--nope"}, exitUsage, "", "unknown flag: --nope"},
		{"bad output", []string{"version", "-o", "xml"}, exitUsage, "", `--output "xml" is not supported`},
		{"arguments to version", []string{"version", "extra"}, exitUsage, "", `"roro version" takes no arguments`},
		{"missing workspace", []string{"--workspace", "testdata/none"}, exitFail, "", "testdata/none/roro.json"},
		{"overview", []string{"--workspace", "fixtures/demo", "apps"}, exitOK, "Workspace demo", ""},
		{"window without a display", []string{"--workspace", "fixtures/demo"}, exitFail, "", "no display"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, tt.args...)
			if code != tt.code {
				t.Errorf("exit code %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, out, errOut)
			}
			if !strings.Contains(out, tt.stdout) {
				t.Errorf("stdout lacks %q:\n%s", tt.stdout, out)
			}
			if !strings.Contains(errOut, tt.stderr) {
				t.Errorf("stderr lacks %q:\n%s", tt.stderr, errOut)
			}
		})
	}
}

func TestOverviewOfTheDemoWorkspace(t *testing.T) {
	code, out, errOut := runCLI(t, "--workspace", "fixtures/demo", "apps", "-o", "json")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var got struct {
		Workspace    string       `json:"workspace"`
		Environments []string     `json:"environments"`
		Apps         []appSummary `json:"apps"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out)
	}
	if got.Workspace != "demo" || strings.Join(got.Environments, ",") != "dev,staging" {
		t.Errorf("workspace %q environments %v", got.Workspace, got.Environments)
	}
	engines := map[string]string{}
	for _, a := range got.Apps {
		engines[a.Name] = a.Engine
	}
	want := map[string]string{"web": "handlebars", "api": "go", "db": "jinja"}
	for name, engine := range want {
		if engines[name] != engine {
			t.Errorf("app %s: engine %q, want %q (apps: %v)", name, engines[name], engine, engines)
		}
	}
}

// TestLastWorkspace: with no --workspace and no workspace in the current folder, the desktop
// app opens the workspace it opened last.
func TestLastWorkspace(t *testing.T) {
	state := t.TempDir()
	t.Chdir(t.TempDir()) // no roro.json here or above
	opts := &options{}
	if err := lastWorkspace(opts, state); err != nil || opts.workspace != "" {
		t.Fatalf("with no last workspace: %q %v", opts.workspace, err)
	}
	if err := os.WriteFile(filepath.Join(state, lastWorkspaceFile), []byte("/somewhere/demo\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := lastWorkspace(opts, state); err != nil || opts.workspace != "/somewhere/demo" {
		t.Errorf("last workspace %q %v", opts.workspace, err)
	}
	given := &options{workspace: "fixtures/demo"}
	if err := lastWorkspace(given, state); err != nil || given.workspace != "fixtures/demo" {
		t.Errorf("--workspace lost to the last one: %q", given.workspace)
	}
}
