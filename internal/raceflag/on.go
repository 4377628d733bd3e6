//go:build race

package raceflag

// Enabled is true when the binary is built with the race detector.
const Enabled = true
