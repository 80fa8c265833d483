package metastore

import (
	"context"
	"encoding/json"
	"fmt"
)

// The domain packages keep their records as JSON. These helpers are the one
// place that reads and writes them, so every caller maps errors the same way.

// GetJSON reads key and decodes its value into a T, returning the record's
// version for a later conditional PutJSON. A missing record is ErrNotFound
// (errors.Is works); a value that does not decode is an error naming the key.
func GetJSON[T any](ctx context.Context, s Store, key string) (T, int64, error) {
	var v T
	rec, err := s.Get(ctx, key)
	if err != nil {
		return v, 0, err
	}
	if err := json.Unmarshal(rec.Value, &v); err != nil {
		return v, 0, fmt.Errorf("metastore: decode %q: %w", key, err)
	}
	return v, rec.Version, nil
}

// PutJSON encodes v and writes it to key under c, returning the new version.
// It fails as Put does: ErrConflict, ErrFenced.
func PutJSON(ctx context.Context, s Store, key string, v any, c Cond, emit ...[]byte) (int64, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return 0, fmt.Errorf("metastore: encode %q: %w", key, err)
	}
	rec, err := s.Put(ctx, key, b, c, emit...)
	if err != nil {
		return 0, err
	}
	return rec.Version, nil
}

// IndexGetJSON reads an index member and decodes its value into a T.
// A missing member is ErrNotFound; a value that does not decode is an
// error naming the index and member.
func IndexGetJSON[T any](ctx context.Context, s Store, index, member string) (T, error) {
	var v T
	b, err := s.IndexGet(ctx, index, member)
	if err != nil {
		return v, err
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return v, fmt.Errorf("metastore: decode %q in index %q: %w", member, index, err)
	}
	return v, nil
}
