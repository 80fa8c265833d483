package config

import (
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

func env(kv ...string) func(string) (string, bool) {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "ferry.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDefaultIsEmbeddedAndValid(t *testing.T) {
	cfg, err := Load(nil, env(), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("default config invalid: %v", err)
	}
	if cfg.Addr != "127.0.0.1:8321" || cfg.DataDir != "./data" || cfg.UsesRedis() || cfg.UsesS3() {
		t.Fatalf("default = %+v, want embedded 127.0.0.1:8321 ./data", cfg)
	}
}

// File, then env, then flags: each layer overrides the one before.
func TestLayering(t *testing.T) {
	p := writeFile(t, "addr: 127.0.0.1:1000\ndata_dir: /from/file\nlog:\n  level: debug\nsessions:\n  ttl: 2h\n")
	cfg, err := Load([]string{"--config", p, "--addr", "127.0.0.1:3000"},
		env("FERRY_ADDR", "127.0.0.1:2000", "FERRY_DATA_DIR", "/from/env", "FERRY_S3_PATH_STYLE", "true"), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Addr != "127.0.0.1:3000" {
		t.Errorf("addr = %q, want the flag's", cfg.Addr)
	}
	if cfg.DataDir != "/from/env" {
		t.Errorf("data_dir = %q, want the env's", cfg.DataDir)
	}
	if cfg.Log.Level != "debug" || cfg.Sessions.TTL != 2*time.Hour {
		t.Errorf("file values lost: %+v", cfg)
	}
	if !cfg.S3.PathStyle {
		t.Errorf("FERRY_S3_PATH_STYLE=true not applied")
	}
	if cfg.Log.Format != "text" {
		t.Errorf("unset value lost its default: %q", cfg.Log.Format)
	}
	cfg, err = Load(nil, env("FERRY_ALLOWED_ROOTS", "/srv/a::/srv/b"), io.Discard)
	if err != nil || len(cfg.Registration.AllowedRoots) != 2 || cfg.Registration.AllowedRoots[1] != "/srv/b" {
		t.Errorf("FERRY_ALLOWED_ROOTS=/srv/a::/srv/b gave %q, %v", cfg.Registration.AllowedRoots, err)
	}
	cfg, err = Load(nil, env("FERRY_REDIS_ADDRS", " h1:7000,,h2:7000 ", "FERRY_REDIS_MASTER_NAME", "m", "FERRY_REDIS_TLS", "true"), io.Discard)
	if err != nil || len(cfg.Redis.Addrs) != 2 || cfg.Redis.Addrs[1] != "h2:7000" || !cfg.Redis.TLS ||
		cfg.Redis.Topology() != RedisSentinel || !cfg.UsesRedis() {
		t.Errorf("FERRY_REDIS_ADDRS etc. gave %+v (%s), %v", cfg.Redis, cfg.Redis.Topology(), err)
	}
}

func TestLoadErrors(t *testing.T) {
	cases := []struct {
		name string
		args []string
		env  []string
		file string
		want string
	}{
		{"unknown yaml key", nil, nil, "adress: x\n", "field adress not found"},
		{"unknown nested key", nil, nil, "s3:\n  bucktet: b\n", "field bucktet not found"},
		{"bad yaml duration", nil, nil, "sessions:\n  ttl: forever\n", "line 2"},
		{"bad env bool", nil, []string{"FERRY_S3_PATH_STYLE", "yes please"}, "", "FERRY_S3_PATH_STYLE"},
		{"bad env duration", nil, []string{"FERRY_SESSION_TTL", "1 day"}, "", "FERRY_SESSION_TTL"},
		{"unknown flag", []string{"--adr", "x"}, nil, "", "adr"},
		{"stray argument", []string{"serve"}, nil, "", `unexpected argument "serve"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args
			if tc.file != "" {
				args = append([]string{"--config", writeFile(t, tc.file)}, args...)
			}
			_, err := Load(args, env(tc.env...), io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
	if _, err := Load([]string{"--config", "/nonexistent/ferry.yaml"}, env(), io.Discard); err == nil {
		t.Fatal("missing config file accepted")
	}
}

func TestValidate(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(*Config)
		want   string // "" means valid
	}{
		{"default", func(*Config) {}, ""},
		{"any interface without keys", func(c *Config) { c.Addr = ":8321" }, "FERRY_API_KEYS_FILE"},
		{"public address without keys", func(c *Config) { c.Addr = "10.0.0.5:8321" }, "FERRY_INSECURE_OPEN"},
		{"any interface with keys", func(c *Config) { c.Addr, c.Auth.KeysFile = ":8321", "keys.yaml" }, ""},
		{"any interface, insecure open", func(c *Config) { c.Addr, c.Auth.InsecureOpen = ":8321", true }, ""},
		{"ipv6 loopback", func(c *Config) { c.Addr = "[::1]:8321" }, ""},
		{"cors origin", func(c *Config) {
			c.Server.CORSOrigins = []string{"https://app.example.com", "http://localhost:5173", "*"}
		}, ""},
		{"cors origin with a path", func(c *Config) { c.Server.CORSOrigins = []string{"https://app.example.com/upload"} }, "not an origin"},
		{"presigned downloads", func(c *Config) { c.Downloads.Redirect = "presigned" }, ""},
		{"unknown download mode", func(c *Config) { c.Downloads.Redirect = "redirect" }, "use proxied"},
		{"presign ttl too long", func(c *Config) { c.Downloads.PresignTTL = 8 * 24 * time.Hour }, "168h"},
		{"cors bare host", func(c *Config) { c.Server.CORSOrigins = []string{"app.example.com"} }, "not an origin"},
		{"hostname", func(c *Config) { c.Addr = "localhost:8321" }, ""},
		{"no port", func(c *Config) { c.Addr = "127.0.0.1" }, "is not host:port"},
		{"port too big", func(c *Config) { c.Addr = "127.0.0.1:70000" }, "port"},
		{"port not a number", func(c *Config) { c.Addr = "127.0.0.1:http" }, "port"},
		{"bad host", func(c *Config) { c.Addr = "bad host!:80" }, "neither an IP"},
		{"empty data dir", func(c *Config) { c.DataDir = "" }, "data_dir is empty"},
		{"empty data dir ok with redis+s3", func(c *Config) {
			c.DataDir = ""
			c.Redis.URL = "redis://127.0.0.1:6379/0"
			c.S3.Bucket = "ferry"
		}, ""},
		{"log format", func(c *Config) { c.Log.Format = "xml" }, "log.format"},
		{"log level", func(c *Config) { c.Log.Level = "loud" }, "log.level"},
		{"redis scheme", func(c *Config) { c.Redis.URL = "http://127.0.0.1:6379" }, "scheme must be"},
		{"redis no host", func(c *Config) { c.Redis.URL = "redis://" }, "has no host"},
		{"allowed hosts", func(c *Config) { c.Server.AllowedHosts = []string{"ferry.example.com", "127.0.0.1", "[::1]"} }, ""},
		{"allowed host with port", func(c *Config) { c.Server.AllowedHosts = []string{"ferry.example.com:8321"} }, "not a host name"},
		{"redis cluster", func(c *Config) { c.Redis.Addrs = []string{"10.0.0.1:7000", "10.0.0.2:7000"} }, ""},
		{"redis sentinel", func(c *Config) { c.Redis.Addrs = []string{"10.0.0.1:26379"}; c.Redis.MasterName = "mymaster" }, ""},
		{"redis url and addrs", func(c *Config) { c.Redis.URL = "redis://h:6379"; c.Redis.Addrs = []string{"h:7000"} }, "both set"},
		{"redis addr without port", func(c *Config) { c.Redis.Addrs = []string{"10.0.0.1"} }, "not host:port"},
		{"redis mode unknown", func(c *Config) { c.Redis.Addrs = []string{"h:1"}; c.Redis.Mode = "ring" }, "use cluster or sentinel"},
		{"redis mode without addrs", func(c *Config) { c.Redis.Mode = "cluster" }, "need redis.addrs"},
		{"redis sentinel without master", func(c *Config) { c.Redis.Addrs = []string{"h:1"}; c.Redis.Mode = "sentinel" }, "needs redis.master_name"},
		{"redis cluster with master", func(c *Config) {
			c.Redis.Addrs = []string{"h:1"}
			c.Redis.Mode = "cluster"
			c.Redis.MasterName = "m"
		}, "for sentinel mode"},
		{"replicas ack with redis", func(c *Config) { c.Redis.URL = "redis://h:6379"; c.Redis.MinReplicasAck = 1 }, ""},
		{"replicas ack with sentinel", func(c *Config) {
			c.Redis.Addrs, c.Redis.MasterName, c.Redis.MinReplicasAck = []string{"h:26379"}, "m", 2
		}, ""},
		{"replicas ack with bbolt", func(c *Config) { c.Redis.MinReplicasAck = 1 }, "the embedded store (bbolt) has no replicas"},
		{"replicas ack negative", func(c *Config) { c.Redis.URL = "redis://h:6379"; c.Redis.MinReplicasAck = -1 }, "redis.min_replicas_ack -1 is negative"},
		{"replica ack timeout zero", func(c *Config) { c.Redis.ReplicaAckTimeout = 0 }, "redis.replica_ack_timeout 0s must be from 1ms to 2s"},
		{"replica ack timeout too long", func(c *Config) { c.Redis.ReplicaAckTimeout = 5 * time.Second }, "redis.replica_ack_timeout 5s"},
		{"replica ack timeout short", func(c *Config) { c.Redis.ReplicaAckTimeout = time.Millisecond }, ""},
		{"s3 endpoint without bucket", func(c *Config) { c.S3.Endpoint = "http://127.0.0.1:9000" }, "s3.bucket is empty"},
		{"s3 endpoint not a url", func(c *Config) { c.S3.Endpoint = "127.0.0.1:9000"; c.S3.Bucket = "ferry" }, "http:// or https://"},
		{"s3 bucket name", func(c *Config) { c.S3.Bucket = "Ferry_Bucket" }, "not a valid S3 bucket name"},
		{"s3 prefix slash", func(c *Config) { c.S3.Bucket = "ferry"; c.S3.Prefix = "/x" }, "s3.prefix"},
		{"half credentials", func(c *Config) { c.S3.AccessKeyID = "AKIA" }, "half set"},
		{"allowed roots", func(c *Config) { c.Registration.AllowedRoots = []string{"/srv/data", "/mnt/x"} }, ""},
		{"relative root", func(c *Config) { c.Registration.AllowedRoots = []string{"data"} }, "not an absolute path"},
		{"root of everything", func(c *Config) { c.Registration.AllowedRoots = []string{"/"} }, "every directory"},
		{"s3 ok", func(c *Config) {
			c.S3 = S3{Endpoint: "http://127.0.0.1:9000", Bucket: "ferry", Region: "us-east-1", PathStyle: true}
		}, ""},
		{"ttl", func(c *Config) { c.Sessions.TTL = 0 }, "sessions.ttl"},
		{"max size", func(c *Config) { c.Sessions.MaxSize = -1 }, "sessions.max_size"},
		{"purge interval", func(c *Config) { c.Sessions.PurgeInterval = 0 }, "sessions.purge_interval"},
		{"orphan age", func(c *Config) { c.Sessions.OrphanAge = 500 * time.Millisecond }, "sessions.orphan_age"},
		{"held bytes below a part", func(c *Config) { c.Sessions.MaxHeldBytes = 1 << 20 }, "sessions.max_held_bytes"},
		{"openai bucket", func(c *Config) { c.OpenAI.Bucket = "open.ai" }, "openai.bucket"},
		{"openai buckets equal", func(c *Config) { c.OpenAI.UploadsBucket = c.OpenAI.Bucket }, "own bucket"},
		{"openai upload ttl", func(c *Config) { c.OpenAI.UploadTTL = 0 }, "openai.upload_ttl"},
		{"vector workers none", func(c *Config) { c.OpenAI.VectorWorkers = 0 }, ""},
		{"vector workers negative", func(c *Config) { c.OpenAI.VectorWorkers = -1 }, "openai.vector_workers"},
		{"vector poll interval", func(c *Config) { c.OpenAI.VectorPollInterval = 0 }, "openai.vector_poll_interval"},
		{"vector max file size", func(c *Config) { c.OpenAI.VectorMaxFileSize = 0 }, "openai.vector_max_file_size"},
		{"embeddings ok", func(c *Config) {
			c.OpenAI.Embeddings = Embeddings{URL: "http://127.0.0.1:11434/v1", Model: "nomic-embed-text"}
		}, ""},
		{"embeddings url", func(c *Config) { c.OpenAI.Embeddings = Embeddings{URL: "127.0.0.1:11434", Model: "m"} }, "openai.embeddings.url"},
		{"embeddings without model", func(c *Config) { c.OpenAI.Embeddings.URL = "http://127.0.0.1:11434/v1" }, "FERRY_OPENAI_EMBEDDINGS_MODEL"},
		{"embeddings model without url", func(c *Config) { c.OpenAI.Embeddings.Model = "m" }, "FERRY_OPENAI_EMBEDDINGS_URL"},
		{"read idle timeout", func(c *Config) { c.Server.ReadIdleTimeout = 0 }, "server.read_idle_timeout"},
		{"read header timeout", func(c *Config) { c.Server.ReadHeaderTimeout = -time.Second }, "server.read_header_timeout"},
		{"negative shutdown", func(c *Config) { c.ShutdownTimeout = -time.Second }, "shutdown_timeout"},
		{"link secret", func(c *Config) { c.Auth.LinkSecret = strings.Repeat("k", 32) }, ""},
		{"short link secret", func(c *Config) { c.Auth.LinkSecret = "hunter2" }, "openssl rand -hex 32"},
		{"link rotation", func(c *Config) {
			c.Auth.LinkSecret, c.Auth.LinkSecretPrevious = strings.Repeat("k", 32), strings.Repeat("p", 32)
			c.Auth.LinkPreviousUntil = "2026-12-31T00:00:00Z"
		}, ""},
		{"previous link secret without until", func(c *Config) { c.Auth.LinkSecretPrevious = strings.Repeat("p", 32) }, "FERRY_LINK_PREVIOUS_UNTIL"},
		{"link until not a time", func(c *Config) {
			c.Auth.LinkSecretPrevious, c.Auth.LinkPreviousUntil = strings.Repeat("p", 32), "next week"
		}, "RFC 3339"},
		{"link until without a previous secret", func(c *Config) { c.Auth.LinkPreviousUntil = "2026-12-31T00:00:00Z" }, "link_secret_previous is empty"},
		{"previous link secret is the current", func(c *Config) {
			c.Auth.LinkSecret, c.Auth.LinkSecretPrevious = strings.Repeat("k", 32), strings.Repeat("k", 32)
			c.Auth.LinkPreviousUntil = "2026-12-31T00:00:00Z"
		}, "the same as auth.link_secret"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			tc.mutate(&c)
			err := c.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

// Every problem is reported in one go, not one per run.
func TestValidateReportsAll(t *testing.T) {
	c := Default()
	c.Addr = "nope"
	c.Log.Format = "xml"
	err := c.Validate()
	if err == nil || !strings.Contains(err.Error(), "addr") || !strings.Contains(err.Error(), "log.format") {
		t.Fatalf("err = %v, want both problems", err)
	}
}

// The vector-store settings load from YAML and from the environment.
func TestVectorStoreSettings(t *testing.T) {
	p := writeFile(t, "openai:\n  vector_workers: 4\n  embeddings:\n    url: http://127.0.0.1:9/v1\n    model: from-file\n")
	cfg, err := Load([]string{"--config", p}, env("FERRY_OPENAI_EMBEDDINGS_MODEL", "from-env", "FERRY_OPENAI_EMBEDDINGS_API_KEY", "k",
		"FERRY_OPENAI_VECTOR_POLL_INTERVAL", "50ms", "FERRY_OPENAI_VECTOR_MAX_FILE_SIZE", "1024"), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	o := cfg.OpenAI
	if o.VectorWorkers != 4 || o.Embeddings.URL != "http://127.0.0.1:9/v1" || o.Embeddings.Model != "from-env" || o.Embeddings.APIKey != "k" ||
		o.VectorPollInterval != 50*time.Millisecond || o.VectorMaxFileSize != 1024 || o.VectorCacheSize != 256<<20 {
		t.Fatalf("openai = %+v", o)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(nil, env("FERRY_OPENAI_VECTOR_WORKERS", "two"), io.Discard); err == nil || !strings.Contains(err.Error(), "FERRY_OPENAI_VECTOR_WORKERS") {
		t.Fatalf("bad worker count: %v", err)
	}
}

// The server timeouts default to 15 s and 10 s and load from each layer.
func TestServerTimeouts(t *testing.T) {
	cfg, err := Load(nil, env(), io.Discard)
	if err != nil || cfg.Server.ReadIdleTimeout != 15*time.Second || cfg.Server.ReadHeaderTimeout != 10*time.Second {
		t.Fatalf("defaults = %+v, %v; want 15s idle, 10s header", cfg.Server, err)
	}
	p := writeFile(t, "server:\n  read_idle_timeout: 20s\n  read_header_timeout: 3s\n")
	cfg, err = Load([]string{"--config", p}, env(), io.Discard)
	if err != nil || cfg.Server.ReadIdleTimeout != 20*time.Second || cfg.Server.ReadHeaderTimeout != 3*time.Second {
		t.Fatalf("from YAML = %+v, %v", cfg.Server, err)
	}
	cfg, err = Load([]string{"--config", p}, env("FERRY_READ_IDLE_TIMEOUT", "5s", "FERRY_READ_HEADER_TIMEOUT", "2s"), io.Discard)
	if err != nil || cfg.Server.ReadIdleTimeout != 5*time.Second || cfg.Server.ReadHeaderTimeout != 2*time.Second {
		t.Fatalf("env over YAML = %+v, %v", cfg.Server, err)
	}
	cfg, err = Load([]string{"--config", p, "--read-idle-timeout", "1s"}, env("FERRY_READ_IDLE_TIMEOUT", "5s"), io.Discard)
	if err != nil || cfg.Server.ReadIdleTimeout != time.Second {
		t.Fatalf("flag over env = %+v, %v", cfg.Server, err)
	}
	if _, err := Load(nil, env("FERRY_READ_IDLE_TIMEOUT", "15"), io.Discard); err == nil || !strings.Contains(err.Error(), "FERRY_READ_IDLE_TIMEOUT") {
		t.Fatalf("a duration without a unit: %v", err)
	}
}

// Every problem in the flags, the file and the environment comes back in
// one error, each naming what was wrong and what to write instead.
func TestLoadReportsEveryProblem(t *testing.T) {
	p := writeFile(t, "sessions:\n  purge_interval: often\nadress: x\n")
	_, err := Load([]string{"--config", p, "--read-idle-timeout", "soon", "--insecure-open=maybe"},
		env("FERRY_SESSION_TTL", "banana", "FERRY_SESSION_MAX_SIZE", "lots", "FERRY_S3_PATH_STYLE", "yes please"), io.Discard)
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{
		`FERRY_SESSION_TTL="banana": not a duration: write a number with a unit, such as 24h (sessions.ttl)`,
		`FERRY_SESSION_MAX_SIZE="lots": not a whole number: write digits only, such as 5497558138880 (sessions.max_size)`,
		`FERRY_S3_PATH_STYLE="yes please": not true or false`,
		`--read-idle-timeout="soon": not a duration: write a number with a unit, such as 15s (server.read_idle_timeout)`,
		`--insecure-open="maybe": not true or false`,
		"line 2: cannot unmarshal", "field adress not found",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not say %q:\n%v", want, err)
		}
	}
}

// Each setting has one environment variable, and a value given through it
// lands in that setting and says so in the sources.
func TestEveryEnvVarSetsItsSetting(t *testing.T) {
	d := Default()
	bound := map[string]string{}
	for _, e := range envVars {
		if _, ok := lookupField(&d, e.key); !ok {
			t.Errorf("%s binds %s, which is not a setting", e.name, e.key)
		}
		if other, dup := bound[e.key]; dup {
			t.Errorf("%s has two environment variables: %s and %s", e.key, other, e.name)
		}
		bound[e.key] = e.name
	}
	for _, f := range fields(reflect.ValueOf(&d).Elem(), "") {
		if f.value.Kind() == reflect.Slice && f.value.Type().Elem().Kind() == reflect.Struct {
			continue // a list of objects is YAML only (events.webhooks: FERRY_WEBHOOK_URL adds one)
		}
		name, ok := bound[f.key]
		if !ok {
			t.Errorf("%s has no environment variable", f.key)
			continue
		}
		val := map[reflect.Kind]string{reflect.String: "x", reflect.Bool: "true", reflect.Int: "7", reflect.Int64: "7", reflect.Slice: "a,b"}[f.value.Kind()]
		if f.value.Type() == reflect.TypeFor[time.Duration]() {
			val = "7s"
		}
		if f.value.Kind() == reflect.Bool {
			val = strconv.FormatBool(!f.value.Bool()) // other than the default
		}
		cfg, src, err := LoadWithSources(nil, env(name, val), io.Discard)
		got, _ := lookupField(&cfg, f.key)
		if err != nil || src.Of(f.key) != "env "+name || format(got.value) == format(f.value) {
			t.Errorf("%s=%s: %s = %s from %s, %v", name, val, f.key, format(got.value), src.Of(f.key), err)
		}
	}
}

// Sources name the layer each value came from; a file that repeats a
// default still counts as the file.
func TestSources(t *testing.T) {
	p := writeFile(t, "addr: 127.0.0.1:1000\nlog: {level: info}\nredis:\n  addrs: [h1:7000]\n  mode: cluster\n")
	_, src, err := LoadWithSources([]string{"--config", p, "--data-dir", "/d", "--insecure-open"},
		env("FERRY_ADDR", "127.0.0.1:2000", "FERRY_SESSION_TTL", "1h"), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]string{
		"addr": "env FERRY_ADDR", "log.level": "file " + p, "redis.addrs": "file " + p, "redis.mode": "file " + p,
		"data_dir": "flag --data-dir", "auth.insecure_open": "flag --insecure-open", "sessions.ttl": "env FERRY_SESSION_TTL",
		"log.format": "default", "s3.bucket": "default",
	} {
		if got := src.Of(key); got != want {
			t.Errorf("%s comes from %q, want %q", key, got, want)
		}
	}
}

// Settings lists every setting with its value, secrets masked, and URL
// passwords hidden wherever they appear.
func TestSettingsMaskSecrets(t *testing.T) {
	c := Default()
	c.S3.AccessKeyID, c.S3.SecretAccessKey = "AKIAEXAMPLE", "s3-secret"
	c.Redis.URL, c.Redis.Password, c.Redis.SentinelPassword = "redis://ferry:url-secret@redis:6379/0", "redis-secret", "sentinel-secret"
	c.OpenAI.Embeddings.URL, c.OpenAI.Embeddings.APIKey = "https://user:emb-url-secret@emb.example/v1", "emb-secret"
	c.Sessions.TTL = 90 * time.Minute
	got := map[string]string{}
	for _, s := range c.Settings(Sources{"sessions.ttl": "env FERRY_SESSION_TTL"}) {
		got[s.Key] = s.Value + " | " + s.Source
		for _, secret := range []string{"s3-secret", "url-secret", "redis-secret", "sentinel-secret", "emb-secret"} {
			if strings.Contains(s.Value, secret) {
				t.Errorf("%s shows a secret: %s", s.Key, s.Value)
			}
		}
	}
	for key, want := range map[string]string{
		"s3.secret_access_key": Masked + " | default", "s3.access_key_id": "AKIAEXAMPLE | default",
		"redis.url": "redis://ferry:xxxxx@redis:6379/0 | default", "redis.password": Masked + " | default",
		"sessions.ttl": "1h30m | env FERRY_SESSION_TTL", "shutdown_timeout": "30s | default",
		"auth.keys_file": `"" | default`, "server.cors_origins": "[] | default", "auth.insecure_open": "false | default",
	} {
		if got[key] != want {
			t.Errorf("%s = %q, want %q", key, got[key], want)
		}
	}
	if n, want := len(got), len(fields(reflect.ValueOf(&c).Elem(), "")); n != want {
		t.Errorf("%d settings listed, want %d", n, want)
	}
	// A new field whose name says it is secret must be tagged so.
	for _, f := range fields(reflect.ValueOf(&c).Elem(), "") {
		if regexp.MustCompile(`password|secret|api_key|token`).MatchString(f.key) && !f.secret {
			t.Errorf("%s looks secret but is not tagged secret:\"true\"", f.key)
		}
	}
}

// Webhooks are checked before ferryd starts, each problem named.
func TestWebhooksValidate(t *testing.T) {
	c := Default()
	c.Events.Webhooks = []Webhook{
		{Name: "a", URL: "ftp://x", Secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"},
		{Name: "a", URL: "http://x/h", Secret: "nope", Types: []string{"file.made"}},
		{URL: "https://y/h", Secret: "whsec_c2hvcnQ="},
	}
	c.Events.WebhookSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	err := c.Validate()
	for _, want := range []string{`url "ftp://x" must be an http:// or https:// URL`, "secret must be whsec_",
		`another webhook has the name "a"`, `unknown event type "file.made"`, "(url-", "not whsec_ followed by base64 of 24 to 64 bytes",
		"events.webhook_secret is set but events.webhook_url is not"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate: %v\nwant it to say %q", err, want)
		}
	}
	c = Default()
	c.Events.WebhookURL, c.Events.WebhookSecret = "https://z/h", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	if err := c.Validate(); err != nil {
		t.Fatalf("one webhook from the environment: %v", err)
	}
	if w := c.Events.AllWebhooks(); len(w) != 1 || w[0].Name != "default" || w[0].URL != "https://z/h" {
		t.Fatalf("AllWebhooks = %+v", w)
	}
}
