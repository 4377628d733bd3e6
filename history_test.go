package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rorokube/roro/internal/testfs"
)

// TestChangeCommands drives the change and history commands as a user would on a new
// workspace, checking each against the real git client: every change is one commit, a bad
// one is refused with its reason and exit 1, history and show agree with git, and revert
// undoes a change.
func TestChangeCommands(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	dir := filepath.Join(t.TempDir(), "ws")
	if code, _, errOut := runCLI(t, "init", dir); code != exitOK {
		t.Fatal(errOut)
	}
	ws := []string{"--workspace", dir}
	gitLog := func() []string {
		out, err := exec.Command("git", "-C", dir, "log", "--format=%h %s").Output()
		if err != nil {
			t.Fatal(err)
		}
		return strings.Split(strings.TrimSpace(string(out)), "\n")
	}
	for _, step := range []struct {
		args   []string
		code   int
		out    string // on stdout, or stderr when code != 0
		commit bool
	}{
		{[]string{"set", "hello", "replicas=3", "image=nginx:1.28"}, exitOK, "Set replicas=3, image=nginx:1.28 of app hello", true},
		{[]string{"instance", "add", "hello", "pr-1", "--env", "staging", "--set", "replicas=1,debug=true"}, exitOK, "Add instance pr-1 of app hello (environment staging)", true},
		{[]string{"instance", "add", "hello", "pr-1"}, exitFail, "app hello already has an instance pr-1", false},
		{[]string{"instance", "add", "hello", "pr-2", "--env", "prod"}, exitFail, `"prod" is not an environment`, false},
		{[]string{"set", "nope", "a=1"}, exitFail, `no app "nope"`, false},
		{[]string{"set", "hello"}, exitUsage, "needs an app and at least one KEY=VALUE", false},
		{[]string{"set", "hello", "a=1", "-o", "json"}, exitUsage, "prints text only", false},
		{[]string{"instance", "rm", "hello", "pr-1"}, exitOK, "Remove instance pr-1 of app hello", true},
		{[]string{"history", "-o", "yaml"}, exitUsage, `--output "yaml" is not supported`, false},
		{[]string{"show", "nope"}, exitFail, `no commit "nope"`, false},
	} {
		before := gitLog()
		code, out, errOut := runCLI(t, append(ws, step.args...)...)
		got := out
		if step.code != exitOK {
			got = errOut
		}
		if code != step.code || !strings.Contains(got, step.out) {
			t.Errorf("roro %s: exit %d, %q%q; want exit %d and %q", strings.Join(step.args, " "), code, out, errOut, step.code, step.out)
		}
		after := gitLog()
		if made := len(after) - len(before); made != map[bool]int{true: 1, false: 0}[step.commit] {
			t.Errorf("roro %s made %d commits", strings.Join(step.args, " "), made)
		}
		if step.commit && !strings.HasSuffix(after[0], step.out) {
			t.Errorf("git log's newest is %q, want %q", after[0], step.out)
		}
	}
	// history agrees with git log; an app's history has its commits only.
	_, out, _ := runCLI(t, append(ws, "history", "-o", "json")...)
	var hist []struct{ Hash, Subject string }
	if err := json.Unmarshal([]byte(out), &hist); err != nil {
		t.Fatal(err, out)
	}
	log := gitLog()
	if len(hist) != len(log) || len(hist) != 4 {
		t.Fatalf("history has %d commits, git log %d (want 4)", len(hist), len(log))
	}
	for i := range hist {
		if !strings.HasPrefix(hist[i].Hash, strings.Fields(log[i])[0]) || !strings.HasSuffix(log[i], hist[i].Subject) {
			t.Errorf("history[%d] = %v, git log %q", i, hist[i], log[i])
		}
	}
	code, out, _ := runCLI(t, append(ws, "history", "hello", "-n", "1", "-p")...)
	if code != exitOK || !strings.Contains(out, "Remove instance pr-1") || !strings.Contains(out, `-    "pr-1": {`) || strings.Contains(out, "Create workspace") {
		t.Errorf("history hello -n 1 -p:\n%s", out)
	}
	first := strings.Fields(log[len(log)-2])[0] // the set
	code, out, _ = runCLI(t, append(ws, "show", first)...)
	if code != exitOK || !strings.Contains(out, "Set replicas=3") || !strings.Contains(out, `+    "replicas": 3`) {
		t.Errorf("show %s:\n%s", first, out)
	}
	// Revert the removal: pr-1 is back.
	if code, out, errOut := runCLI(t, append(ws, "revert", "HEAD")...); code != exitOK || !strings.Contains(out, `Revert "Remove instance pr-1 of app hello"`) {
		t.Errorf("revert HEAD: exit %d, %s%s", code, out, errOut)
	}
	if code, out, _ := runCLI(t, append(ws, "apps", "-o", "json")...); code != exitOK || !strings.Contains(out, "pr-1") {
		t.Errorf("pr-1 is not back after the revert:\n%s", out)
	}
	// A later change to the same file: the first set no longer reverts cleanly.
	if code, _, errOut := runCLI(t, append(ws, "set", "hello", "replicas=4")...); code != exitOK {
		t.Fatal(errOut)
	}
	if code, _, errOut := runCLI(t, append(ws, "revert", first)...); code != exitFail || !strings.Contains(errOut, "does not apply cleanly: apps/hello/app.json changed since") {
		t.Errorf("revert of an overwritten change: exit %d, %s", code, errOut)
	}
}

