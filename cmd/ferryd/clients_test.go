package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry/internal/testhttp"
	"github.com/ferryhq/ferry/internal/testsvc"
)

// The npm packages TestJSClients runs, as the README's "Use it from" names
// them: llama-stack-client is pinned, openai-node follows its major.
var jsClientPackages = []string{"llama-stack-client@0.7.3", "openai@6"}

// jsFile is a FileObject as the clients returned it.
type jsFile struct {
	ID       string `json:"id"`
	Object   string `json:"object"`
	Bytes    int    `json:"bytes"`
	Filename string `json:"filename"`
	Purpose  string `json:"purpose"`
}

type jsHit struct {
	FileID   string  `json:"file_id"`
	Filename string  `json:"filename"`
	Score    float64 `json:"score"`
	Text     string  `json:"text"`
}

type jsVectorFile struct {
	ID            string `json:"id"`
	Object        string `json:"object"`
	Status        string `json:"status"`
	VectorStoreID string `json:"vector_store_id"`
	UsageBytes    int    `json:"usage_bytes"`
}

// jsClientRun is one run of testdata/clients.js: one client at one base URL.
type jsClientRun struct {
	Client   string   `json:"client"`
	Base     string   `json:"base"`
	Name     string   `json:"name"`
	Text     string   `json:"text"`
	KeptText string   `json:"kept_text"`
	Calls    []string `json:"calls"`

	Kept        jsFile   `json:"kept"`
	File        jsFile   `json:"file"`
	Retrieved   jsFile   `json:"retrieved"`
	Listed      []jsFile `json:"listed"`
	ContentText *string  `json:"content_text"`
	ContentB64  string   `json:"content_b64"`
	Store       struct {
		ID     string `json:"id"`
		Object string `json:"object"`
		Name   string `json:"name"`
	} `json:"store"`
	Attached jsVectorFile `json:"attached"`
	Polled   jsVectorFile `json:"polled"`
	Search   struct {
		SearchQuery []string `json:"search_query"`
	} `json:"search"`
	Hits            []jsHit `json:"hits"`
	Miss            []jsHit `json:"miss"`
	HitsAfterDelete []jsHit `json:"hits_after_delete"`
	Deleted         struct {
		ID      string `json:"id"`
		Deleted bool   `json:"deleted"`
	} `json:"deleted"`
	AfterDelete struct {
		Status int             `json:"status"`
		Class  string          `json:"class"`
		Error  json.RawMessage `json:"error"`
	} `json:"after_delete"`
}

var fileIDRe = regexp.MustCompile(`^file-[0-9a-f]{32}$`)

