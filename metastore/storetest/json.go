package storetest

import (
	"strings"
	"testing"

	"github.com/ferryhq/ferry/metastore"
)

type jsonRecord struct {
	Name  string `json:"name"`
	Count int    `json:"count"`
}

// GetJSON and PutJSON round-trip a value, keep the version, and pass the
// store's conflict, fencing and not-found errors through.
func testJSONRecords(t *testing.T, s metastore.Store) {
	ctx := t.Context()
	_, _, err := metastore.GetJSON[jsonRecord](ctx, s, "j")
	wantErr(t, "GetJSON missing", err, metastore.ErrNotFound)

	ver, err := metastore.PutJSON(ctx, s, "j", jsonRecord{"a", 1}, metastore.Cond{Version: 0, Fence: 5})
	if err != nil || ver != 1 {
		t.Fatalf("PutJSON create = %d, %v; want version 1", ver, err)
	}
	got, ver, err := metastore.GetJSON[jsonRecord](ctx, s, "j")
	if err != nil || got != (jsonRecord{"a", 1}) || ver != 1 {
		t.Fatalf("GetJSON = %+v, %d, %v; want {a 1}, 1", got, ver, err)
	}
	if ver, err = metastore.PutJSON(ctx, s, "j", jsonRecord{"a", 2}, metastore.Cond{Version: ver, Fence: 5}); err != nil || ver != 2 {
		t.Fatalf("PutJSON update = %d, %v; want version 2", ver, err)
	}
	_, err = metastore.PutJSON(ctx, s, "j", jsonRecord{"stale", 0}, metastore.Cond{Version: 1})
	wantErr(t, "PutJSON at stale version", err, metastore.ErrConflict)
	_, err = metastore.PutJSON(ctx, s, "j", jsonRecord{"fenced", 0}, metastore.Cond{Version: 2, Fence: 4})
	wantErr(t, "PutJSON with stale fence", err, metastore.ErrFenced)
	if got, ver, err = metastore.GetJSON[jsonRecord](ctx, s, "j"); err != nil || got != (jsonRecord{"a", 2}) || ver != 2 {
		t.Fatalf("GetJSON after rejected writes = %+v, %d, %v; want {a 2}, 2", got, ver, err)
	}

	if _, err := metastore.PutJSON(ctx, s, "j", func() {}, metastore.Cond{Version: metastore.AnyVersion}); err == nil || !strings.Contains(err.Error(), `"j"`) {
		t.Fatalf("PutJSON of an unencodable value: err = %v, want an error naming the key", err)
	}
}

// A value that is not the record's JSON is a decode error naming the key
// or member, not a zero record.
func testJSONCorrupt(t *testing.T, s metastore.Store) {
	ctx := t.Context()
	put(t, s, "bad/key", []byte("{not json"), metastore.Cond{})
	if _, _, err := metastore.GetJSON[jsonRecord](ctx, s, "bad/key"); err == nil || !strings.Contains(err.Error(), `"bad/key"`) {
		t.Fatalf("GetJSON of a corrupt value: err = %v, want a decode error naming the key", err)
	}

	_, err := metastore.IndexGetJSON[jsonRecord](ctx, s, "idx", "m")
	wantErr(t, "IndexGetJSON missing", err, metastore.ErrNotFound)
	if err := s.IndexPut(ctx, "idx", "m", []byte(`{"name":"x","count":3}`)); err != nil {
		t.Fatal(err)
	}
	if got, err := metastore.IndexGetJSON[jsonRecord](ctx, s, "idx", "m"); err != nil || got != (jsonRecord{"x", 3}) {
		t.Fatalf("IndexGetJSON = %+v, %v; want {x 3}", got, err)
	}
	if err := s.IndexPut(ctx, "idx", "bad", []byte("[")); err != nil {
		t.Fatal(err)
	}
	if _, err := metastore.IndexGetJSON[jsonRecord](ctx, s, "idx", "bad"); err == nil || !strings.Contains(err.Error(), `"bad"`) || !strings.Contains(err.Error(), `"idx"`) {
		t.Fatalf("IndexGetJSON of a corrupt value: err = %v, want a decode error naming index and member", err)
	}
}
