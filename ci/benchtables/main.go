// Command benchtables rewrites the figures of README.md's Benchmarks section from the output
// of `go test -bench` (as ci/bench writes it to bench.out), so the README only ever shows
// measured figures, each with its spread, and the machine they were measured on.
//
//	go run ./ci/benchtables [-readme README.md] [-print] [bench.out]
//
// It reads the result lines (BenchmarkName-N  iterations  value unit …: the metrics the
// benchmarks report with b.ReportMetric) and the bench-* lines ci/bench prints about the
// machine and the run, then replaces each region of the README between <!-- bench:NAME -->
// and <!-- /bench:NAME --> whose benchmark is in the input with the region's template filled
// in, followed by a line that says where and when it was measured (each region says it:
// a later run of some benchmarks only leaves the others as they were). A region whose
// benchmark is not in the input keeps its text; a template that names a metric the input
// lacks is an error, and nothing is written. With -print it writes the regions it would
// replace to standard output and leaves the README alone.
//
// To cover another benchmark, add a region: a name, the benchmark, and a template (see
// regions below), and put the markers where its figures go in the README.
package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"regexp"
	"strconv"
	"strings"
	"text/template"
)

// region is a part of the README the script owns.
type region struct {
	// name is the marker's: <!-- bench:name --> … <!-- /bench:name -->.
	name string
	// benchmark is the benchmark whose metrics fill it, without the -GOMAXPROCS suffix.
	benchmark string
	// text is a text/template; its functions (see funcs) read the benchmark's metrics.
	text string
}

