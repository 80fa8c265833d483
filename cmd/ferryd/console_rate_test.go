package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// The console's upload rate against the ferry CLI's, side by side in one
// run, for one 256 MiB file on loopback (both with 4 parts in flight; the
// CLI's are 8 MiB, the console's 16 MiB), and the console's load time and
// bytes. A measurement, not a
// check: docs/console.md has the figures and this command.
//
//	FERRY_CONSOLE_BENCH=1 scripts/test.sh -count=1 -v -run TestConsoleUploadRate ./cmd/ferryd/
func TestConsoleUploadRate(t *testing.T) {
	if os.Getenv("FERRY_CONSOLE_BENCH") == "" {
		t.Skip("a measurement: set FERRY_CONSOLE_BENCH=1 (docs/console.md)")
	}
	browser := startBrowser(t)
	file := testFile(t, "rate.bin", 256)
	cli := filepath.Join(t.TempDir(), "ferry")
	if out, err := exec.Command("go", "build", "-o", cli, "github.com/ferryhq/ferry/cmd/ferry").CombinedOutput(); err != nil {
		t.Fatalf("build the CLI: %v\n%s", err, out)
	}
	for _, name := range []string{"embedded", "redis+s3"} {
		mk := map[string]func(testing.TB) backendEnv{"embedded": embeddedEnv, "redis+s3": redisS3Env}[name]
		t.Run(name, func(t *testing.T) {
			be := mk(t)
			p := startFerryd(t, be.args, be.env...)
			tb := newTab(t, browser, p.addr, t.TempDir())
			base := "http://" + p.addr // straight to ferryd, as the CLI goes
			consoleLoad(t, tb, base)
			const mib = 256.0
			var cliSum, webSum float64
			for round := range 3 {
				start := time.Now()
				cmd := exec.Command(cli, "--server", base, "upload", "-quiet", file, "rate/cli.bin")
				cmd.Env = append(cleanEnv(), "FERRY_STATE_DIR="+t.TempDir())
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Fatalf("ferry upload: %v\n%s", err, out)
				}
				cliRate := mib / time.Since(start).Seconds()
				tb.run(t, "pick", chromedp.SetUploadFiles(chromedp.CSS(`#upload-files`), []string{file}))
				done := `document.querySelectorAll('#uploads-list li[data-ms]').length === ` + strconv.Itoa(round+1)
				tb.waitJS(t, "the console's upload", done)
				ms := eval[float64](t, tb, `+document.querySelector('#uploads-list li[data-ms]').dataset.ms`)
				webRate := mib / (ms / 1000)
				t.Logf("round %d: ferry upload %.0f MiB/s, console %.0f MiB/s (%.2f×)", round+1, cliRate, webRate, webRate/cliRate)
				cliSum += cliRate
				webSum += webRate
			}
			t.Logf("%s, 256 MiB, mean of 3: ferry upload %.0f MiB/s, console %.0f MiB/s: %.2f×", name, cliSum/3, webSum/3, webSum/cliSum)
		})
	}
}

// consoleLoad logs how long the console takes to show a bucket, cold
// (a new tab's first visit) and warm (a reload: every file revalidated by
// ETag), and the bytes it ships.
func consoleLoad(t *testing.T, tb *tab, base string) {
	for _, visit := range []string{"cold", "warm"} {
		if visit == "cold" {
			tb.run(t, "open the console", chromedp.Navigate(base+"/console/?bucket=rate"))
		} else {
			tb.run(t, "reload the console", chromedp.Reload())
		}
		shown := eval[float64](t, tb, `new Promise(ok => { const f = () => document.querySelector('#view table') ? ok(performance.now()) : requestAnimationFrame(f); f(); })`)
		loaded := eval[float64](t, tb, `performance.getEntriesByType('navigation')[0].loadEventEnd`)
		type sizes struct{ Files, Body, Transfer float64 }
		s := eval[sizes](t, tb, `(() => { const es = [performance.getEntriesByType('navigation')[0], ...performance.getEntriesByType('resource').filter(e => e.name.includes('/console/'))];
			return {Files: es.length, Body: es.reduce((n, e) => n + e.encodedBodySize, 0), Transfer: es.reduce((n, e) => n + e.transferSize, 0)}; })()`)
		t.Logf("console load (%s): page and modules loaded in %.0f ms, bucket shown in %.0f ms; %v files, %.0f bytes of body, %.0f bytes on the wire",
			visit, loaded, shown, s.Files, s.Body, s.Transfer)
	}
}
