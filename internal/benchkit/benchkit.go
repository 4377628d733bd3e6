// Package benchkit holds what Roro's benchmarks share: the roro binary, to run it as a user
// does (its own process, beside the peer tool it is compared with), and figures reported
// with their spread, in the names ci/benchtables reads back.
package benchkit

import (
	"slices"
	"testing"
	"time"
)

// Spread is the minimum, median and maximum of a set of samples.
type Spread struct{ Min, Median, Max float64 }

// SpreadOf returns the spread of xs (the upper median for an even count); xs is not
// modified. It panics on no samples.
func SpreadOf(xs []float64) Spread {
	s := slices.Clone(xs)
	slices.Sort(s)
	return Spread{Min: s[0], Median: s[len(s)/2], Max: s[len(s)-1]}
}

// Report reports the spread of xs as three metrics: name-min, name-median and name-max.
func Report(b *testing.B, name string, xs []float64) Spread {
	s := SpreadOf(xs)
	b.ReportMetric(s.Min, name+"-min")
	b.ReportMetric(s.Median, name+"-median")
	b.ReportMetric(s.Max, name+"-max")
	return s
}

// Ms turns durations into milliseconds.
func Ms(ds []time.Duration) []float64 {
	out := make([]float64, len(ds))
	for i, d := range ds {
		out[i] = float64(d.Microseconds()) / 1000
	}
	return out
}

// Ratios divides a[i] by b[i], pair by pair.
func Ratios(a, b []time.Duration) []float64 {
	out := make([]float64, len(a))
	for i := range a {
		out[i] = float64(a[i]) / float64(b[i])
	}
	return out
}

// ABBA reports whether the pair numbered i runs its first side first: pairs alternate
// (AB, BA, AB, …), so neither side always runs on a cache the other warmed.
func ABBA(i int) bool { return i%2 == 0 }