// TestJSClients runs the real, unmodified llama-stack-client 0.7.3 and
// openai-node 6 under Node (testdata/clients.js) against a real ferryd on
// each backend, at the base URLs the README documents: llama-stack-client at
// the root and at /v1/openai, openai-node at /v1 and at /v1/openai/v1. Each
// uploads, lists, retrieves, reads, attaches to a vector store, waits for
// completed, searches, deletes and retrieves again (404); the Go side
// checks every result and which routes each client called, and uses the
// native API in the same run, before and after: a native upload into the
// OpenAI bucket is an OpenAI file to the clients, and their kept files are
// native files in that bucket, beside the unrelated native bucket.
//
//	CI=1 scripts/test.sh -count=1 -race -run TestJSClients ./cmd/ferryd/
func TestJSClients(t *testing.T) {
	mods := testsvc.NodeModules(t, jsClientPackages...)
	script, err := filepath.Abs("testdata/clients.js")
	if err != nil {
		t.Fatal(err)
	}
	eachBackend(t, func(t *testing.T, be backendEnv) {
		p := be.startVS(t)
		root := "http://" + p.addr

		// The native API first: a session into a bucket of its own, and one
		// into the OpenAI bucket, which makes a user_data OpenAI file.
		seed := []byte("native seed bytes, sent in chunks\n")
		uploadHTTP(t, p, "seed", "notes/native.txt", seed, 7)
		if got := download(t, root+"/v1/files/seed/notes/native.txt:content"); !bytes.Equal(got, seed) {
			t.Fatalf("native :content = %q", got)
		}
		shared := []byte("uploaded natively into the openai bucket\n")
		uploadHTTP(t, p, "openai", "shared/from-native.txt", shared, 16)

		word := "zq" + testsvc.Unique("")[:6]
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute) // a hung client fails, not the whole run
		defer cancel()
		cmd := exec.CommandContext(ctx, "node", script, root, word)
		cmd.Env = append(os.Environ(), "NODE_PATH="+mods)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		start := time.Now()
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("node clients.js: %v\n%s", err, stderr.String())
		}
		t.Logf("clients.js: 4 runs in %v", time.Since(start).Round(time.Millisecond))
		var res struct{ Runs []jsClientRun }
		if err := json.Unmarshal(out, &res); err != nil {
			t.Fatalf("clients.js said %q: %v", out, err)
		}
		want := []struct{ name, client, base, prefix string }{
			{"llama-stack-client@root", "llama-stack-client", root, "/v1"},
			{"llama-stack-client@v1-openai", "llama-stack-client", root + "/v1/openai", "/v1/openai/v1"},
			{"openai@v1", "openai", root + "/v1", "/v1"},
			{"openai@v1-openai-v1", "openai", root + "/v1/openai/v1", "/v1/openai/v1"},
		}
		if len(res.Runs) != len(want) {
			t.Fatalf("clients.js reported %d runs, want %d", len(res.Runs), len(want))
		}
		var kept, deleted []string
		for i, w := range want {
			r := res.Runs[i]
			if r.Client != w.client || r.Base != w.base {
				t.Fatalf("run %d is %s at %s, want %s at %s", i, r.Client, r.Base, w.client, w.base)
			}
			t.Run(w.name, func(t *testing.T) {
				checkJSRun(t, r, w.prefix, word+fmt.Sprint(i), shared, deleted)
			})
			kept = append(kept, r.Kept.ID)
			deleted = append(deleted, r.File.ID)
		}
		if t.Failed() {
			return
		}

		// The native view afterwards. GET /v1/files without an SDK's
		// headers is still the bucket list, with no OpenAI file in it.
		r := testhttp.Do(t, "GET", root+"/v1/files", nil)
		if r.Code != 200 || !strings.Contains(string(r.Body), `"name":"seed"`) || !strings.Contains(string(r.Body), `"name":"openai"`) ||
			strings.Contains(string(r.Body), "file-") {
			t.Fatalf("native bucket list: %d %s", r.Code, r.Body)
		}
		// Each kept file is the native file <id>/<filename> in bucket
		// openai, with its file_id and the same bytes; no deleted one is.
		list := testhttp.Do(t, "GET", root+"/v1/files/openai", nil).JSON(t)
		native := map[string]map[string]any{}
		for _, e := range list["data"].([]any) {
			m := e.(map[string]any)
			native[m["key"].(string)] = m
		}
		if len(native) != len(kept)+1 || native["shared/from-native.txt"] == nil {
			t.Fatalf("native listing of bucket openai = %v, want the %d kept files and shared/from-native.txt", list, len(kept))
		}
		for i, id := range kept {
			key := fmt.Sprintf("%s/kept-%d.txt", id, i)
			e := native[key]
			if e == nil || e["file_id"] != id {
				t.Fatalf("kept file %s: native entry %v (listing %v)", id, e, list)
			}
			if got := download(t, root+"/v1/files/openai/"+key+":content"); string(got) != res.Runs[i].KeptText {
				t.Fatalf("native :content of %s = %q, want %q", key, got, res.Runs[i].KeptText)
			}
		}
		for _, id := range deleted {
			if r := testhttp.Do(t, "GET", root+"/v1/files/"+id, nil); r.Code != 404 {
				t.Fatalf("deleted %s is still served: %d %s", id, r.Code, r.Body)
			}
		}
		// The OpenAI list by its own parameter: exactly the kept files (the
		// native seed file is no OpenAI file; from-native.txt is user_data).
		var page struct {
			Data []jsFile `json:"data"`
		}
		if err := json.Unmarshal(testhttp.Do(t, "GET", root+"/v1/openai/v1/files?purpose=assistants&order=asc", nil).Body, &page); err != nil {
			t.Fatal(err)
		}
		if got := ids(page.Data, func(f jsFile) string { return f.ID }); !slices.Equal(got, kept) {
			t.Fatalf("OpenAI assistants files = %v, want the kept %v", got, kept)
		}
		if got := download(t, root+"/v1/files/seed/notes/native.txt:content"); !bytes.Equal(got, seed) {
			t.Fatalf("native :content after the clients = %q", got)
		}
	})
}

