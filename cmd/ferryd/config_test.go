package main

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/ferryhq/ferry/auth"
)

// ferrydExit runs the test binary as ferryd with args and env, and
// returns its stderr and exit error; it never serves (every case fails
// before listening, or is ferryd config).
func ferrydExit(t *testing.T, args string, env ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = cleanEnv(append(env, "FERRYD_TEST_MAIN=1", "FERRYD_TEST_ARGS="+args)...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.String(), errOut.String(), err
}

// ferryd config prints every setting with its value and its source, and
// no secret: not the S3 key, not a password in a URL, not the keys file.
func TestConfigCommand(t *testing.T) {
	dir := t.TempDir()
	secret, key := auth.NewKey("ops", nil, auth.Admin)
	keysFile := filepath.Join(dir, "keys.yaml")
	if err := os.WriteFile(keysFile, []byte("keys:\n  - {name: ops, sha256: "+key.SHA256+", access: admin}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "ferry.yaml")
	if err := os.WriteFile(file, []byte("log: {format: json}\nsessions: {ttl: 2h}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	lookup := lookupEnv(map[string]string{"FERRY_REDIS_URL": "redis://ferry:redis-pass@redis:6379/0", "FERRY_S3_BUCKET": "ferry",
		"AWS_ACCESS_KEY_ID": "AKIAEXAMPLE", "AWS_SECRET_ACCESS_KEY": "s3-secret", "FERRY_API_KEYS_FILE": keysFile,
		"FERRY_ADDR": "0.0.0.0:8321", "FERRY_SESSION_TTL": "3h"})
	var out, errOut bytes.Buffer
	if err := showConfig([]string{"--config", file, "--data-dir", dir, "--log-level", "debug"}, lookup, &out, &errOut); err != nil {
		t.Fatalf("ferryd config: %v\n%s", err, errOut.String())
	}
	rows := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n")[1:] {
		f := strings.Fields(line)
		rows[f[0]] = strings.Join(f[1:], " ")
	}
	for setting, want := range map[string]string{
		"addr":                      "0.0.0.0:8321 env FERRY_ADDR",
		"data_dir":                  dir + " flag --data-dir",
		"log.level":                 "debug flag --log-level",
		"log.format":                "json file " + file,
		"sessions.ttl":              "3h env FERRY_SESSION_TTL",
		"shutdown_timeout":          "30s default",
		"redis.url":                 "redis://ferry:xxxxx@redis:6379/0 env FERRY_REDIS_URL",
		"s3.access_key_id":          "AKIAEXAMPLE env AWS_ACCESS_KEY_ID",
		"s3.secret_access_key":      "******** env AWS_SECRET_ACCESS_KEY",
		"auth.keys_file":            keysFile + " env FERRY_API_KEYS_FILE",
		"redis.min_replicas_ack":    "0 default",
		"redis.replica_ack_timeout": "1s default",
	} {
		if rows[setting] != want {
			t.Errorf("%s: %q, want %q", setting, rows[setting], want)
		}
	}
	for _, s := range []string{"redis-pass", "s3-secret", key.SHA256, secret} {
		if strings.Contains(out.String(), s) {
			t.Errorf("ferryd config shows a secret (%s):\n%s", s, out.String())
		}
	}
}

// ferryd config refuses what ferryd refuses to start on, with the same
// message and a non-zero exit: every configuration problem at once, and
// a keys file that does not parse.
func TestConfigRefusesLikeFerryd(t *testing.T) {
	dir := t.TempDir()
	badKeys := filepath.Join(dir, "keys.yaml")
	if err := os.WriteFile(badKeys, []byte("addr: 0.0.0.0:8321\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args string
		env  []string
		want []string
	}{
		{"env and validation", "--data-dir " + dir, []string{"FERRY_SESSION_TTL=banana", "FERRY_SESSION_MAX_SIZE=lots", "FERRY_LOG_FORMAT=xml"},
			[]string{`FERRY_SESSION_TTL="banana": not a duration`, `FERRY_SESSION_MAX_SIZE="lots": not a whole number`, `log.format "xml": use text or json`}},
		{"replicas without redis", "--data-dir " + dir, []string{"FERRY_REDIS_MIN_REPLICAS_ACK=1", "FERRY_REDIS_REPLICA_ACK_TIMEOUT=0s"},
			[]string{"redis.min_replicas_ack 1 needs Redis: the embedded store (bbolt) has no replicas", "redis.replica_ack_timeout 0s must be from 1ms to 2s"}},
		{"keys file", "--data-dir " + dir, []string{"FERRY_API_KEYS_FILE=" + badKeys},
			[]string{"keys file " + badKeys, "field addr not found", "(auth.keys_file, FERRY_API_KEYS_FILE)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, served, serveErr := ferrydExit(t, "--addr 127.0.0.1:0 "+tc.args, tc.env...)
			out, shown, showErr := ferrydExit(t, "config --addr 127.0.0.1:0 "+tc.args, tc.env...)
			var exit *exec.ExitError
			if !errors.As(serveErr, &exit) || !errors.As(showErr, &exit) || exit.ExitCode() != 1 {
				t.Fatalf("exits: ferryd %v, ferryd config %v; want both 1", serveErr, showErr)
			}
			if served != shown || out != "" {
				t.Fatalf("ferryd said:\n%s\nferryd config said:\n%s%s", served, shown, out)
			}
			for _, want := range tc.want {
				if !strings.Contains(shown, want) {
					t.Errorf("the refusal does not say %q:\n%s", want, shown)
				}
			}
		})
	}
}

// ferryd --help points to ferryd config and to the README's table.
func TestHelpNamesConfigCommand(t *testing.T) {
	var out bytes.Buffer
	err := run(t.Context(), []string{"--help"}, lookupEnv(nil), &out, nil)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("err = %v", err)
	}
	for _, want := range []string{"ferryd config [flags]", "Configuration section of README.md", "-read-idle-timeout duration"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("--help lacks %q:\n%s", want, out.String())
		}
	}
	if n := len(regexp.MustCompile(`(?m)^Usage:`).FindAllString(out.String(), -1)); n != 1 {
		t.Errorf("--help prints its usage %d times:\n%s", n, out.String())
	}
}

func lookupEnv(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}
