package httpapi

import (
	"encoding/json"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v3"

	"github.com/ferryhq/ferry/errcode"
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

// registeredCodes is errcode.All, once it is known to hold every code the
// module's code registers: a package this test binary did not link would
// register codes that no document check sees.
func registeredCodes(t *testing.T) []errcode.Code {
	t.Helper()
	all := errcode.All()
	linked := map[string]bool{}
	for _, c := range all {
		linked[c.Value] = true
	}
	register := regexp.MustCompile(`\bRegister\("([A-Z0-9_]+)"`)
	err := filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		switch {
		case err != nil:
			return err
		case d.IsDir() && path != ".." && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || d.Name() == "node_modules"):
			return filepath.SkipDir
		case d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go"):
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range register.FindAllSubmatch(src, -1) {
			if !linked[string(m[1])] {
				t.Errorf("%s registers %s, which httpapi's tests do not link: import its package here", path, m[1])
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return all
}

// openapi.yaml's ErrorCode enum is the registry: every code, in its order,
// and none that is not registered. The OpenAI names that are not the lower-
// cased code are in its description.
func TestOpenAPIListsEveryErrorCode(t *testing.T) {
	var doc struct {
		Components struct {
			Schemas struct {
				ErrorCode struct {
					Description string   `yaml:"description"`
					Enum        []string `yaml:"enum"`
				} `yaml:"ErrorCode"`
			} `yaml:"schemas"`
		} `yaml:"components"`
	}
	if err := yaml.Unmarshal(openAPIYAML, &doc); err != nil {
		t.Fatal(err)
	}
	ec := doc.Components.Schemas.ErrorCode
	var want []string
	for _, c := range registeredCodes(t) {
		want = append(want, c.Value)
		if plain := strings.ToLower(strings.TrimPrefix(c.Value, "OPENAI_")); c.OpenAICode != plain && !strings.Contains(ec.Description, c.OpenAICode) {
			t.Errorf("ErrorCode's description does not say that %s is %s in the OpenAI envelope", c.Value, c.OpenAICode)
		}
	}
	if !slices.Equal(ec.Enum, want) {
		missing, extra := difference(want, ec.Enum), difference(ec.Enum, want)
		t.Fatalf("openapi.yaml's ErrorCode enum must list the registered codes, sorted:\n  missing: %v\n  not registered: %v", missing, extra)
	}
}

// Where an operation's answer names codes, they are codes of that status.
func TestOpenAPIResponsesNameTheirCodes(t *testing.T) {
	var doc struct {
		Paths map[string]map[string]yaml.Node `yaml:"paths"` // operations, and the path's parameters
	}
	if err := yaml.Unmarshal(openAPIYAML, &doc); err != nil {
		t.Fatal(err)
	}
	word := regexp.MustCompile(`\b[A-Z][A-Z0-9_]{3,}\b`)
	status := map[string]int{}
	for _, c := range registeredCodes(t) {
		status[c.Value] = c.Status
	}
	for path, ops := range doc.Paths {
		if strings.HasPrefix(path, "/v1/tus/") {
			continue // tus names its own statuses (423, 460)
		}
		for op, node := range ops {
			var o struct {
				Responses map[string]struct {
					Description string `yaml:"description"`
				} `yaml:"responses"`
			}
			if op == "parameters" {
				continue
			}
			if err := node.Decode(&o); err != nil {
				t.Fatalf("%s %s: %v", op, path, err)
			}
			for code, resp := range o.Responses {
				for _, w := range word.FindAllString(resp.Description, -1) {
					if s, ok := status[w]; ok && strconv.Itoa(s) != code {
						t.Errorf("%s %s: the %s answer names %s, which is %d", op, path, code, w, s)
					}
				}
			}
		}
	}
}

// The README's table of error codes lists every registered code with its
// status, so a new code cannot go undocumented.
func TestREADMEListsEveryErrorCode(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(readme), "\n## Error codes\n")
	if !ok {
		t.Fatal(`README.md has no "## Error codes" section`)
	}
	table, _, _ = strings.Cut(table, "\n## ")
	row := regexp.MustCompile("(?m)^\\| `([A-Z0-9_]+)` \\| (\\d{3}) \\| \\S")
	documented := map[string]string{}
	for _, m := range row.FindAllStringSubmatch(table, -1) {
		if _, dup := documented[m[1]]; dup {
			t.Errorf("README lists %s twice", m[1])
		}
		documented[m[1]] = m[2]
	}
	var want []string
	for _, c := range registeredCodes(t) {
		want = append(want, c.Value)
		switch got, ok := documented[c.Value]; {
		case !ok:
			t.Errorf("README's error codes lack %s (%d): add a row saying what a client should do", c.Value, c.Status)
		case got != strconv.Itoa(c.Status):
			t.Errorf("README gives %s status %s; it is %d", c.Value, got, c.Status)
		}
	}
	for code := range documented {
		if !slices.Contains(want, code) {
			t.Errorf("README lists %s, which is not registered", code)
		}
	}
}

// difference is what a has and b lacks.
func difference(a, b []string) []string {
	var out []string
	for _, s := range a {
		if !slices.Contains(b, s) {
			out = append(out, s)
		}
	}
	return out
}