// regions are the README's generated parts, in the order they are reported.
var regions = []region{
	{name: "up50", benchmark: "BenchmarkUp50", text: `
| {{int "pairs"}} pairs, order alternated | min | median | max |
|---|---|---|---|
| ` + "`roro up`" + ` | {{ms "roro-ms-min"}} | {{ms "roro-ms-median"}} | {{ms "roro-ms-max"}} |
| ` + "`kubectl apply --server-side` + `kubectl wait`" + ` | {{ms "kubectl-ms-min"}} | {{ms "kubectl-ms-median"}} | {{ms "kubectl-ms-max"}} |
| roro/kubectl, pair by pair (target: at most 0.5) | {{ratio "roro/kubectl-min"}} | {{ratio "roro/kubectl-median"}} | {{ratio "roro/kubectl-max"}} |
`},
	{name: "render", benchmark: "BenchmarkRenderVsHelm", text: `
| {{int "pairs"}} pairs, order alternated | min | median | max | per manifest (median) |
|---|---|---|---|---|
| ` + "`roro render`" + ` | {{ms "roro-ms-min"}} | {{ms "roro-ms-median"}} | {{ms "roro-ms-max"}} | {{perManifest "roro-ms-median"}} |
| ` + "`helm template`" + ` | {{ms "helm-ms-min"}} | {{ms "helm-ms-median"}} | {{ms "helm-ms-max"}} | {{perManifest "helm-ms-median"}} |
| roro/helm, pair by pair | {{ratio "roro/helm-min"}} | {{ratio "roro/helm-median"}} | {{ratio "roro/helm-max"}} | |
| both on one core (` + "`taskset -c 0`" + `, roro's workers included): ` + "`roro render`" + ` | {{ms "1core-roro-ms-min"}} | {{ms "1core-roro-ms-median"}} | {{ms "1core-roro-ms-max"}} | {{perManifest "1core-roro-ms-median"}} |
| one core: ` + "`helm template`" + ` | {{ms "1core-helm-ms-min"}} | {{ms "1core-helm-ms-median"}} | {{ms "1core-helm-ms-max"}} | {{perManifest "1core-helm-ms-median"}} |
| one core: roro/helm, pair by pair | {{ratio "1core-roro/helm-min"}} | {{ratio "1core-roro/helm-median"}} | {{ratio "1core-roro/helm-max"}} | |
`},
	{name: "render-workers", benchmark: "BenchmarkWorkspace500", text: `
{{int "pairs"}} pairs, order alternated, median (min–max): with the worker processes
{{spread "workers-ms"}}, in-process {{spread "inproc-ms"}}; workers/in-process, pair by pair,
{{ratioSpread "workers/inproc"}}.
`},
	{name: "forward-throughput", benchmark: "BenchmarkThroughput256MiB", text: `
| 256 MiB each way, {{int "rounds"}} rounds, order alternated | min | median | max |
|---|---|---|---|
| roro's forward | {{dec "roro-MB/s-min" 0}} MB/s | {{dec "roro-MB/s-median" 0}} MB/s | {{dec "roro-MB/s-max" 0}} MB/s |
| ` + "`kubectl port-forward`" + ` | {{dec "kubectl-MB/s-min" 0}} MB/s | {{dec "kubectl-MB/s-median" 0}} MB/s | {{dec "kubectl-MB/s-max" 0}} MB/s |
| roro/kubectl, round by round | {{ratio "roro/kubectl-min"}} | {{ratio "roro/kubectl-median"}} | {{ratio "roro/kubectl-max"}} |
| direct loopback to the pod's server | {{dec "direct-MB/s-min" 0}} MB/s | {{dec "direct-MB/s-median" 0}} MB/s | {{dec "direct-MB/s-max" 0}} MB/s |
`},
	{name: "forward-latency", benchmark: "BenchmarkLatency1000", text: `
1,000 short connections each, in rounds of 100 alternating which goes first: roro p50
{{dec "roro-p50-ms" 2}} ms, p99 {{dec "roro-p99-ms" 2}} ms; kubectl p50 {{dec "kubectl-p50-ms" 2}} ms, p99
{{dec "kubectl-p99-ms" 2}} ms.
`},
	{name: "forward-concurrent", benchmark: "BenchmarkConcurrent200", text: `
200 connections at once: roro {{int "roro-errors"}} errors, kubectl {{int "kubectl-errors"}} errors.
`},
	{name: "forward-churn", benchmark: "BenchmarkPodChurn", text: `
| the pod's server does (per run: 3 runs each, sides alternated) | forward | requests | failed | p50 | p99 | max | longest past the next pod's readiness | longest outage | longest pod replacement |
|---|---|---|---|---|---|---|---|---|---|
| echoes until closed | roro, WebSocket | {{int "roro-websocket-requests/run"}} | {{dec "roro-websocket-failed/run" 1}} | {{dec "roro-websocket-p50-ms" 1}} ms | {{dec "roro-websocket-p99-ms" 1}} ms | {{int "roro-websocket-max-ms"}} ms | {{int "roro-websocket-after-ready-max-ms"}} ms | {{int "roro-websocket-outage-ms"}} ms | {{int "roro-websocket-replacement-max-ms"}} ms |
| echoes until closed | roro, SPDY | {{int "roro-spdy-requests/run"}} | {{dec "roro-spdy-failed/run" 1}} | {{dec "roro-spdy-p50-ms" 1}} ms | {{dec "roro-spdy-p99-ms" 1}} ms | {{int "roro-spdy-max-ms"}} ms | {{int "roro-spdy-after-ready-max-ms"}} ms | {{int "roro-spdy-outage-ms"}} ms | {{int "roro-spdy-replacement-max-ms"}} ms |
| echoes until closed | ` + "`kubectl port-forward`" + `, restarted at once when it exits | {{int "kubectl-requests/run"}} | {{dec "kubectl-failed/run" 1}} | {{dec "kubectl-p50-ms" 1}} ms | {{dec "kubectl-p99-ms" 1}} ms | {{int "kubectl-max-ms"}} ms | {{int "kubectl-after-ready-max-ms"}} ms | {{int "kubectl-outage-ms"}} ms | {{int "kubectl-replacement-max-ms"}} ms |
| answers, then closes | roro, WebSocket | {{int "answer-roro-websocket-requests/run"}} | {{dec "answer-roro-websocket-failed/run" 1}} | {{dec "answer-roro-websocket-p50-ms" 1}} ms | {{dec "answer-roro-websocket-p99-ms" 1}} ms | {{int "answer-roro-websocket-max-ms"}} ms | {{int "answer-roro-websocket-after-ready-max-ms"}} ms | {{int "answer-roro-websocket-outage-ms"}} ms | {{int "answer-roro-websocket-replacement-max-ms"}} ms |
| answers, then closes | roro, SPDY | {{int "answer-roro-spdy-requests/run"}} | {{dec "answer-roro-spdy-failed/run" 1}} | {{dec "answer-roro-spdy-p50-ms" 1}} ms | {{dec "answer-roro-spdy-p99-ms" 1}} ms | {{int "answer-roro-spdy-max-ms"}} ms | {{int "answer-roro-spdy-after-ready-max-ms"}} ms | {{int "answer-roro-spdy-outage-ms"}} ms | {{int "answer-roro-spdy-replacement-max-ms"}} ms |
| answers, then closes | ` + "`kubectl port-forward`" + `, restarted at once when it exits | {{int "answer-kubectl-requests/run"}} | {{dec "answer-kubectl-failed/run" 1}} | {{dec "answer-kubectl-p50-ms" 1}} ms | {{dec "answer-kubectl-p99-ms" 1}} ms | {{int "answer-kubectl-max-ms"}} ms | {{int "answer-kubectl-after-ready-max-ms"}} ms | {{int "answer-kubectl-outage-ms"}} ms | {{int "answer-kubectl-replacement-max-ms"}} ms |
`},
	{name: "forward-idle", benchmark: "BenchmarkIdleForwards", text: `
10 forwards idle for 60 s: {{dec "cpu-%core" 3}} % of a core; resident memory {{dec "rss-start-MiB" 1}} MiB, {{dec "rss-growth-MiB" 2}} MiB more at the end.
`},
	{name: "snapshot", benchmark: "BenchmarkSnapshotDelay", text: `
{{int "samples"}} samples, median (min–max): {{spread "delay-ms"}}; negative delays: {{int "negative"}}.
`},
}

