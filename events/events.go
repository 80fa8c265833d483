// Package events is Ferry's event stream: what the domain packages emit
// with their changes (the metadata store appends an event in the same
// atomic write as its change, see metastore.Event), how the log is read
// (the pull stream), and how it is delivered (signed webhooks).
package events

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/ferryhq/ferry/metastore"
)

// The event types. Their names are a contract: receivers switch on them.
const (
	FileCreated        = "file.created"
	FileDeleted        = "file.deleted"
	SessionCreated     = "session.created"
	SessionAborted     = "session.aborted"
	SessionExpired     = "session.expired"
	BucketRegistered   = "bucket.registered"
	BucketUnregistered = "bucket.unregistered"
)

// Types lists every event type, for validating a sink's filter.
var Types = []string{FileCreated, FileDeleted, SessionCreated, SessionAborted, SessionExpired, BucketRegistered, BucketUnregistered}

// Event is one event as readers see it. Bucket and Scope are not sent:
// Bucket scopes who may see it, and events of one Scope (a file's bucket
// and key, or a bucket for bucket events) are delivered in order.
type Event struct {
	ID        string          `json:"id"`
	Type      string          `json:"type"`
	Timestamp time.Time       `json:"timestamp"`
	Data      json.RawMessage `json:"data"`
	Bucket    string          `json:"-"`
	Scope     string          `json:"-"`
}

// stored is an event as the log keeps it; the store assigns the id.
type stored struct {
	Type      string          `json:"type"`
	Timestamp time.Time       `json:"timestamp"`
	Bucket    string          `json:"bucket,omitempty"`
	Scope     string          `json:"scope,omitempty"`
	Data      json.RawMessage `json:"data"`
}

// New encodes an event for a metastore write to carry. key is the file's
// key ("" for a bucket event); data is what receivers get.
func New(typ, bucket, key string, data any) []byte {
	d, err := json.Marshal(data)
	if err != nil { // our own types: a bug, but the change must still be announced
		d, _ = json.Marshal(map[string]string{"error": err.Error()})
	}
	scope := bucket
	if key != "" {
		scope = bucket + "/" + key
	}
	b, _ := json.Marshal(stored{Type: typ, Timestamp: time.Now().UTC(), Bucket: bucket, Scope: scope, Data: d})
	return b
}

// Decode reads an event of the log.
func Decode(e metastore.Event) (Event, error) {
	var s stored
	if err := json.Unmarshal(e.Value, &s); err != nil {
		return Event{}, fmt.Errorf("event %s: %w", e.ID, err)
	}
	return Event{ID: e.ID, Type: s.Type, Timestamp: s.Timestamp, Data: s.Data, Bucket: s.Bucket, Scope: s.Scope}, nil
}

// Body is what a webhook receives: the event without its id, which
// travels in the webhook-id header.
func (e Event) Body() ([]byte, error) {
	return json.Marshal(struct {
		Type      string          `json:"type"`
		Timestamp time.Time       `json:"timestamp"`
		Data      json.RawMessage `json:"data"`
	}{e.Type, e.Timestamp, e.Data})
}
