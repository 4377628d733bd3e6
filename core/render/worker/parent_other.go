//go:build !linux

package worker

import "os/exec"

// setParentDeath does nothing here: a worker whose Roro died ends when it next reads its
// closed stdin, after the render it is running.
func setParentDeath(*exec.Cmd) {}
