// Package promreg registers edgehook's Prometheus collectors the one way every
// component does: a collector already registered under the same description (two
// components, or two instances of one, sharing a registry in `edgehook up`) is reused
// rather than an error.
package promreg

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Register registers c on reg and returns it, or the identical collector reg already
// holds, which the caller then shares. A nil reg registers nothing. Any other error is
// returned wrapped, naming the collector's description.
func Register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	if reg == nil {
		return c, nil
	}
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing, nil
			}
		}
		return c, fmt.Errorf("register metrics: %w", err)
	}
	return c, nil
}
