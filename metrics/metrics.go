// Package metrics adds Prometheus metrics to Ferry's storage interfaces as
// decorators, in the manner of thanos objstore's WrapWithMetrics: Store
// wraps a metastore.Store, Backend a bucket.Backend and S3API the raw S3
// client under s3blob. The wrapped value is used exactly like the original.
//
// Every label value is a constant chosen here (an operation name, a result,
// a backend kind, a direction), never a key, bucket or session id, so the
// number of series is fixed by the code.
//
// Results keep outcomes that are part of normal operation out of "error":
// a missing record or object, a lost compare-and-set, a busy lock, a range
// past the end, a client whose body ended early and a cancelled request all
// have their own result, so an alert on result="error" means the storage
// itself failed.
//
// Each constructor registers its collectors with reg. Calling it again with
// the same registry (a second backend of one kind, say) reuses the
// collectors already registered, so both add into the same series.
package metrics

import (
	"context"
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Result label values shared by the decorators.
const (
	resultOK        = "ok"
	resultNotFound  = "not_found"
	resultCanceled  = "canceled"
	resultShortBody = "short_body"
	resultError     = "error"
)

// storageBuckets suit calls that move bytes: from a 1 ms HEAD to a 5 GiB
// part. Redis and bbolt calls use metastoreBuckets instead.
var storageBuckets = []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300}

// register registers c, or returns the equal collector reg already holds so
// a second decorator on the same registry shares its series.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		panic(err)
	}
	return c
}

// canceled reports a call abandoned by its caller (a client that went
// away), which says nothing about the health of the storage.
func canceled(err error) bool { return errors.Is(err, context.Canceled) }
