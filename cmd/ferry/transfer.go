package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Resumption state: one small JSON file per unfinished transfer, named by a
// hash of everything that identifies it, so running the same command again
// finds it. A changed local file (size or mtime) is a different upload.
type state struct {
	Session string `json:"session,omitempty"` // upload
	ETag    string `json:"etag,omitempty"`    // download
	// A parallel download writes ranges out of order, so after a kill only
	// the first Have bytes of DEST.part are known to be whole.
	Ranged bool  `json:"ranged,omitempty"`
	Have   int64 `json:"have,omitempty"`
}

// defaultParallel is --parallel's requests in flight. Four streams get
// past a per-connection cap or a long round trip several times over, while
// a ferryd shared by many clients sees four connections (and S3 part
// uploads) per transfer, not dozens.
const defaultParallel = 4

func (x *cli) stateFlag(fs *flag.FlagSet) *string {
	dir := x.getenv("FERRY_STATE_DIR")
	if dir == "" {
		if cache, err := os.UserCacheDir(); err == nil {
			dir = filepath.Join(cache, "ferry")
		}
	}
	return fs.String("state-dir", dir, "where unfinished transfers are remembered ($FERRY_STATE_DIR)")
}

func statePath(dir string, parts ...string) string {
	sum := sha256.Sum256([]byte(strings.Join(parts, "\n")))
	return filepath.Join(dir, hex.EncodeToString(sum[:16])+".json")
}

func loadState(p string) state {
	var s state
	if b, err := os.ReadFile(p); err == nil {
		_ = json.Unmarshal(b, &s) // a damaged file only loses the resumption
	}
	return s
}

func saveState(p string, s state) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return err
	}
	b, _ := json.Marshal(s)
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, p)
}

// parseSize reads a byte count: 1048576, 512KiB, 8MiB, 1GiB (K, M, G too).
func parseSize(s string) (int64, error) {
	t := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSpace(s), "iB"), "B")
	mult := int64(1)
	if i := len(t) - 1; i > 0 {
		switch t[i] {
		case 'k', 'K':
			mult = 1 << 10
		case 'm', 'M':
			mult = 1 << 20
		case 'g', 'G':
			mult = 1 << 30
		}
		if mult > 1 {
			t = t[:i]
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(t), 10, 64)
	if err != nil || n <= 0 || n > (1<<62)/mult {
		return 0, errors.New("want a positive size such as 8MiB, 512KiB or 1048576")
	}
	return n * mult, nil
}

func unixTime(sec int64) string { return time.Unix(sec, 0).UTC().Format("2006-01-02 15:04:05") }
