//go:build !race

// Package raceflag tells tests whether the race detector is on: its shadow memory does not
// fit under the render worker's memory bound, so the tests of that bound run without it.
package raceflag

// Enabled is true when the binary is built with the race detector.
const Enabled = false
