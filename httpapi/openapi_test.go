package httpapi

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v3"

	"github.com/ferryhq/ferry/openai"
	"github.com/ferryhq/ferry/registry"
	"github.com/ferryhq/ferry/session"
	"github.com/ferryhq/ferry/vectorstore"
)

// The OpenAPI document and the router describe the same routes: none
// missing from the document, none in it that doesn't exist.
func TestOpenAPIMatchesRouter(t *testing.T) {
	r := newRouter(Deps{Store: upStore{}, Sessions: &session.Service{}, Files: &registry.Registry{},
		OpenAI: &openai.Service{}, VectorStores: &vectorstore.Service{}, Metrics: prometheus.NewRegistry(), Tus: tusStub{}})
	vars := regexp.MustCompile(`\{([a-zA-Z_]+):(?:[^{}]|\{[^}]*\})*\}`)
	routes := map[string]bool{}
	err := r.Walk(func(route *mux.Route, _ *mux.Router, _ []*mux.Route) error {
		tmpl, err := route.GetPathTemplate()
		if err != nil {
			return nil
		}
		methods, err := route.GetMethods()
		if tmpl == "/v1/tus/" { // one prefix route for all of tus, which tusd's handler routes itself
			for _, op := range []string{"OPTIONS /v1/tus/", "POST /v1/tus/", "HEAD /v1/tus/{id}", "PATCH /v1/tus/{id}", "DELETE /v1/tus/{id}"} {
				routes[op] = true
			}
			return nil
		}
		if err != nil {
			return nil // a catch-all (the OpenAI prefix's 404), not an operation
		}
		path := vars.ReplaceAllString(tmpl, "{$1}")
		path = strings.Replace(path, "/v1/openAi/v1", "/v1/openai/v1", 1) // the spelling in Llama Stack's docs
		if rest, ok := cutOpenAIPrefix(tmpl); ok {
			path = "/v1/openai/v1" + vars.ReplaceAllString(rest, "{$1}") // the same routes at the root
		}
		for _, m := range methods {
			routes[m+" "+path] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	var doc struct {
		Paths map[string]map[string]any `yaml:"paths"`
	}
	if err := yaml.Unmarshal(openAPIYAML, &doc); err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for path, ops := range doc.Paths {
		for op := range ops {
			switch op {
			case "get", "put", "post", "delete", "head", "patch", "options":
				documented[strings.ToUpper(op)+" "+path] = true
			}
		}
	}
	var missing, extra []string
	for k := range routes {
		if !documented[k] {
			missing = append(missing, k)
		}
	}
	for k := range documented {
		if !routes[k] {
			extra = append(extra, k)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	if len(missing) > 0 || len(extra) > 0 {
		t.Fatalf("router and openapi.yaml disagree:\n  served but not documented: %v\n  documented but not served: %v", missing, extra)
	}
	if len(routes) < 20 {
		t.Fatalf("walked only %d routes; is the walk still seeing subrouters?", len(routes))
	}
}

type tusStub struct{ http.Handler }

func (tusStub) CreationBucket(*http.Request) (string, bool) { return "", false }

func TestOpenAPIJSONServed(t *testing.T) {
	h := New(Deps{Store: upStore{}, Logger: slog.New(slog.DiscardHandler)})
	rec := do(t, h, "GET", "/openapi.json")
	var doc map[string]any
	if rec.Code != 200 || json.Unmarshal(rec.Body.Bytes(), &doc) != nil || doc["openapi"] != "3.1.0" {
		t.Fatalf("/openapi.json = %d %.200s", rec.Code, rec.Body)
	}

}
