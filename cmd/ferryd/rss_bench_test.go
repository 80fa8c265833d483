package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// BenchmarkConcurrentUploadsRSS runs 100 uploads at once against a real
// ferryd on Redis + S3, in 8 MiB chunks at two file sizes and in 1 MiB
// chunks (held back in Redis until a part gathers), and reports the
// process's peak RSS. Bounded memory means the peaks are alike.
//
//	CI=1 scripts/test.sh -run '^$' -bench ConcurrentUploadsRSS -benchtime 1x ./cmd/ferryd/
func BenchmarkConcurrentUploadsRSS(b *testing.B) {
	const uploads = 100
	for _, c := range []struct{ chunk, size int }{{8 << 20, 16 << 20}, {8 << 20, 64 << 20}, {1 << 20, 16 << 20}} {
		chunk, size := c.chunk, c.size
		data := randomData(chunk)
		b.Run(fmt.Sprintf("chunk=%dMiB/file=%dMiB", chunk>>20, size>>20), func(b *testing.B) {
			be := redisS3Env(b)
			// Limits off: more iterations than -benchtime 1x would pass 100 creates a minute.
			p := startFerryd(b, be.args, append(be.env, "FERRY_LIMIT_UPLOADS_PER_MINUTE=0")...)
			client := &http.Client{Transport: &http.Transport{MaxConnsPerHost: uploads, MaxIdleConnsPerHost: uploads}}
			b.SetBytes(int64(uploads * size))
			start := time.Now()
			for b.Loop() {
				var wg sync.WaitGroup
				for u := range uploads {
					wg.Go(func() {
						body := fmt.Sprintf(`{"bucket":"rss","key":"f%d","size":%d}`, u, size)
						resp, err := client.Post("http://"+p.addr+"/v1/files", "application/json", strings.NewReader(body))
						if err != nil {
							b.Error(err)
							return
						}
						var id string
						_, _ = fmt.Sscanf(readAll(resp), `{"id":%q`, &id)
						for off := 0; off < size; off += chunk {
							req, _ := http.NewRequest("POST", "http://"+p.addr+"/v1/files/session:"+id, bytes.NewReader(data))
							req.Header.Set("Upload-Offset", strconv.Itoa(off))
							resp, err := client.Do(req)
							if err != nil {
								b.Error(err)
								return
							}
							if got := readAll(resp); resp.StatusCode != 200 {
								b.Errorf("chunk at %d: %d %s", off, resp.StatusCode, got)
								return
							}
						}
					})
				}
				wg.Wait()
			}
			b.ReportMetric(float64(peakRSS(b, p.cmd.Process.Pid))/(1<<20), "peak_RSS_MiB")
			b.ReportMetric(float64(uploads*size)/(1<<20)/time.Since(start).Seconds()/float64(b.N), "MiB/s")
		})
	}
}

func readAll(resp *http.Response) string {
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	return buf.String()
}

// peakRSS is VmHWM, the process's high-water resident set, in bytes.
func peakRSS(b *testing.B, pid int) int64 {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	b.Fatal("no VmHWM")
	return 0
}