// TestSyncCommand: roro sync against a bare repository on disk: the first --push creates the
// branch; a teammate's clone that diverged lists both sides and exits 1; --rebase --push
// resolves a divergence that applies cleanly.
func TestSyncCommand(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	root := t.TempDir()
	a, b, bare := filepath.Join(root, "a"), filepath.Join(root, "b"), filepath.Join(root, "remote.git")
	git := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("git", args...).CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	if code, _, errOut := runCLI(t, "init", a); code != exitOK {
		t.Fatal(errOut)
	}
	git("init", "--quiet", "--bare", "--initial-branch=main", bare)
	git("-C", a, "remote", "add", "origin", bare)
	if code, out, errOut := runCLI(t, "-w", a, "sync"); code != exitOK || !strings.Contains(out, "ahead: origin has no branch main yet") {
		t.Fatalf("sync without push: %d %s%s", code, out, errOut)
	}
	if code, out, errOut := runCLI(t, "-w", a, "sync", "--push"); code != exitOK || !strings.HasPrefix(out, "pushed:") {
		t.Fatalf("first push: %d %s%s", code, out, errOut)
	}
	git("clone", "--quiet", bare, b)
	runCLI(t, "-w", a, "set", "hello", "replicas=5")
	runCLI(t, "-w", a, "sync", "--push")
	// The teammate edits another file in an editor and commits it with git.
	rj := filepath.Join(b, "roro.json")
	data, err := os.ReadFile(rj)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(rj, []byte(strings.Replace(string(data), `"logLevel": "info"`, `"logLevel": "warn"`, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	git("-C", b, "-c", "user.name=b", "-c", "user.email=b@b", "commit", "--quiet", "-am", "Quieter staging logs")
	code, out, errOut := runCLI(t, "-w", b, "sync", "--push")
	if code != exitFail || !strings.Contains(out, "here, not on origin/main:") || !strings.Contains(out, "Quieter staging logs") ||
		!strings.Contains(out, "on origin/main, not here:") || !strings.Contains(out, "Set replicas=5 of app hello") || !strings.Contains(errOut, "diverged") {
		t.Fatalf("diverged sync: exit %d\n%s%s", code, out, errOut)
	}
	if code, out, errOut := runCLI(t, "-w", b, "sync", "--rebase", "--push", "-o", "json"); code != exitOK || !strings.Contains(out, `"state": "rebased"`) {
		t.Fatalf("rebase: exit %d\n%s%s", code, out, errOut)
	}
}

// TestInitInPlace: init in the current, empty folder fills it in place (the shell stays in a
// folder that exists, and the printed next step works); a folder with files is refused,
// naming them; inside another git repository init refuses unless --nested.
func TestInitInPlace(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	empty := filepath.Join(t.TempDir(), "empty")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	before, _ := os.Stat(empty)
	t.Chdir(empty)
	code, out, errOut := runCLI(t, "init")
	if code != exitOK {
		t.Fatalf("init in an empty current folder: %d %s", code, errOut)
	}
	wd, err := os.Getwd()
	if after, statErr := os.Stat(empty); err != nil || statErr != nil || !os.SameFile(before, after) || wd != empty {
		t.Fatalf("the current folder was replaced: getwd %q %v, stat %v", wd, err, statErr)
	}
	next := strings.Fields(out[strings.Index(out, "Next: ")+len("Next: "):])
	if code, _, errOut := runCLI(t, next[1:]...); code != exitOK {
		t.Errorf("the printed next step %v: %d %s", next, code, errOut)
	}
	// Not empty: refused, naming what is there, nothing added.
	full := t.TempDir()
	if err := os.WriteFile(filepath.Join(full, "notes.txt"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := runCLI(t, "init", full); code != exitFail || !strings.Contains(errOut, "is not empty (it has notes.txt)") {
		t.Errorf("init in a folder with a file: %d %s", code, errOut)
	}
	if entries, _ := os.ReadDir(full); len(entries) != 1 {
		t.Errorf("a refused init left %d entries", len(entries))
	}
	// Inside a repository: refused without --nested.
	inner := filepath.Join(empty, "apps", "sub-workspace")
	if code, _, errOut := runCLI(t, "init", inner); code != exitFail || !strings.Contains(errOut, "is inside the git repository at "+empty) {
		t.Errorf("init inside a repository: %d %s", code, errOut)
	}
	if _, err := os.Stat(inner); !os.IsNotExist(err) {
		t.Error("a refused init made the folder")
	}
	if code, _, errOut := runCLI(t, "init", "--nested", inner); code != exitOK {
		t.Errorf("init --nested: %d %s", code, errOut)
	}
}

// TestSetFlags: render's --set follows Helm (commas, no float or leading-zero mangling,
// `key=` an empty string), with --set-string and --set-file (issue 12, item 3).
func TestSetFlags(t *testing.T) {
	dir := testfs.Layout(t, map[string]string{
		"roro.json":       `{"name": "s", "members": ["apps/*"]}`,
		"apps/a/app.json": `{"manifests": ["m.yaml"], "values": {"replicas": 1}}`,
		"apps/a/m.yaml":   "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata:\n  values: {{ .Values | toJson | quote }}\n",
	})
	file := filepath.Join(t.TempDir(), "conf")
	if err := os.WriteFile(file, []byte("k=v"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCLI(t, "-w", dir, "render", "a", "-o", "json", "--set", "replicas=3,image=x", "--set", "tag=1.10,zip=010,inf=Infinity,empty=",
		"--set-string", "n=5", "--set-file", "conf="+file)
	if code != exitOK {
		t.Fatal(errOut)
	}
	var list struct {
		Items []struct{ Data map[string]string }
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil || len(list.Items) != 1 {
		t.Fatal(err, out)
	}
	want := `{"conf":"k=v","empty":"","image":"x","inf":"Infinity","n":"5","replicas":3,"tag":"1.10","zip":"010"}`
	if got := list.Items[0].Data["values"]; got != want {
		t.Errorf("values %s\nwant   %s", got, want)
	}
}

// TestOutputFlagChecked: every command refuses an --output it would ignore (issue 12, item
// 5), and those that write JSON say which formats they take.
func TestOutputFlagChecked(t *testing.T) {
	for _, args := range [][]string{{"up"}, {"down"}, {"diff", "a"}, {"logs", "a"}, {"forward", "a"}, {"init", "x"}, {"restart", "a"}, {"set", "a", "k=v"}, {"revert", "HEAD"}, {"serve"}} {
		code, _, errOut := runCLI(t, append(args, "-o", "banana")...)
		if code != exitUsage || !strings.Contains(errOut, "prints text only: drop --output banana") {
			t.Errorf("roro %s -o banana: exit %d, %s", args[0], code, errOut)
		}
	}
	if code, _, errOut := runCLI(t, "ps", "-o", "banana"); code != exitUsage || !strings.Contains(errOut, "use text or wide or json or yaml") {
		t.Errorf("roro ps -o banana: exit %d, %s", code, errOut)
	}
	for _, args := range [][]string{{"apps"}, {"env", "a"}, {"validate"}, {"history"}, {"sync"}, {"version"}} {
		code, _, errOut := runCLI(t, append(args, "-o", "yaml")...)
		if code != exitUsage || !strings.Contains(errOut, "use text or json") {
			t.Errorf("roro %s -o yaml: exit %d, %s", args[0], code, errOut)
		}
	}
}

// TestRenderJSONUnescaped: render -o json writes '<', '>' and '&' as they are (issue 12,
// item 7).
func TestRenderJSONUnescaped(t *testing.T) {
	dir := testfs.Layout(t, map[string]string{
		"roro.json":       `{"name": "j", "members": ["apps/*"]}`,
		"apps/a/app.json": `{"manifests": ["m.yaml"], "values": {"q": "a<b && c>d"}}`,
		"apps/a/m.yaml":   "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata:\n  q: {{ .Values.q | quote }}\n",
	})
	code, out, errOut := runCLI(t, "-w", dir, "render", "a", "-o", "json")
	if code != exitOK || !strings.Contains(out, `"q": "a<b && c>d"`) {
		t.Errorf("exit %d %s\n%s", code, errOut, out)
	}
}

// TestComposeAndKubectlHabits: -d/--detach and --wait on up, -v on down are accepted;
// -n/--namespace is refused with where namespaces come from; --version works; a mistyped
// command gets a suggestion; shell completion offers apps, environments and instances.
func TestComposeAndKubectlHabits(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	dir := filepath.Join(t.TempDir(), "ws")
	if code, _, errOut := runCLI(t, "init", dir); code != exitOK {
		t.Fatal(errOut)
	}
	gone := filepath.Join(t.TempDir(), "no-kubeconfig")
	for _, args := range [][]string{{"up", "-d"}, {"up", "--detach", "--wait"}, {"down", "-v"}} {
		// No cluster here: the flags parse, and the failure is the cluster's, not usage.
		if code, _, errOut := runCLI(t, append([]string{"-w", dir, "--kubeconfig", gone}, args...)...); code == exitUsage {
			t.Errorf("roro %v: a usage error: %s", args, errOut)
		}
	}
	for _, args := range [][]string{{"render", "hello", "-n", "x"}, {"up", "--namespace", "x"}} {
		if code, _, errOut := runCLI(t, append([]string{"-w", dir}, args...)...); code != exitUsage || !strings.Contains(errOut, "an instance's namespace comes from app.json") {
			t.Errorf("roro %v: exit %d %s", args, code, errOut)
		}
	}
	if code, out, _ := runCLI(t, "--version"); code != exitOK || !strings.HasPrefix(out, "roro ") {
		t.Errorf("--version: %d %q", code, out)
	}
	if code, _, errOut := runCLI(t, "rendr"); code != exitUsage || !strings.Contains(errOut, `(did you mean "render"?)`) {
		t.Errorf("a typo: %d %s", code, errOut)
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"__complete", "-w", dir, "render", ""}, "hello\n"},
		{[]string{"__complete", "-w", dir, "up", "--env", ""}, "dev\nstaging\n"},
		{[]string{"__complete", "-w", dir, "render", "hello", "--instance", ""}, "default\n"},
	} {
		if _, out, _ := runCLI(t, tt.args...); !strings.HasPrefix(out, tt.want) {
			t.Errorf("%v completes %q, want %q first", tt.args, out, tt.want)
		}
	}
}