// result is one benchmark's result line.
type result struct {
	iterations int
	metrics    map[string]float64
}

// input is what the script reads: the results by benchmark, and the bench-* lines.
type input struct {
	results map[string]result
	machine map[string]string
}

var (
	resultLine = regexp.MustCompile(`^(Benchmark\S+?)(?:-\d+)?\s+(\d+)\s+(.*)$`)
	markerName = regexp.MustCompile(`<!-- bench:([a-z0-9-]+) -->`)
)

// parse reads go test -bench output. A benchmark that appears twice (-count) keeps its last
// result, with a warning to stderr.
func parse(r io.Reader, warn io.Writer) (*input, error) {
	in := &input{results: map[string]result{}, machine: map[string]string{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if k, v, ok := strings.Cut(line, ": "); ok && strings.HasPrefix(k, "bench-") && !strings.ContainsAny(k, " \t") {
			in.machine[strings.TrimPrefix(k, "bench-")] = strings.TrimSpace(v)
			continue
		}
		m := resultLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		n, _ := strconv.Atoi(m[2])
		fields := strings.Fields(m[3])
		if len(fields)%2 != 0 {
			return nil, fmt.Errorf("result line with an odd number of fields: %q", line)
		}
		res := result{iterations: n, metrics: map[string]float64{}}
		for i := 0; i < len(fields); i += 2 {
			v, err := strconv.ParseFloat(fields[i], 64)
			if err != nil {
				return nil, fmt.Errorf("result line %q: %w", line, err)
			}
			res.metrics[fields[i+1]] = v
		}
		if _, dup := in.results[m[1]]; dup {
			fmt.Fprintf(warn, "benchtables: %s appears more than once; its last result is used\n", m[1])
		}
		in.results[m[1]] = res
	}
	return in, sc.Err()
}

// fill renders a region's template with the benchmark's metrics.
func fill(rg region, res result) (string, error) {
	get := func(name string) (float64, error) {
		v, ok := res.metrics[name]
		if !ok {
			return 0, fmt.Errorf("%s reported no %q", rg.benchmark, name)
		}
		return v, nil
	}
	funcs := template.FuncMap{
		"ms": func(name string) (string, error) {
			v, err := get(name)
			return formatMs(v), err
		},
		"ratio": func(name string) (string, error) {
			v, err := get(name)
			return strconv.FormatFloat(v, 'f', 2, 64), err
		},
		// dec is a number with the given decimals.
		"dec": func(name string, places int) (string, error) {
			v, err := get(name)
			return strconv.FormatFloat(v, 'f', places, 64), err
		},
		"int": func(name string) (string, error) {
			v, err := get(name)
			return group(int64(math.Round(v))), err
		},
		// spread is the median of name-median, then name-min and name-max, in ms.
		"spread": func(name string) (string, error) {
			return spreadOf(get, name, func(v float64) string { return strings.TrimSuffix(formatMs(v), " ms") }, " ms")
		},
		// ratioSpread is spread for a ratio.
		"ratioSpread": func(name string) (string, error) {
			return spreadOf(get, name, func(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) }, "")
		},
		// perManifest is a time in ms divided by the benchmark's "manifests", in µs.
		"perManifest": func(name string) (string, error) {
			v, err := get(name)
			if err != nil {
				return "", err
			}
			n, err := get("manifests")
			if err != nil || n == 0 {
				return "", errors.Join(err, fmt.Errorf("%s reported no manifests", rg.benchmark))
			}
			return strconv.FormatFloat(v*1000/n, 'f', 0, 64) + " µs", nil
		},
	}
	t, err := template.New(rg.name).Funcs(funcs).Option("missingkey=error").Parse(rg.text)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	if err := t.Execute(&b, nil); err != nil {
		return "", err
	}
	return b.String(), nil
}