// cpuTime is the user and system CPU a process has used, from
// /proc/<pid>/stat (in clock ticks of 10 ms).
func cpuTime(b *testing.B, pid int) time.Duration {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:])) // the name may hold spaces
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		b.Fatalf("/proc/%d/stat: %v %v", pid, err1, err2)
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// BenchmarkDownload takes turns reading a 64 MiB file through ferryd
// (proxied), through ferryd with downloads.redirect: presigned (a 307, then
// straight from S3), and with a direct S3 GetObject, and reports each
// against direct, with the CPU the proxying ferryd spends per GiB served
// (on a 2-core loopback it competes with the S3 server and the client).
//
//	CI=1 scripts/test.sh -run '^$' -bench Download -benchtime 10x ./cmd/ferryd/
func BenchmarkDownload(b *testing.B) {
	const size = 64 << 20
	be := redisS3Env(b)
	p := startFerryd(b, be.args, be.env...)
	q := startFerryd(b, be.args, append(be.env, "FERRY_DOWNLOADS_REDIRECT=presigned")...)
	uploadHTTP(b, p, "dl", "f", randomData(size), 16<<20)
	s3c := s3Client(b, be)
	get := func(url string) {
		resp, err := http.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		n := drain(resp.Body)
		resp.Body.Close()
		if n != size {
			b.Fatalf("read %d bytes", n)
		}
	}
	sides := []func(){
		func() { get("http://" + p.addr + "/v1/files/dl/f:content") },
		func() { get("http://" + q.addr + "/v1/files/dl/f:content") },
		func() {
			if n := s3c(b, "dl/f"); n != size {
				b.Fatalf("read %d bytes", n)
			}
		},
	}
	var took [3]time.Duration
	var proxyCPU time.Duration
	b.SetBytes(3 * size)
	for i := 0; b.Loop(); i++ {
		for k := range sides {
			j := (k + i) % len(sides) // each goes first in turn
			cpu, start := cpuTime(b, p.cmd.Process.Pid), time.Now()
			sides[j]()
			took[j] += time.Since(start)
			if j == 0 {
				proxyCPU += cpuTime(b, p.cmd.Process.Pid) - cpu
			}
		}
	}
	mibps := func(d time.Duration) float64 { return float64(b.N) * size / (1 << 20) / d.Seconds() }
	b.ReportMetric(mibps(took[0]), "ferry_MiB/s")
	b.ReportMetric(mibps(took[1]), "presigned_MiB/s")
	b.ReportMetric(mibps(took[2]), "direct_MiB/s")
	b.ReportMetric(took[2].Seconds()/took[0].Seconds(), "ferry/direct")
	b.ReportMetric(took[2].Seconds()/took[1].Seconds(), "presigned/direct")
	b.ReportMetric(float64(proxyCPU.Milliseconds())/(float64(b.N)*size/(1<<30)), "ferryd_cpu_ms/GiB")
}

// BenchmarkDownloadEmbedded reads a 64 MiB file through ferryd on the
// embedded stores, where a whole-file download over plain TCP goes out
// with sendfile: its throughput and the CPU ferryd spends per GiB.
//
//	CI=1 scripts/test.sh -run '^$' -bench DownloadEmbedded -benchtime 30x ./cmd/ferryd/
func BenchmarkDownloadEmbedded(b *testing.B) {
	const size = 64 << 20
	p := startFerryd(b, "--data-dir "+b.TempDir())
	uploadHTTP(b, p, "dl", "f", randomData(size), 16<<20)
	var cpu, wall time.Duration
	b.SetBytes(size)
	for b.Loop() {
		c0, t0 := cpuTime(b, p.cmd.Process.Pid), time.Now()
		resp, err := http.Get("http://" + p.addr + "/v1/files/dl/f:content")
		if err != nil {
			b.Fatal(err)
		}
		if n := drain(resp.Body); n != size {
			b.Fatalf("read %d bytes", n)
		}
		resp.Body.Close()
		wall += time.Since(t0)
		cpu += cpuTime(b, p.cmd.Process.Pid) - c0
	}
	gib := float64(b.N) * size / (1 << 30)
	b.ReportMetric(gib*1024/wall.Seconds(), "ferry_MiB/s")
	b.ReportMetric(float64(cpu.Milliseconds())/gib, "ferryd_cpu_ms/GiB")
}

// drain reads r to the end in 1 MiB steps; both sides of a comparison use it
// (io.Discard's own ReadFrom reads 8 KiB at a time and would handicap one).
func drain(r io.Reader) int64 {
	n, _ := io.CopyBuffer(struct{ io.Writer }{io.Discard}, struct{ io.Reader }{r}, make([]byte, 1<<20))
	return n
}
