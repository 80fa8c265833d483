package client

import (
	"context"

	"golang.org/x/sync/errgroup"
)

// inParallel calls fn for 0 to n-1 from workers goroutines, each taking
// the next i as it is free. The first error cancels the context the
// others run on, and is returned.
func inParallel(ctx context.Context, workers, n int, fn func(ctx context.Context, i int) error) error {
	jobs := make(chan int)
	g, gctx := errgroup.WithContext(ctx)
	for range workers {
		g.Go(func() error {
			for i := range jobs {
				if err := fn(gctx, i); err != nil {
					return err
				}
			}
			return nil
		})
	}
	g.Go(func() error {
		defer close(jobs)
		for i := range n {
			select {
			case jobs <- i:
			case <-gctx.Done():
				return gctx.Err()
			}
		}
		return nil
	})
	return g.Wait()
}
