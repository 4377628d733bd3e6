//go:build unix

package worker

import (
	"fmt"
	"syscall"
)

// limitMemory caps the process's data segment (RLIMIT_DATA: on Linux, every private
// writable mapping, so the Go heap and goroutine stacks) at limit bytes. Address space
// (RLIMIT_AS) would not do: the Go runtime reserves far more than it uses.
func limitMemory(limit int64) error {
	rl := syscall.Rlimit{Cur: uint64(limit), Max: uint64(limit)}
	if err := syscall.Setrlimit(syscall.RLIMIT_DATA, &rl); err != nil {
		return fmt.Errorf("limit memory to %d MiB: %w", limit>>20, err)
	}
	return nil
}
