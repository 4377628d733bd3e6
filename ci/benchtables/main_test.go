package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const sample = `bench-nproc: 2
bench-cpu: Test CPU
bench-memory: 8.0 GiB
bench-commit: abc123
bench-date: 2026-01-02
goos: linux
pkg: github.com/rorokube/roro/core/runtime
BenchmarkUp50-2   	       1	94430198404 ns/op	      2317 kubectl-ms-max	      1820 kubectl-ms-median	      1705 kubectl-ms-min	         5.000 pairs	       839.1 roro-ms-max	       578.3 roro-ms-median	       494.3 roro-ms-min	         0.3821 roro/kubectl-max	         0.3175 roro/kubectl-median	         0.2808 roro/kubectl-min
--- BENCH: BenchmarkUp50-2
    bench_test.go:167: pair 0 (roro first): roro 839ms, kubectl 2.317s
BenchmarkSnapshotDelay-2   	       1	2894328670 ns/op	        68.19 delay-ms-max	         0.5750 delay-ms-median	         0.4300 delay-ms-min	         0 negative	         7.000 samples
PASS
`

// TestRewrite: the regions of benchmarks in the input are rewritten from their metrics,
// with where they were measured; the others keep their text, and so does the rest.
func TestRewrite(t *testing.T) {
	readme := filepath.Join(t.TempDir(), "README.md")
	doc := "intro\n<!-- bench:up50 -->\nold up\n<!-- /bench:up50 -->\nmiddle\n" +
		"<!-- bench:render -->\nold render\n<!-- /bench:render -->\n<!-- bench:snapshot -->old<!-- /bench:snapshot -->\nend\n"
	if err := os.WriteFile(readme, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	in := filepath.Join(t.TempDir(), "bench.out")
	if err := os.WriteFile(in, []byte(sample), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := run(readme, false, []string{in}); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(readme)
	got := string(data)
	for _, want := range []string{
		"intro\n<!-- bench:up50 -->\n| 5 pairs",
		"| `roro up` | 494 ms | 578 ms | 839 ms |",
		"| 1,705 ms | 1,820 ms | 2,317 ms |",
		"| 0.28 | 0.32 | 0.38 |",
		"_Measured with `ci/bench` at commit abc123 on 2026-01-02: 2 cores (nproc), Test CPU, 8.0 GiB of memory._\n<!-- /bench:up50 -->\nmiddle\n",
		"7 samples, median (min–max): 0.57 ms (0.43–68.2 ms); negative delays: 0.",
		"<!-- bench:render -->\nold render\n<!-- /bench:render -->",
		"<!-- /bench:snapshot -->\nend\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("README lacks %q:\n%s", want, got)
		}
	}
}

// TestMissingMetric: a template that names a metric the input lacks fails, and the README
// is not written.
func TestMissingMetric(t *testing.T) {
	readme := filepath.Join(t.TempDir(), "README.md")
	doc := "<!-- bench:up50 -->\nold\n<!-- /bench:up50 -->\n"
	if err := os.WriteFile(readme, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	in := filepath.Join(t.TempDir(), "bench.out")
	if err := os.WriteFile(in, []byte("BenchmarkUp50-2 1 5 ns/op 3 roro-ms-min\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := run(readme, false, []string{in}); err == nil || !strings.Contains(err.Error(), "reported no") {
		t.Fatalf("error %v, want a missing metric", err)
	}
	if data, _ := os.ReadFile(readme); string(data) != doc {
		t.Errorf("README changed:\n%s", data)
	}
}

// TestParse: result lines with and without the GOMAXPROCS suffix; a repeated benchmark
// keeps its last result.
func TestParse(t *testing.T) {
	in, err := parse(strings.NewReader("BenchmarkA-8 3 10 ns/op 1.5 x-ms\nBenchmarkB 1 2 ns/op\nBenchmarkA-8 3 10 ns/op 2.5 x-ms\n"), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if in.results["BenchmarkA"].metrics["x-ms"] != 2.5 || in.results["BenchmarkB"].iterations != 1 {
		t.Errorf("parsed %+v", in.results)
	}
}

// TestGroup: thousands are separated by commas.
func TestGroup(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 999: "999", 1740: "1,740", 1234567: "1,234,567", -1740: "-1,740"} {
		if got := group(n); got != want {
			t.Errorf("group(%d) = %q, want %q", n, got, want)
		}
	}
}
