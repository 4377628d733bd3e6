package store

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rorokube/roro/core/workspace"
)

// newStore makes a workspace with `roro init`'s scaffold (app hello, environments dev and
// staging) and opens it. The clock ticks a second a call, so commits sort by time.
func newStore(t *testing.T) *Store {
	t.Helper()
	t.Setenv("HOME", t.TempDir()) // no user git config: the author is roro's
	dir := filepath.Join(t.TempDir(), "ws")
	clock := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	if err := InitWorkspace(dir, "test", clock); err != nil {
		t.Fatal(err)
	}
	s, err := Open(dir, func() time.Time { clock = clock.Add(time.Second); return clock })
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// git runs the real git client in the workspace and returns its output.
func gitOut(t *testing.T, s *Store, args ...string) string {
	t.Helper()
	out, err := exec.Command("git", append([]string{"-C", s.Dir()}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// state is what must not move when a change is refused: HEAD, the index and work tree
// status, and every file's bytes.
func state(t *testing.T, s *Store) string {
	t.Helper()
	var b strings.Builder
	b.WriteString(gitOut(t, s, "rev-parse", "HEAD"))
	b.WriteString(gitOut(t, s, "status", "--porcelain", "--untracked-files=all"))
	err := filepath.WalkDir(s.Dir(), func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			if d != nil && d.Name() == ".git" {
				return filepath.SkipDir
			}
			return err
		}
		data, err := os.ReadFile(p)
		b.WriteString(p + "\n" + string(data))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestChangesCommitOnce: each change verb makes exactly one commit with its message, the
// workspace loads after it with the change in it, the repo stays clean (git fsck --strict),
// and app.json outside "values" keeps its formatting.
func TestChangesCommitOnce(t *testing.T) {
	s := newStore(t)
	appJSON := filepath.Join(s.Dir(), "apps/hello/app.json")
	steps := []struct {
		do      func() (Commit, error)
		subject string
		files   []string
		check   func(ws *workspace.Workspace) bool
	}{
		{func() (Commit, error) {
			return s.SetValues("hello", []string{"replicas=3", "image=nginx:1.28,labels.tier=web"}, false)
		},
			"Set replicas=3, image=nginx:1.28,labels.tier=web of app hello", []string{"apps/hello/app.json"},
			func(ws *workspace.Workspace) bool {
				v := ws.App("hello").File.Values
				return v["replicas"] == 3.0 && v["image"] == "nginx:1.28" && v["labels"].(map[string]any)["tier"] == "web"
			}},
		{func() (Commit, error) { return s.SetValues("hello", []string{"tag=1.10", "labels=null"}, true) },
			"Set tag=1.10, labels=null of app hello", []string{"apps/hello/app.json"},
			func(ws *workspace.Workspace) bool {
				v := ws.App("hello").File.Values
				// --string: "1.10" stays a string, and null is the string "null".
				return v["tag"] == "1.10" && v["labels"] == "null"
			}},
		{func() (Commit, error) {
			return s.AddInstance("hello", "pr-7", workspace.Instance{Namespace: "hello-pr7", Environment: "staging", Values: map[string]any{"replicas": 1}})
		}, "Add instance pr-7 of app hello (namespace hello-pr7, environment staging)", []string{"apps/hello/app.json"},
			func(ws *workspace.Workspace) bool {
				i := ws.App("hello").File.Instances["pr-7"]
				return i.Namespace == "hello-pr7" && i.Environment == "staging"
			}},
		{func() (Commit, error) { return s.AddInstance("hello", "blue", workspace.Instance{Suffix: "-blue"}) },
			"Add instance blue of app hello (suffix -blue)", []string{"apps/hello/app.json"},
			func(ws *workspace.Workspace) bool { return ws.App("hello").File.Instances["blue"].Suffix == "-blue" }},
		{func() (Commit, error) { return s.RemoveInstance("hello", "pr-7") },
			"Remove instance pr-7 of app hello", []string{"apps/hello/app.json"},
			func(ws *workspace.Workspace) bool { _, ok := ws.App("hello").File.Instances["pr-7"]; return !ok }},
		{func() (Commit, error) { return s.SetEnvironment("prod", workspace.Environment{Context: "kind-prod"}) },
			"Set environment prod (context kind-prod)", []string{"roro.json"},
			func(ws *workspace.Workspace) bool { return ws.File.Environments["prod"].Context == "kind-prod" }},
		{func() (Commit, error) { return s.AddApp("cache", "hello") },
			"Add app cache from app hello", []string{"apps/cache/app.json", "apps/cache/manifests/hello.yaml", "apps/cache/values/staging.json"},
			func(ws *workspace.Workspace) bool {
				c := ws.App("cache")
				return c != nil && c.Namespace() == "cache" && len(c.File.Instances) == 0 && c.File.Values["replicas"] == 3.0
			}},
	}
	for i, step := range steps {
		before := strings.TrimSpace(gitOut(t, s, "rev-parse", "HEAD"))
		c, err := step.do()
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if c.Subject != step.subject || strings.Join(c.Files, " ") != strings.Join(step.files, " ") {
			t.Errorf("step %d: commit %q touching %v, want %q touching %v", i, c.Subject, c.Files, step.subject, step.files)
		}
		if parents := strings.Fields(gitOut(t, s, "log", "-1", "--format=%P")); len(parents) != 1 || parents[0] != before {
			t.Errorf("step %d: the commit's parents are %v, want the one HEAD before (%s)", i, parents, before)
		}
		if got := strings.TrimSpace(gitOut(t, s, "log", "-1", "--format=%H %an")); got != c.Hash+" roro" {
			t.Errorf("step %d: git log says %q, the store %q", i, got, c.Hash)
		}
		if st := gitOut(t, s, "status", "--porcelain"); st != "" {
			t.Errorf("step %d: work tree not clean after the change:\n%s", i, st)
		}
		ws, err := workspace.Load(s.Dir())
		if err != nil {
			t.Fatalf("step %d: the workspace does not load: %v", i, err)
		}
		if !step.check(ws) {
			t.Errorf("step %d: the change is not in the workspace", i)
		}
	}
	if n := strings.Count(gitOut(t, s, "log", "--oneline"), "\n"); n != len(steps)+1 {
		t.Errorf("%d commits, want %d (init and one a change)", n, len(steps)+1)
	}
	gitOut(t, s, "fsck", "--strict")
	data, _ := os.ReadFile(appJSON)
	if !strings.Contains(string(data), `"forwards": [ { "target": "service/hello", "ports": ["8080:http"] } ]`) {
		t.Errorf("app.json lost its formatting outside the values:\n%s", data)
	}
}

// TestBadChangesWriteNothing: a change that is wrong is refused with why, and leaves HEAD,
// the index, the work tree and every byte as they were.
func TestBadChangesWriteNothing(t *testing.T) {
	s := newStore(t)
	for _, tt := range []struct {
		name string
		do   func() (Commit, error)
		want string
	}{
		{"unknown app", func() (Commit, error) { return s.SetValues("nope", []string{"a=1"}, false) }, `no app "nope"`},
		{"bad --set syntax", func() (Commit, error) { return s.SetValues("hello", []string{"a[=1"}, false) }, "the syntax is Helm's --set"},
		{"no assignment", func() (Commit, error) { return s.SetValues("hello", nil, false) }, "give at least one KEY=VALUE"},
		{"nothing changes", func() (Commit, error) { return s.SetValues("hello", []string{"replicas=1"}, false) }, "it changes nothing"},
		{"instance name clash", func() (Commit, error) { return s.AddInstance("hello", "default", workspace.Instance{}) }, `"default" is the instance every app has`},
		{"instance name invalid", func() (Commit, error) { return s.AddInstance("hello", "Bad_Name", workspace.Instance{}) }, "not a valid instance name"},
		{"instance in an unknown environment", func() (Commit, error) {
			return s.AddInstance("hello", "x", workspace.Instance{Environment: "prod"})
		}, `"prod" is not an environment`},
		{"namespace and suffix", func() (Commit, error) {
			return s.AddInstance("hello", "x", workspace.Instance{Namespace: "a", Suffix: "-b"})
		}, "not both"},
		{"remove an instance that is not there", func() (Commit, error) { return s.RemoveInstance("hello", "x") }, "app hello has no further instances"},
		{"app exists", func() (Commit, error) { return s.AddApp("hello", "hello") }, "already has an app hello"},
		{"app from nothing", func() (Commit, error) { return s.AddApp("cache", "nope") }, `no app "nope"`},
		{"environment name", func() (Commit, error) { return s.SetEnvironment("Prod!", workspace.Environment{}) }, "not a valid environment name"},
		{"revert an unknown commit", func() (Commit, error) { return s.Revert("0123456") }, `no commit "0123456"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := state(t, s)
			_, err := tt.do()
			var ce *ChangeError
			if !errors.As(err, &ce) || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "not done, nothing was written") {
				t.Errorf("err = %v, want a ChangeError with %q", err, tt.want)
			}
			if after := state(t, s); after != before {
				t.Errorf("the refused change moved something:\nbefore\n%s\nafter\n%s", before, after)
			}
		})
	}
	// A file with edits not committed is not written over, nor committed with the change.
	appJSON := filepath.Join(s.Dir(), "apps/hello/app.json")
	data, _ := os.ReadFile(appJSON)
	mine := strings.Replace(string(data), `"group": "examples"`, `"group": "mine"`, 1)
	if err := os.WriteFile(appJSON, []byte(mine), 0o644); err != nil {
		t.Fatal(err)
	}
	before := state(t, s)
	if _, err := s.SetValues("hello", []string{"replicas=5"}, false); err == nil || !strings.Contains(err.Error(), "apps/hello/app.json has changes that are not committed") {
		t.Errorf("err = %v", err)
	}
	if after := state(t, s); after != before {
		t.Error("a change over uncommitted edits moved something")
	}
}

// TestHistoryShowRevert: history lists commits newest first (an app's only), show gives a
// commit's diff, revert undoes a commit with a new one, and a revert that no longer applies
// is refused naming the file, with nothing moved.
func TestHistoryShowRevert(t *testing.T) {
	s := newStore(t)
	c1, err := s.SetValues("hello", []string{"replicas=3"}, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetEnvironment("prod", workspace.Environment{}); err != nil {
		t.Fatal(err)
	}
	c3, err := s.SetValues("hello", []string{"image=nginx:2"}, false)
	if err != nil {
		t.Fatal(err)
	}
	all, err := s.History("", 0)
	if err != nil || len(all) != 4 || all[0].Hash != c3.Hash || all[2].Hash != c1.Hash {
		t.Fatalf("history = %v, %v", all, err)
	}
	if got := gitOut(t, s, "log", "--format=%H"); got != all[0].Hash+"\n"+all[1].Hash+"\n"+all[2].Hash+"\n"+all[3].Hash+"\n" {
		t.Errorf("history differs from git log:\n%s", got)
	}
	hello, err := s.History("hello", 0)
	if err != nil || len(hello) != 3 || hello[0].Hash != c3.Hash || hello[1].Hash != c1.Hash {
		t.Fatalf("hello's history = %v, %v (want its 2 changes and the init)", hello, err)
	}
	if last, _ := s.History("", 1); len(last) != 1 {
		t.Errorf("limit 1 gave %d", len(last))
	}
	shown, patch, err := s.Show(c1.Short())
	if err != nil || shown.Hash != c1.Hash || !strings.Contains(patch, `+    "replicas": 3`) || !strings.Contains(patch, "--- a/apps/hello/app.json") {
		t.Fatalf("show %s = %v\n%s", c1.Short(), err, patch)
	}
	if _, patch, err := s.Show(all[3].Hash); err != nil || !strings.Contains(patch, "+++ b/roro.json") {
		t.Errorf("show of the first commit: %v\n%.300s", err, patch)
	}

	// c1 and c3 both changed app.json: reverting c1 no longer applies.
	before := state(t, s)
	if _, err := s.Revert(c1.Hash); err == nil || !strings.Contains(err.Error(), "does not apply cleanly: apps/hello/app.json changed since "+c1.Short()) {
		t.Errorf("revert of an overwritten change: %v", err)
	}
	if state(t, s) != before {
		t.Error("a refused revert moved something")
	}
	r, err := s.Revert(c3.Short())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(r.Message, `Revert "Set image=nginx:2 of app hello"`) || !strings.Contains(r.Message, "This reverts commit "+c3.Hash) {
		t.Errorf("revert message %q", r.Message)
	}
	ws, err := workspace.Load(s.Dir())
	if err != nil || ws.App("hello").File.Values["image"] != "nginx:1.27" || ws.App("hello").File.Values["replicas"] != 3.0 {
		t.Errorf("after the revert: %v %v", err, ws.App("hello").File.Values)
	}
	gitOut(t, s, "fsck", "--strict")
	// Reverting the revert applies again.
	if _, err := s.Revert(r.Hash); err != nil {
		t.Errorf("revert of the revert: %v", err)
	}
}
