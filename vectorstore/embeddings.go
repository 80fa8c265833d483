package vectorstore

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"time"
)

// EmbeddingsConfig names an OpenAI-compatible embeddings endpoint. With no
// URL, search answers keyword mode only, which needs no model.
type EmbeddingsConfig struct {
	URL    string // base URL; requests go to URL + "/embeddings"
	Model  string
	APIKey string // sent as a bearer token when set
}

// embedBatch is how many inputs go in one request.
const embedBatch = 64

// embedder calls POST {url}/embeddings in OpenAI's shape.
type embedder struct {
	cfg    EmbeddingsConfig
	client *http.Client
}

func newEmbedder(cfg EmbeddingsConfig) *embedder {
	if cfg.URL == "" {
		return nil
	}
	cfg.URL = strings.TrimRight(cfg.URL, "/")
	return &embedder{cfg: cfg, client: &http.Client{Timeout: 2 * time.Minute}}
}

// embed returns one vector per input, in order, all of one dimension.
func (e *embedder) embed(ctx context.Context, inputs []string) ([][]float32, error) {
	out := make([][]float32, 0, len(inputs))
	for start := 0; start < len(inputs); start += embedBatch {
		batch := inputs[start:min(start+embedBatch, len(inputs))]
		vecs, err := e.call(ctx, batch)
		if err != nil {
			return nil, err
		}
		out = append(out, vecs...)
	}
	for _, v := range out {
		if len(v) == 0 || len(v) != len(out[0]) {
			return nil, fmt.Errorf("embeddings endpoint %s returned vectors of different or zero dimensions", e.cfg.URL)
		}
	}
	return out, nil
}

func (e *embedder) call(ctx context.Context, inputs []string) ([][]float32, error) {
	body, _ := json.Marshal(map[string]any{"model": e.cfg.Model, "input": inputs, "encoding_format": "float"})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.cfg.URL+"/embeddings", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if e.cfg.APIKey != "" {
		req.Header.Set("Authorization", "Bearer "+e.cfg.APIKey)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("embeddings endpoint %s: %w", e.cfg.URL, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return nil, fmt.Errorf("embeddings endpoint %s: %w", e.cfg.URL, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("embeddings endpoint %s answered %d: %.300s", e.cfg.URL, resp.StatusCode, raw)
	}
	var parsed struct {
		Data []struct {
			Index     int       `json:"index"`
			Embedding []float32 `json:"embedding"`
		} `json:"data"`
	}
	if err := json.Unmarshal(raw, &parsed); err != nil {
		return nil, fmt.Errorf("embeddings endpoint %s: the answer is not OpenAI's embeddings shape: %v", e.cfg.URL, err)
	}
	if len(parsed.Data) != len(inputs) {
		return nil, fmt.Errorf("embeddings endpoint %s returned %d vectors for %d inputs", e.cfg.URL, len(parsed.Data), len(inputs))
	}
	sort.Slice(parsed.Data, func(i, j int) bool { return parsed.Data[i].Index < parsed.Data[j].Index })
	out := make([][]float32, len(parsed.Data))
	for i, d := range parsed.Data {
		out[i] = d.Embedding
	}
	return out, nil
}