// spreadOf writes the median of name, then its min and max: "473 ms (461–704 ms)".
func spreadOf(get func(string) (float64, error), name string, format func(float64) string, unit string) (string, error) {
	var v [3]float64
	for i, suffix := range []string{"-median", "-min", "-max"} {
		var err error
		if v[i], err = get(name + suffix); err != nil {
			return "", err
		}
	}
	return fmt.Sprintf("%s%s (%s–%s%s)", format(v[0]), unit, format(v[1]), format(v[2]), unit), nil
}

// formatMs writes milliseconds with the precision a reader can use: whole ms from 100,
// one decimal from 10, two below.
func formatMs(v float64) string {
	switch {
	case v >= 100:
		return group(int64(math.Round(v))) + " ms"
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64) + " ms"
	default:
		return strconv.FormatFloat(v, 'f', 2, 64) + " ms"
	}
}

// group writes n with commas between thousands (1,740).
func group(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	if neg {
		s = "-" + s
	}
	return s
}

// provenance says where and when the input was measured: from the bench-* lines ci/bench
// prints, else this machine's (said so).
func provenance(in *input) (string, error) {
	m := in.machine
	how := "Measured with `ci/bench`"
	if m["nproc"] == "" {
		local, err := localMachine()
		if err != nil {
			return "", err
		}
		m = local
		how = "Measured with `go test -bench` on a machine the output does not name; this one"
	}
	if m["commit"] != "" {
		how += " at commit " + m["commit"]
	}
	if m["date"] != "" {
		how += " on " + m["date"]
	}
	s := fmt.Sprintf("%s: %s cores (nproc), %s, %s of memory", how, m["nproc"], m["cpu"], m["memory"])
	if m["load"] != "" {
		s += ", load average " + m["load"] + " (1, 5, 15 min) at the start"
	}
	return "_" + s + "._\n", nil
}

// localMachine reads nproc, the CPU model and the memory of the machine the script runs on.
func localMachine() (map[string]string, error) {
	cpuinfo, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return nil, err
	}
	meminfo, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	cores := 0
	for _, l := range strings.Split(string(cpuinfo), "\n") {
		k, v, _ := strings.Cut(l, ":")
		switch strings.TrimSpace(k) {
		case "processor":
			cores++
		case "model name":
			m["cpu"] = strings.TrimSpace(v)
		}
	}
	m["nproc"] = strconv.Itoa(cores)
	for _, l := range strings.Split(string(meminfo), "\n") {
		if v, ok := strings.CutPrefix(l, "MemTotal:"); ok {
			kb, _ := strconv.ParseFloat(strings.Fields(v)[0], 64)
			m["memory"] = strconv.FormatFloat(kb/(1<<20), 'f', 1, 64) + " GiB"
		}
	}
	return m, nil
}

