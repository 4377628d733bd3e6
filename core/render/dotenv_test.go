package render

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestDotEnvRunsNothingWhenSourced: a .env file of hostile values, sourced by bash, runs no
// command and gives back every value exactly; a value with a control character is refused.
func TestDotEnvRunsNothingWhenSourced(t *testing.T) {
	dir := t.TempDir()
	pwned := filepath.Join(dir, "pwned")
	values := map[string]string{
		"SUBST":    "$(touch " + pwned + ")",
		"BACKTICK": "`touch " + pwned + "`",
		"SEMI":     "a; touch " + pwned,
		"PIPE":     "a | touch " + pwned,
		"BRACES":   "{a,b}",
		"QUOTE":    "it's 'quoted' \"twice\"",
		"DOLLAR":   "$HOME and ${PATH}",
		"EMPTY":    "",
		"GLOB":     "*",
	}
	env := &Env{Values: values, Secret: map[string]bool{}}
	data, err := env.DotEnv()
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, ".env")
	if err := os.WriteFile(file, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, want := range values {
		out, err := exec.Command("bash", "-c", `set -a; . "$1"; printf '%s' "${!2}"`, "bash", file, name).Output()
		if err != nil {
			t.Fatalf("source the file: %v", err)
		}
		if string(out) != want {
			t.Errorf("%s: sourced %q, want %q", name, out, want)
		}
	}
	if _, err := os.Stat(pwned); err == nil {
		t.Fatal("sourcing the .env file ran a command")
	}
	bad := &Env{Values: map[string]string{"MULTI": "line one\nline two"}}
	if _, err := bad.DotEnv(); err == nil || !strings.Contains(err.Error(), "MULTI holds a control character") {
		t.Errorf("a newline in a value: %v", err)
	}
}
