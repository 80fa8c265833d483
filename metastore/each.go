package metastore

import "context"

// EachEntry walks a whole index in pages, in member order, until fn
// returns an error.
func EachEntry(ctx context.Context, s Store, index string, fn func(Entry) error) error {
	q := Query{Limit: 1000}
	for {
		entries, more, err := s.IndexList(ctx, index, q)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if err := fn(e); err != nil {
				return err
			}
		}
		if !more || len(entries) == 0 {
			return nil
		}
		q.After = entries[len(entries)-1].Member
	}
}
