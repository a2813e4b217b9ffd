//go:build !unix

package cputime

import (
	"errors"
	"time"
)

// Self is not measured on this platform.
func Self() time.Duration { return 0 }

// Of is not measured on this platform.
func Of(int) (time.Duration, error) {
	return 0, errors.New("the CPU time of another process is read from /proc, which this platform lacks")
}
