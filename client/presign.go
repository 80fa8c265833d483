package client

import (
	"context"
	"net/http"
	"time"
)

// Presigned is a URL that downloads one file without an API key until
// ExpiresAt (unix seconds).
type Presigned struct {
	URL       string `json:"url"`
	ExpiresAt int64  `json:"expires_at"`
}

// Presign asks for a URL that downloads bucket/key, as it is now, for ttl
// (0: the server's default, an hour).
func (c *Client) Presign(ctx context.Context, bucket, key string, ttl time.Duration) (Presigned, error) {
	req := map[string]any{}
	if ttl > 0 {
		req["ttl_seconds"] = int64(ttl.Round(time.Second) / time.Second)
	}
	body, n, hdr := jsonBody(req)
	var p Presigned
	_, err := c.do(ctx, http.MethodPost, filePath(bucket, key)+":presign", body, n, hdr, &p)
	return p, err
}
