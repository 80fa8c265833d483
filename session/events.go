package session

import "github.com/ferryhq/ferry/events"

// sessionEvent is the data of a session.* event: the session as the
// native info route shows it, less what depends on the request (its URL).
type sessionEvent struct {
	ID        string `json:"id"`
	Bucket    string `json:"bucket"`
	Key       string `json:"key"`
	MimeType  string `json:"mime_type"`
	Size      int64  `json:"size"`
	Offset    int64  `json:"offset"`
	Status    string `json:"status"`
	Protocol  string `json:"protocol"`
	CreatedAt int64  `json:"created_at"`
	ExpiresAt int64  `json:"expires_at"`
	PartSize  int64  `json:"part_size"`
	Parallel  bool   `json:"parallel,omitempty"`
	Partial   bool   `json:"partial,omitempty"` // a piece of a tus concatenation
}

// event encodes a session.* event about r for the write that makes it so.
func (r *record) event(typ string) []byte {
	status := "uploading"
	if r.State == stateCompleted {
		status = "completed"
	}
	return events.New(typ, r.Bucket, r.Key, sessionEvent{ID: r.ID, Bucket: r.Bucket, Key: r.Key, MimeType: r.MimeType,
		Size: r.Size, Offset: r.Offset, Status: status, Protocol: protocolLabel(r.Protocol), CreatedAt: r.CreatedAt.Unix(),
		ExpiresAt: r.ExpiresAt.Unix(), PartSize: r.PartSize, Parallel: r.Parallel, Partial: r.Partial})
}
