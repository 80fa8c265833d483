package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"go.yaml.in/yaml/v3"

	"github.com/ferryhq/ferry/auth"
	"github.com/ferryhq/ferry/internal/testhttp"
)

// The web console at /console/, driven in a real headless Chromium on both
// backends: sign-in and a bucket-scoped key, a 64 MiB upload through the
// file picker, a reload mid-upload that resumes, the bytes through
// :content, delete, stored markup rendered as text, live sessions and the
// admin page. Screenshots of each page go to FERRY_CONSOLE_SHOTS (a
// directory) or the test's temporary directory.
//
//	CI=1 scripts/test.sh -race -count=1 -v -run TestConsole ./cmd/ferryd/
func TestConsole(t *testing.T) {
	browser := startBrowser(t)
	shots := os.Getenv("FERRY_CONSOLE_SHOTS")
	if shots == "" {
		shots = t.TempDir()
	}
	file := testFile(t, "big.bin", 64)
	resume := testFile(t, "resume.bin", 64)
	small := testFile(t, "pause.bin", 16)
	cancel := testFile(t, "cancel.bin", 16)
	t.Run("open", func(t *testing.T) { t.Parallel(); consoleOpen(t, browser) })
	for name, mk := range map[string]func(testing.TB) backendEnv{"embedded": embeddedEnv, "redis+s3": redisS3Env} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			be := mk(t)
			dir := filepath.Join(shots, be.name)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			c := startConsole(t, be, browser, dir)
			for _, step := range []struct {
				name string
				fn   func(t *testing.T)
			}{
				{"sign in", c.signIn},
				{"upload", func(t *testing.T) { c.upload(t, file) }},
				{"pause, resume, cancel", func(t *testing.T) { c.pauseResumeCancel(t, small, cancel) }},
				{"resume after reload", func(t *testing.T) { c.resumeAfterReload(t, resume) }},
				{"markup as text", c.markupAsText},
				{"admin", c.admin},
			} {
				start := time.Now()
				step.fn(t)
				t.Logf("%s: %v", step.name, time.Since(start).Round(time.Millisecond))
			}
		})
	}
}

