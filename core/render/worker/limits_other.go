//go:build !unix

package worker

// limitMemory has no hard bound to set on this system; the soft limit and the deadline
// still apply.
func limitMemory(int64) error { return nil }