// checkJSRun checks one client's run: tag is the word its file (and only
// its file) contains, shared the bytes of the native upload into the
// OpenAI bucket, gone the files earlier runs deleted.
func checkJSRun(t *testing.T, r jsClientRun, prefix, tag string, shared []byte, gone []string) {
	f := r.File
	if !fileIDRe.MatchString(f.ID) || f.Object != "file" || f.Filename != r.Name || f.Bytes != len(r.Text) || f.Purpose != "assistants" {
		t.Errorf("files.create = %+v, want %s of %d bytes", f, r.Name, len(r.Text))
	}
	if k := r.Kept; !fileIDRe.MatchString(k.ID) || k.ID == f.ID || k.Bytes != len(r.KeptText) || k.Purpose != "assistants" {
		t.Errorf("files.create (kept) = %+v", k)
	}
	if r.Retrieved != f {
		t.Errorf("files.retrieve = %+v, want %+v", r.Retrieved, f)
	}
	// The list has this run's files and the native upload into the OpenAI
	// bucket, as user_data, and none of the files earlier runs deleted.
	listed := map[string]jsFile{}
	var fromNative *jsFile
	for _, l := range r.Listed {
		listed[l.ID] = l
		if l.Filename == "from-native.txt" {
			fromNative = &l
		}
		if l.Filename == "native.txt" {
			t.Errorf("files.list has the native seed bucket's file: %+v", l)
		}
	}
	if listed[f.ID] != (jsFile{ID: f.ID, Filename: f.Filename, Purpose: f.Purpose, Bytes: f.Bytes}) || listed[r.Kept.ID].ID == "" {
		t.Errorf("files.list = %+v, lacks %s or %s", r.Listed, f.ID, r.Kept.ID)
	}
	if fromNative == nil || fromNative.Purpose != "user_data" || fromNative.Bytes != len(shared) || !fileIDRe.MatchString(fromNative.ID) {
		t.Errorf("files.list: the native upload into bucket openai is %+v, want a user_data file of %d bytes", fromNative, len(shared))
	}
	for _, id := range gone {
		if _, ok := listed[id]; ok {
			t.Errorf("files.list still has %s, deleted by an earlier run", id)
		}
	}
	if got, err := base64.StdEncoding.DecodeString(r.ContentB64); err != nil || string(got) != r.Text {
		t.Errorf("files.content bytes = %q (%v), want %q", got, err, r.Text)
	}
	if r.Client == "llama-stack-client" && (r.ContentText == nil || *r.ContentText != r.Text) {
		t.Errorf("llama-stack-client files.content = %v, want %q", r.ContentText, r.Text)
	}

	// Vector store: attached, completed, found by the words in the file.
	s := r.Store
	if !strings.HasPrefix(s.ID, "vs_") || s.Object != "vector_store" || !strings.HasPrefix(s.Name, "docs-") {
		t.Errorf("vectorStores.create = %+v", s)
	}
	if a := r.Attached; a.ID != f.ID || a.Object != "vector_store.file" || a.VectorStoreID != s.ID ||
		(a.Status != "in_progress" && a.Status != "completed") {
		t.Errorf("vectorStores.files.create = %+v", a)
	}
	if p := r.Polled; p.ID != f.ID || p.VectorStoreID != s.ID || p.Status != "completed" || p.UsageBytes != len(r.Text) {
		t.Errorf("the attached file settled as %+v, want completed with usage_bytes %d", p, len(r.Text))
	}
	if q := r.Search.SearchQuery; len(q) != 1 || q[0] != tag+" cargo manifests" {
		t.Errorf("search_query = %q", q)
	}
	if len(r.Hits) != 1 || r.Hits[0].FileID != f.ID || r.Hits[0].Filename != f.Filename || r.Hits[0].Text != r.Text ||
		!(r.Hits[0].Score > 0 && r.Hits[0].Score <= 1) || !strings.Contains(r.Hits[0].Text, "harbour "+tag+" keeps") {
		t.Errorf("vectorStores.search hits = %+v, want the one chunk of %s (%q)", r.Hits, f.ID, r.Text)
	}
	if len(r.Miss) != 0 {
		t.Errorf("a query of words not in the file found %+v", r.Miss)
	}

	// Delete: the file is gone, from the Files API and from the store.
	if r.Deleted.ID != f.ID || !r.Deleted.Deleted {
		t.Errorf("files.delete = %+v", r.Deleted)
	}
	if a := r.AfterDelete; a.Status != 404 || a.Class != "NotFoundError" || !strings.Contains(string(a.Error), `"code":"file_not_found"`) {
		t.Errorf("files.retrieve after delete: %d %s %s, want 404 NotFoundError file_not_found", a.Status, a.Class, a.Error)
	}
	if len(r.HitsAfterDelete) != 0 {
		t.Errorf("the store still finds the deleted file: %+v", r.HitsAfterDelete)
	}

	// The routes the client called, as its own fetch saw them: each under
	// the documented prefix, and nothing failed but the one 404.
	F, S := f.ID, s.ID
	exact := map[string]int{
		"POST " + prefix + "/files 200":                          2,
		"GET " + prefix + "/files 200":                           1,
		"GET " + prefix + "/files/" + F + " 200":                 1,
		"GET " + prefix + "/files/" + F + "/content 200":         1,
		"POST " + prefix + "/vector_stores 200":                  1,
		"POST " + prefix + "/vector_stores/" + S + "/files 200":  1,
		"POST " + prefix + "/vector_stores/" + S + "/search 200": 3,
		"DELETE " + prefix + "/files/" + F + " 200":              1,
		"GET " + prefix + "/files/" + F + " 404":                 1,
	}
	if r.Client == "llama-stack-client" {
		exact["GET "+prefix+"/files/"+F+"/content 200"] = 2 // as text, then asResponse
	}
	poll := "GET " + prefix + "/vector_stores/" + S + "/files/" + F + " 200"
	got := map[string]int{}
	for _, c := range r.Calls {
		got[c]++
	}
	for c, n := range got {
		if c == poll {
			continue
		}
		if exact[c] != n {
			t.Errorf("%s called %q %d times, want %d; calls:\n%s", r.Client, c, n, exact[c], strings.Join(r.Calls, "\n"))
		}
	}
	for c, n := range exact {
		if got[c] == 0 { // other counts are reported above
			t.Errorf("%s called %q %d times, want %d; calls:\n%s", r.Client, c, got[c], n, strings.Join(r.Calls, "\n"))
		}
	}
	if got[poll] < 1 {
		t.Errorf("%s never retrieved the attached file (%s); calls:\n%s", r.Client, poll, strings.Join(r.Calls, "\n"))
	}
}