// testFile writes mib MiB of test data: one random MiB, each copy stamped
// with the file's name and its index, so every part differs (crypto/rand
// is slow under -race).
func testFile(t *testing.T, name string, mib int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	block := randomData(1 << 20)
	for i := range mib {
		copy(block, fmt.Sprintf("%s %08d", name, i))
		if _, err := f.Write(block); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

// consoleOpen: with no keys configured (make run) the console opens at once,
// and the page carries its security headers.
func consoleOpen(t *testing.T, browser context.Context) {
	p := startFerryd(t, "--data-dir "+t.TempDir())
	r := testhttp.Do(t, "GET", "http://"+p.addr+"/console/", nil)
	csp := r.Header.Get("Content-Security-Policy")
	if r.Code != 200 || !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") ||
		strings.Contains(csp, "unsafe-inline") || r.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Fatalf("GET /console/: %d, headers %v", r.Code, r.Header)
	}
	tb := newTab(t, browser, p.addr, t.TempDir())
	tb.run(t, "open the console", chromedp.Navigate(tb.base+"/console/"))
	tb.waitJS(t, "open access", `document.querySelector('#who').textContent.includes('open access') && document.querySelector('#view h1').textContent === 'Buckets'`)
	if eval[bool](t, tb, `!document.querySelector('#signin').hidden`) {
		t.Fatal("the sign-in form shows with no keys configured")
	}
}

type console struct {
	*tab
	p                *proc
	api              string // ferryd's own URL, for the test's checks
	adminKey, photos string // API keys: an admin, and a writer limited to bucket photos
	roots            string // FERRY_ALLOWED_ROOTS, for file:// registrations
}

func startConsole(t *testing.T, be backendEnv, browser context.Context, shots string) *console {
	t.Helper()
	admin, k1 := auth.NewKey("admin", []string{"*"}, auth.Admin)
	photos, k2 := auth.NewKey("photos", []string{"photos"}, auth.Write)
	data, err := yaml.Marshal(map[string][]auth.Key{"keys": {k1, k2}})
	if err != nil {
		t.Fatal(err)
	}
	keys := filepath.Join(t.TempDir(), "keys.yaml")
	if err := os.WriteFile(keys, data, 0o600); err != nil {
		t.Fatal(err)
	}
	roots := t.TempDir()
	p := startFerryd(t, be.args, append(be.env, "FERRY_API_KEYS_FILE="+keys, "FERRY_ALLOWED_ROOTS="+roots)...)
	c := &console{tab: newTab(t, browser, p.addr, shots), p: p, api: "http://" + p.addr, adminKey: admin, photos: photos, roots: roots}
	for _, bkt := range []string{"photos", "private"} {
		c.put(t, bkt, "hello.txt", "text/plain", []byte("hello "+bkt))
	}
	return c
}

// do calls ferryd directly with the admin key.
func (c *console) do(t *testing.T, method, path string, body []byte, hdr ...string) testhttp.Answer {
	t.Helper()
	var r *bytes.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	hdr = append(hdr, "Authorization", "Bearer "+c.adminKey)
	if r == nil {
		return testhttp.Do(t, method, c.api+path, nil, hdr...)
	}
	return testhttp.Do(t, method, c.api+path, r, hdr...)
}

// put stores a small file through the native API.
func (c *console) put(t *testing.T, bkt, key, mimeType string, data []byte) {
	t.Helper()
	spec, _ := json.Marshal(map[string]any{"bucket": bkt, "key": key, "mime_type": mimeType, "size": len(data)})
	r := c.do(t, "POST", "/v1/files", spec)
	if r.Code != 201 {
		t.Fatalf("create %s/%s: %d %s", bkt, key, r.Code, r.Body)
	}
	id := r.JSON(t)["id"].(string)
	if r := c.do(t, "POST", "/v1/files/session:"+id, data, "Content-Type", "application/octet-stream", "Upload-Offset", "0"); r.Code != 200 {
		t.Fatalf("append %s/%s: %d %s", bkt, key, r.Code, r.Body)
	}
}

// signIn: the sign-in page, a bucket-scoped key that sees only its bucket
// and no admin pages, then sign out and in again as admin.
func (c *console) signIn(t *testing.T) {
	c.run(t, "open the console", chromedp.Navigate(c.base+"/console/"),
		chromedp.WaitVisible(chromedp.CSS(`#api-key`)))
	if eval[string](t, c.tab, `document.querySelector('label[for=api-key]').textContent`) != "API key" ||
		eval[string](t, c.tab, `document.querySelector('#signin-form button').textContent`) != "Sign in" {
		t.Fatal("the key field is not labelled \"API key\", or its button is not \"Sign in\"")
	}
	c.shot(t, "console-signin")
	c.signInWith(t, c.photos)
	c.waitJS(t, "the photos bucket", `document.querySelector('tr[data-bucket=photos]')`)
	if eval[bool](t, c.tab, `!!document.querySelector('tr[data-bucket=private]')`) {
		t.Fatal("a key limited to photos sees bucket private")
	}
	if eval[bool](t, c.tab, `[...document.querySelectorAll('#nav [data-admin]')].some(a => !a.hidden)`) {
		t.Fatal("a bucket-scoped key is shown the admin pages")
	}
	if eval[string](t, c.tab, `document.cookie`) != "" {
		t.Fatal("the console set a cookie")
	}
	c.run(t, "sign out", chromedp.Click(chromedp.CSS(`#signout`)), chromedp.WaitVisible(chromedp.CSS(`#api-key`)))
	if eval[string](t, c.tab, `sessionStorage.getItem('ferry.apiKey') || ''`) != "" {
		t.Fatal("the key stayed in sessionStorage after signing out")
	}
	c.signInWith(t, c.adminKey)
	c.waitJS(t, "the admin's buckets", `document.querySelector('tr[data-bucket=private]') && !document.querySelector('#nav [data-view=admin]').hidden`)
}

func (c *console) signInWith(t *testing.T, key string) {
	t.Helper()
	c.run(t, "sign in", chromedp.SendKeys(chromedp.CSS(`#api-key`), key), chromedp.Click(chromedp.CSS(`#signin-form button`)))
}

// upload: /console/?bucket=NAME, "Upload files" with the picker, the
// progress bars, and the bytes back through :content.
func (c *console) upload(t *testing.T, path string) {
	c.run(t, "open bucket up", chromedp.Navigate(c.base+"/console/?bucket=up"), chromedp.WaitVisible(chromedp.CSS(`#upload-files`)))
	if eval[string](t, c.tab, `document.querySelector('label[for=upload-files]').textContent`) != "Upload files" {
		t.Fatal(`the file input is not labelled "Upload files"`)
	}
	empty := filepath.Join(t.TempDir(), "empty file.txt") // two files at once; a name a key cannot hold
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	c.run(t, "pick "+path, chromedp.SetUploadFiles(chromedp.CSS(`#upload-files`), []string{path, empty}))
	bar := `document.querySelector('[role=progressbar][aria-label="Upload progress of big.bin"]')`
	c.waitJS(t, "the upload's end", bar+`.getAttribute('aria-valuenow') === '100' && document.querySelector('tr[data-key="big.bin"]') && document.querySelector('tr[data-key="empty_file.txt"]')`)
	if r := c.do(t, "GET", "/v1/files/up/empty_file.txt", nil); r.Code != 200 || r.JSON(t)["bytes"] != float64(0) {
		t.Fatalf("the empty file: %d %s", r.Code, r.Body)
	}
	if eval[string](t, c.tab, `document.querySelector('[role=progressbar][aria-label="Total upload progress"]').getAttribute('aria-valuenow')`) != "100" {
		t.Fatal("the total progress bar is not at 100")
	}
	c.sameBytes(t, "up", "big.bin", path)
}

// sameBytes checks the stored file against the local one through :content,
// streaming both through SHA-256 (a 64 MiB io.ReadAll took 20 s with -race).
func (c *console) sameBytes(t *testing.T, bkt, key, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	want := sha256.New()
	if _, err := io.CopyBuffer(want, f, make([]byte, 1<<20)); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", c.api+"/v1/files/"+bkt+"/"+key+":content", nil)
	req.Header.Set("Authorization", "Bearer "+c.adminKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got := sha256.New()
	n, err := io.CopyBuffer(got, resp.Body, make([]byte, 1<<20))
	if err != nil || resp.StatusCode != 200 || !bytes.Equal(got.Sum(nil), want.Sum(nil)) {
		t.Fatalf("%s/%s:content: %d, %d bytes (%v), not the bytes uploaded", bkt, key, resp.StatusCode, n, err)
	}
}

// receivedPartBytes is ferryd's count of request body bytes on the parts
// route: what the browser sent as parts.
func (c *console) receivedPartBytes(t *testing.T) int64 {
	t.Helper()
	return metricValue(t, c.do(t, "GET", "/metrics", nil).Body,
		`ferry_http_received_bytes_total{route="/v1/files/session:{id}/parts/{n}"}`)
}

// idle waits until ferryd serves no request but the one asking.
func (c *console) idle(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for metricValue(t, c.do(t, "GET", "/metrics", nil).Body, "ferry_http_requests_in_flight ") > 1 {
		if time.Now().After(deadline) {
			t.Fatal("ferryd still serves requests 10 s after the reload")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// metricValue is the value of the first sample whose line starts with prefix.
func metricValue(t *testing.T, exposition []byte, prefix string) int64 {
	t.Helper()
	sc := bufio.NewScanner(bytes.NewReader(exposition))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, prefix) {
			n, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
			if err != nil {
				t.Fatal(err)
			}
			return int64(n)
		}
	}
	return 0
}

// landedBytes is what a session of key holds (GET /v1/sessions), or -1.
func (c *console) landedBytes(t *testing.T, key string) int64 {
	t.Helper()
	var page struct {
		Data []struct {
			Key      string   `json:"key"`
			Size     int64    `json:"size"`
			PartSize int64    `json:"part_size"`
			Parts    [][2]int `json:"parts"`
		} `json:"data"`
	}
	if err := json.Unmarshal(c.do(t, "GET", "/v1/sessions", nil).Body, &page); err != nil {
		t.Fatal(err)
	}
	for _, s := range page.Data {
		if s.Key == key {
			var n int64
			for _, pr := range s.Parts {
				n += min(int64(pr[1])*s.PartSize, s.Size) - int64(pr[0]-1)*s.PartSize
			}
			return n
		}
	}
	return -1
}

// pauseResumeCancel: Pause stops an upload and Resume finishes it; Cancel
// aborts one, its session and its saved state.
func (c *console) pauseResumeCancel(t *testing.T, pausePath, cancelPath string) {
	c.throttle.Store(true)
	defer c.throttle.Store(false)
	row := func(name string) string {
		return `document.querySelector('[role=progressbar][aria-label="Upload progress of ` + name + `"]').parentElement`
	}
	c.run(t, "pick "+pausePath, chromedp.SetUploadFiles(chromedp.CSS(`#upload-files`), []string{pausePath}))
	c.waitJS(t, "progress", `+`+row("pause.bin")+`.querySelector('[role=progressbar]').getAttribute('aria-valuenow') >= 5`)
	c.run(t, "pause", chromedp.Click(chromedp.CSS(`li[data-key="pause.bin"] button`)))
	c.waitJS(t, "paused", row("pause.bin")+`.textContent.includes('· paused')`)
	c.throttle.Store(false)
	c.run(t, "resume", chromedp.Click(chromedp.CSS(`li[data-key="pause.bin"] button`)))
	c.waitJS(t, "resumed to the end", row("pause.bin")+`.querySelector('[role=progressbar]').getAttribute('aria-valuenow') === '100' && document.querySelector('tr[data-key="pause.bin"]')`)
	c.sameBytes(t, "up", "pause.bin", pausePath)

	c.throttle.Store(true)
	c.run(t, "pick "+cancelPath, chromedp.SetUploadFiles(chromedp.CSS(`#upload-files`), []string{cancelPath}))
	c.waitJS(t, "progress", `+`+row("cancel.bin")+`.querySelector('[role=progressbar]').getAttribute('aria-valuenow') >= 5`)
	c.run(t, "cancel", chromedp.Click(chromedp.CSS(`li[data-key="cancel.bin"] button.danger`)))
	c.waitJS(t, "cancelled", row("cancel.bin")+`.textContent.includes('· cancelled') && !localStorage.getItem('ferry.uploads.v1').includes('cancel.bin')`)
	c.throttle.Store(false)
	deadline := time.Now().Add(15 * time.Second)
	for c.landedBytes(t, "cancel.bin") >= 0 {
		if time.Now().After(deadline) {
			t.Fatal("the cancelled upload's session is still live after 15 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// resumeAfterReload: an upload slowed by the proxy shows its progress and
// its live session; the page reloads mid-upload, the file is picked again,
// and only what had not landed is sent.
func (c *console) resumeAfterReload(t *testing.T, path string) {
	size := fileSize(t, path)
	c.throttle.Store(true)
	c.run(t, "pick "+path, chromedp.SetUploadFiles(chromedp.CSS(`#upload-files`), []string{path}))
	bar := `document.querySelector('[role=progressbar][aria-label="Upload progress of resume.bin"]')`
	c.waitJS(t, "upload progress", bar+` && +`+bar+`.getAttribute('aria-valuenow') >= 5`)
	c.shot(t, "console-upload")
	c.run(t, "live sessions", chromedp.Click(chromedp.CSS(`#nav [data-view=sessions]`)))
	c.waitJS(t, "the live session", `[...document.querySelectorAll('tr[data-session]')].some(r => r.textContent.includes('up/resume.bin') && r.textContent.includes('/s'))`)
	c.shot(t, "console-sessions")
	deadline := time.Now().Add(20 * time.Second)
	for c.landedBytes(t, "resume.bin") <= 0 {
		if time.Now().After(deadline) {
			t.Fatal("no part landed in 20 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.cut.Store(true) // the parts in flight stop where they are (see tab.cut)
	c.run(t, "reload mid-upload", chromedp.Reload())
	c.throttle.Store(false)
	c.cut.Store(false)
	c.idle(t)
	before, landed := c.receivedPartBytes(t), c.landedBytes(t, "resume.bin")
	if landed <= 0 || landed >= size {
		t.Fatalf("after the reload %d of %d bytes had landed; the test needs a partial upload", landed, size)
	}
	c.run(t, "open bucket up", chromedp.Navigate(c.base+"/console/?bucket=up"), chromedp.WaitVisible(chromedp.CSS(`#upload-files`)))
	c.waitJS(t, "the interrupted upload", `document.querySelector('#uploads-interrupted').textContent.includes('resume.bin')`)
	c.run(t, "pick it again", chromedp.SetUploadFiles(chromedp.CSS(`#upload-files`), []string{path}))
	c.waitJS(t, "the resumed upload's end", bar+`.getAttribute('aria-valuenow') === '100' && document.querySelector('tr[data-key="resume.bin"]')`)
	sent := c.receivedPartBytes(t) - before
	t.Logf("resume: %d of %d bytes had landed at the reload; %d sent after it", landed, size, sent)
	if sent > size-landed || sent >= size {
		t.Fatalf("after the reload the console sent %d bytes; %d had landed of %d, so at most %d were due", sent, landed, size, size-landed)
	}
	if !strings.Contains(eval[string](t, c.tab, bar+`.parentElement.textContent`), "resumed at") {
		t.Fatal("the upload does not say it resumed")
	}
	c.sameBytes(t, "up", "resume.bin", path)
	c.deleteFile(t, "resume.bin")
}

func fileSize(t *testing.T, path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

// deleteFile deletes through the row's button and the confirmation.
func (c *console) deleteFile(t *testing.T, key string) {
	row := fmt.Sprintf(`tr[data-key=%q]`, key)
	c.run(t, "delete "+key, chromedp.Click(chromedp.CSS(row+` button.danger`)),
		chromedp.WaitVisible(chromedp.CSS(`#confirm`)), chromedp.Click(chromedp.CSS(`#confirm-ok`)),
		chromedp.WaitNotPresent(chromedp.CSS(row)))
	if r := c.do(t, "GET", "/v1/files/up/"+key, nil); r.Code != 404 {
		t.Fatalf("after delete, GET %s: %d", key, r.Code)
	}
}

// markupAsText: a MIME type and an OpenAI filename that carry markup show
// as text, and no element is made from them.
func (c *console) markupAsText(t *testing.T) {
	const img = `<img src=x onerror=alert(1)>`
	c.put(t, "up", "markup.txt", `text/plain; name="`+img+`"`, []byte("x"))
	var body bytes.Buffer
	w := multipart.NewWriter(&body)
	_ = w.WriteField("purpose", "assistants")
	fw, _ := w.CreateFormFile("file", img+".txt")
	_, _ = fw.Write([]byte("markup"))
	_ = w.Close()
	r := c.do(t, "POST", "/v1/openai/v1/files", body.Bytes(), "Content-Type", w.FormDataContentType())
	if r.Code != 200 {
		t.Fatalf("OpenAI upload: %d %s", r.Code, r.Body)
	}
	for _, key := range []string{"2026/12/report.csv", "2026/notes.md", "readme.txt"} {
		c.put(t, "up", key, "", []byte("some text\n"))
	}
	c.run(t, "open bucket up", chromedp.Navigate(c.base+"/console/?bucket=up"), chromedp.WaitVisible(chromedp.CSS(`tr[data-key="markup.txt"]`)))
	c.waitJS(t, "the MIME type as text", `document.body.innerText.includes('name="`+img+`"')`)
	c.shot(t, "console-bucket")
	c.run(t, "open bucket openai", chromedp.Navigate(c.base+"/console/?bucket=openai"))
	c.waitJS(t, "the OpenAI file's folder", `document.querySelector('tr.folder a')`)
	c.run(t, "open its folder", chromedp.Click(chromedp.CSS(`tr.folder a`)))
	c.waitJS(t, "the OpenAI file", `document.querySelector('tr[data-key] button.link')`)
	c.run(t, "its details", chromedp.Click(chromedp.CSS(`tr[data-key] button.link`)))
	c.waitJS(t, "the OpenAI filename as text", `document.querySelector('#details').innerText.includes('`+img+`.txt')`)
	if n := eval[int](t, c.tab, `document.querySelectorAll('img').length`); n != 0 || c.dialogs.Load() != 0 {
		t.Fatalf("stored markup became %d img elements and %d dialogs", n, c.dialogs.Load())
	}
}

// admin: the health glance, and registering and unregistering a
// file:// location.
func (c *console) admin(t *testing.T) {
	dir := filepath.Join(c.roots, "shared")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	c.run(t, "admin page", chromedp.Navigate(c.base+"/console/?view=admin"))
	health := `document.querySelector('[aria-label=Health]')`
	c.waitJS(t, "the health glance", health+` && /ready/.test(`+health+`.innerText) && !`+health+`.innerText.includes('…')`)
	c.run(t, "register", chromedp.SendKeys(chromedp.CSS(`#reg-name`), "shared"),
		chromedp.SendKeys(chromedp.CSS(`#reg-location`), "file://"+dir),
		chromedp.Click(chromedp.CSS(`#reg-location ~ button`)),
		chromedp.WaitVisible(chromedp.CSS(`[aria-label=Registrations] tr[data-bucket=shared]`)))
	c.shot(t, "console-admin")
	c.run(t, "unregister", chromedp.Click(chromedp.CSS(`tr[data-bucket=shared] button.danger`)),
		chromedp.WaitVisible(chromedp.CSS(`#confirm`)), chromedp.Click(chromedp.CSS(`#confirm-ok`)),
		chromedp.WaitNotPresent(chromedp.CSS(`[aria-label=Registrations] tr[data-bucket=shared]`)))
	if r := c.do(t, "GET", "/v1/files/shared", nil); r.Code != 404 {
		t.Fatalf("after unregister, GET /v1/files/shared: %d", r.Code)
	}
	// Another origin cannot read the API: no CORS is configured.
	if got := c.crossOriginFetch(t, c.base+"/v1/files", `{headers: {Authorization: 'Bearer `+c.adminKey+`'}}`); got != -1 {
		t.Fatalf("a page on another origin read /v1/files: %d", got)
	}
}
