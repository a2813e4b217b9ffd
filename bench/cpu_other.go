//go:build !unix

package bench

import (
	"errors"
	"time"
)

// processCPU is not measured on this platform.
func processCPU() time.Duration { return 0 }

// pidCPU is not measured on this platform.
func pidCPU(int) (time.Duration, error) {
	return 0, errors.New("the CPU time of another process is read from /proc, which this platform lacks")
}