// replace puts body between the markers of name in doc; false when doc has no such region.
func replace(doc []byte, name, body string) ([]byte, bool, error) {
	open, end := []byte("<!-- bench:"+name+" -->"), []byte("<!-- /bench:"+name+" -->")
	i := bytes.Index(doc, open)
	if i < 0 {
		return doc, false, nil
	}
	j := bytes.Index(doc[i:], end)
	if j < 0 {
		return nil, false, fmt.Errorf("<!-- bench:%s --> has no <!-- /bench:%s -->", name, name)
	}
	j += i
	if bytes.Contains(doc[j+len(end):], open) {
		return nil, false, fmt.Errorf("two <!-- bench:%s --> regions", name)
	}
	var out bytes.Buffer
	out.Write(doc[:i+len(open)])
	out.WriteString(body)
	out.Write(doc[j:])
	return out.Bytes(), true, nil
}

func main() {
	readme := flag.String("readme", "README.md", "the README to rewrite")
	printOnly := flag.Bool("print", false, "print the regions to standard output instead of rewriting the README")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: go run ./ci/benchtables [-readme README.md] [-print] [bench.out]   (default: standard input)")
		flag.PrintDefaults()
	}
	flag.Parse()
	if err := run(*readme, *printOnly, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "benchtables:", err)
		os.Exit(1)
	}
}

// run does the work of main.
func run(readme string, printOnly bool, args []string) error {
	var r io.Reader = os.Stdin
	switch len(args) {
	case 0:
	case 1:
		f, err := os.Open(args[0])
		if err != nil {
			return err
		}
		defer f.Close()
		r = f
	default:
		return errors.New("one input file at most")
	}
	in, err := parse(r, os.Stderr)
	if err != nil {
		return err
	}
	doc, err := os.ReadFile(readme)
	if err != nil {
		return err
	}
	for _, m := range markerName.FindAllSubmatch(doc, -1) {
		known := false
		for _, rg := range regions {
			known = known || rg.name == string(m[1])
		}
		if !known {
			return fmt.Errorf("%s has a region bench:%s that no template fills", readme, m[1])
		}
	}
	prov, err := provenance(in)
	if err != nil {
		return err
	}
	var done, kept []string
	for _, rg := range regions {
		res, ok := in.results[rg.benchmark]
		if !ok {
			kept = append(kept, rg.name+" (no "+rg.benchmark+" in the input)")
			continue
		}
		body, err := fill(rg, res)
		if err != nil {
			return err
		}
		body += "\n" + prov
		next, found, err := replace(doc, rg.name, body)
		if err != nil {
			return err
		}
		if !found {
			return fmt.Errorf("%s has no <!-- bench:%s --> region for %s", readme, rg.name, rg.benchmark)
		}
		doc = next
		done = append(done, rg.name)
		if printOnly {
			fmt.Printf("<!-- bench:%s -->%s<!-- /bench:%s -->\n\n", rg.name, body, rg.name)
		}
	}
	if len(done) == 0 {
		return errors.New("no result in the input fills a region of " + readme + " (is it go test -bench output?)")
	}
	if !printOnly {
		if err := os.WriteFile(readme, doc, 0o644); err != nil {
			return err
		}
	}
	verb := "rewrote"
	if printOnly {
		verb = "would rewrite"
	}
	fmt.Fprintf(os.Stderr, "benchtables: %s %s: %s", verb, readme, strings.Join(done, ", "))
	if len(kept) > 0 {
		fmt.Fprintf(os.Stderr, "; kept %s", strings.Join(kept, ", "))
	}
	fmt.Fprintln(os.Stderr)
	return nil
}
