package gitserve

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/rorokube/roro/internal/testsshd"
)

// benchWorkspace makes a workspace of apps apps with commits commits (the first adds them
// all, each later one changes one app's values), written with git fast-import.
func benchWorkspace(b *testing.B, dir string, apps, commits int) {
	b.Helper()
	var s bytes.Buffer
	blob := func(data string) {
		fmt.Fprintf(&s, "data %d\n%s\n", len(data), data)
	}
	when := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
	for c := 1; c <= commits; c++ {
		fmt.Fprintf(&s, "commit refs/heads/main\ncommitter bench <bench@example.com> %d +0000\n", when+int64(c))
		blob(fmt.Sprintf("commit %d", c))
		if c == 1 {
			s.WriteString("M 644 inline roro.json\n")
			blob(`{"name": "bench", "members": ["apps/*"]}`)
		}
		for a := range apps {
			if c != 1 && a != c%apps {
				continue
			}
			fmt.Fprintf(&s, "M 644 inline apps/app-%03d/app.json\n", a)
			blob(fmt.Sprintf(`{"manifests": ["m.yaml"], "values": {"replicas": %d, "image": "registry.example/app-%03d:1.%d"}}`, c%5+1, a, c))
			if c == 1 {
				fmt.Fprintf(&s, "M 644 inline apps/app-%03d/m.yaml\n", a)
				blob(fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app-%03d\ndata:\n  replicas: \"{{ .Values.replicas }}\"\n  image: {{ .Values.image }}\n", a))
			}
		}
	}
	for _, args := range [][]string{{"init", "--quiet", "--initial-branch=main", dir}} {
		if out, err := exec.Command("git", args...).CombinedOutput(); err != nil {
			b.Fatal(err, string(out))
		}
	}
	imp := exec.Command("git", "-C", dir, "fast-import", "--quiet")
	imp.Stdin = &s
	if out, err := imp.CombinedOutput(); err != nil {
		b.Fatal(err, string(out))
	}
	if out, err := exec.Command("git", "-C", dir, "reset", "--quiet", "--hard", "main").CombinedOutput(); err != nil {
		b.Fatal(err, string(out))
	}
}

// spread is min, median and max of ds.
func spread(ds []time.Duration) (time.Duration, time.Duration, time.Duration) {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[0], s[len(s)/2], s[len(s)-1]
}

// BenchmarkClone clones a workspace of 500 apps and 1,000 commits with the real git client
// through roro serve and through OpenSSH's sshd (which runs git-upload-pack for the same
// repository), order alternated, and then 20 clones at once through each. It reports each
// median and the ratio's spread (target: roro within 1.2x of sshd).
func BenchmarkClone(b *testing.B) {
	b.Setenv("HOME", b.TempDir())
	root := b.TempDir()
	dir := filepath.Join(root, "bench")
	benchWorkspace(b, dir, 500, 1000)
	key := testsshd.NewKey(b, "bench")
	settings, err := OpenSettings(filepath.Join(root, "serve.json"), time.Now)
	if err != nil {
		b.Fatal(err)
	}
	pub, _ := os.ReadFile(key.Public)
	if _, err := settings.Add(string(pub), RoleRead); err != nil {
		b.Fatal(err)
	}
	srv, err := New(Options{Addr: "127.0.0.1:0", HostKey: filepath.Join(root, "host"), Settings: settings,
		Repos: map[string]string{"bench": dir}, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = srv.Run(ctx) }()
	<-srv.Ready()
	sshd := testsshd.Start(b, key)
	kh := filepath.Join(root, "known_hosts")
	host := strings.Split(srv.Addr(), ":")
	line := fmt.Sprintf("[%s]:%s %s\n%s\n", host[0], host[1], strings.TrimSpace(string(gossh.MarshalAuthorizedKey(srv.HostKey()))), sshd.HostKeyLine)
	if err := os.WriteFile(kh, []byte(line), 0o600); err != nil {
		b.Fatal(err)
	}
	env := append(os.Environ(), "GIT_SSH_COMMAND="+testsshd.SSHCommand(key, kh))
	urls := map[string]string{"roro": "ssh://git@" + srv.Addr() + "/bench", "sshd": sshd.URL(dir)}
	var n atomic.Int64
	clone := func(which string) time.Duration {
		to := filepath.Join(root, fmt.Sprintf("c%d", n.Add(1)))
		cmd := exec.Command("git", "clone", "--quiet", urls[which], to)
		cmd.Env = env
		start := time.Now()
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("clone through %s: %v\n%s", which, err, out)
		}
		d := time.Since(start)
		os.RemoveAll(to)
		return d
	}
	many := func(which string) time.Duration {
		start := time.Now()
		var wg sync.WaitGroup
		for range 20 {
			wg.Go(func() { clone(which) })
		}
		wg.Wait()
		return time.Since(start)
	}
	_ = clone("roro") // warm both: page cache, the pack
	_ = clone("sshd")
	var roro, ssh, ratios []time.Duration
	b.ResetTimer()
	for i := range b.N {
		order := []string{"roro", "sshd"}
		if i%2 == 1 {
			order = []string{"sshd", "roro"}
		}
		got := map[string]time.Duration{}
		for _, w := range order {
			got[w] = clone(w)
		}
		roro, ssh = append(roro, got["roro"]), append(ssh, got["sshd"])
		ratios = append(ratios, time.Duration(float64(got["roro"])/float64(got["sshd"])*1000))
	}
	b.StopTimer()
	_, rMed, _ := spread(roro)
	_, sMed, _ := spread(ssh)
	lo, med, hi := spread(ratios)
	b.ReportMetric(float64(rMed.Milliseconds()), "roro-ms/clone")
	b.ReportMetric(float64(sMed.Milliseconds()), "sshd-ms/clone")
	b.ReportMetric(float64(lo)/1000, "roro/sshd-min")
	b.ReportMetric(float64(med)/1000, "roro/sshd-median")
	b.ReportMetric(float64(hi)/1000, "roro/sshd-max")
	// 20 at once, twice each, order alternated (roro, sshd, sshd, roro).
	r20 := many("roro")
	s20 := many("sshd") + many("sshd")
	r20 += many("roro")
	b.ReportMetric(float64(r20.Milliseconds())/2, "roro-ms/20-clones")
	b.ReportMetric(float64(s20.Milliseconds())/2, "sshd-ms/20-clones")
}
