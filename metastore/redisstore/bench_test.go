package redisstore_test

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ferryhq/ferry/internal/testsvc"
	"github.com/ferryhq/ferry/metastore/redisstore"
)

// BenchmarkLockCycle takes and lets go of a lease (one lock script, one
// unlock script), on a single node and on the 3-master cluster side by
// side: every lease lives in the {lock} slot, so on a cluster they all go
// to one master. Compare the two with -cpu and -benchtime; the ratio is
// what docs/scaling.md reports.
//
//	CI=1 scripts/test.sh -run '^$' -bench BenchmarkLockCycle -benchtime 5s ./metastore/redisstore/
func BenchmarkLockCycle(b *testing.B) {
	for _, tc := range []struct {
		name string
		open func(testing.TB) (redis.UniversalClient, string)
	}{{"single", testsvc.Redis}, {"cluster", testsvc.RedisCluster}} {
		b.Run(tc.name, func(b *testing.B) {
			client, prefix := tc.open(b)
			s := redisstore.New(client, prefix)
			var n atomic.Int64
			b.SetParallelism(16) // many instances' appends at once
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				ctx := b.Context()
				for pb.Next() {
					l, err := s.Lock(ctx, fmt.Sprintf("session/%d", n.Add(1)), time.Minute)
					if err != nil {
						b.Error(err)
						return
					}
					if err := l.Unlock(ctx); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
