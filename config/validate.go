package config

import (
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ferryhq/ferry/bucket"
)

// Validate rejects a configuration that cannot work, saying what to change.
// All problems are reported at once.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	c.validateServer(bad)
	c.validateLog(bad)
	c.validateStores(bad)
	c.Sessions.validate(bad)
	c.OpenAI.validate(bad)
	if err := bucket.ValidateBucketName(c.Tus.Bucket); err != nil {
		bad("tus.bucket %q: %v", c.Tus.Bucket, err)
	}
	c.Registration.validate(bad)
	c.Downloads.validate(bad)
	c.Auth.validateLinks(bad)
	c.Limits.validate(bad)
	c.Events.validate(bad)
	c.Hooks.validate(bad)
	return errors.Join(errs...)
}

func (e Events) validate(bad complain) {
	if e.Retention <= 0 {
		bad("events.retention %s must be positive, for example 168h", e.Retention)
	}
	if e.MaxEvents <= 0 {
		bad("events.max_events %d must be positive, for example 100000", e.MaxEvents)
	}
	if e.MaxAge <= 0 {
		bad("events.max_age %s must be positive, for example 24h", e.MaxAge)
	}
	if e.WebhookURL == "" && e.WebhookSecret != "" {
		bad("events.webhook_secret is set but events.webhook_url is not: set FERRY_WEBHOOK_URL too")
	}
	names := map[string]bool{}
	for i, w := range e.AllWebhooks() {
		what := fmt.Sprintf("events.webhooks[%d] (%s)", i, w.Name)
		if u, err := url.Parse(w.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("%s: url %q must be an http:// or https:// URL", what, w.URL)
		}
		if !strings.HasPrefix(w.Secret, "whsec_") {
			bad("%s: secret must be whsec_ followed by base64 of 24 to 64 random bytes (make one: echo whsec_$(openssl rand -base64 32))", what)
		} else if key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(w.Secret, "whsec_")); err != nil || len(key) < 24 || len(key) > 64 {
			bad("%s: secret is not whsec_ followed by base64 of 24 to 64 bytes (make one: echo whsec_$(openssl rand -base64 32))", what)
		}
		if !webhookName.MatchString(w.Name) {
			bad("%s: name %q may hold only letters, digits, '.', '-' and '_' (at most 64)", what, w.Name)
		}
		if names[w.Name] {
			bad("%s: another webhook has the name %q: give each its own", what, w.Name)
		}
		names[w.Name] = true
		for _, t := range w.Types {
			if !slices.Contains(EventTypes, t) {
				bad("%s: unknown event type %q (known: %s)", what, t, strings.Join(EventTypes, ", "))
			}
		}
	}
}

var webhookName = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// EventTypes are the event types a webhook may ask for (package events
// has the same list; a test keeps them equal).
var EventTypes = []string{"file.created", "file.deleted", "session.created", "session.aborted", "session.expired",
	"bucket.registered", "bucket.unregistered"}

// complain records one problem; Validate collects them all.
type complain func(format string, args ...any)

func (c Config) validateServer(bad complain) {
	if host, port, err := net.SplitHostPort(c.Addr); err != nil {
		bad("addr %q is not host:port (for example 127.0.0.1:8321 or :8321): %v", c.Addr, err)
	} else if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		bad("addr %q: port %q must be a number from 0 to 65535", c.Addr, port)
	} else if host != "" && net.ParseIP(host) == nil && !validHostname(host) {
		bad("addr %q: host %q is neither an IP address nor a hostname", c.Addr, host)
	} else if c.Auth.KeysFile == "" && !c.Auth.InsecureOpen && !loopback(host) {
		bad("addr %q listens beyond this machine and auth.keys_file is empty, so anyone who reaches the port could read, "+
			"write and delete everything: set FERRY_API_KEYS_FILE (auth.keys_file; `ferry keys new` makes a key), "+
			"listen on 127.0.0.1, or set FERRY_INSECURE_OPEN=1 (--insecure-open) if something in front of ferryd checks access", c.Addr)
	}
	if c.ShutdownTimeout < 0 {
		bad("shutdown_timeout %s is negative: use 0 to stop at once or a duration like 30s", c.ShutdownTimeout)
	}
	if c.Server.ReadIdleTimeout <= 0 {
		bad("server.read_idle_timeout %s must be positive, for example 15s (a stalled upload holds its session until it passes)", c.Server.ReadIdleTimeout)
	}
	if c.Server.ReadHeaderTimeout <= 0 {
		bad("server.read_header_timeout %s must be positive, for example 10s", c.Server.ReadHeaderTimeout)
	}
	if c.Server.MaxFormParts < 2 || c.Server.MaxFormParts > 10000 {
		bad("server.max_form_parts %d must be from 2 (a file and its purpose) to 10000", c.Server.MaxFormParts)
	}
	if c.Server.MaxFormBytes < 1<<10 || c.Server.MaxFormBytes > 64<<20 {
		bad("server.max_form_bytes %d must be from 1024 to 67108864", c.Server.MaxFormBytes)
	}
	for _, o := range c.Server.CORSOrigins {
		if u, err := url.Parse(o); o != "*" && (err != nil || u.Scheme == "" || u.Host == "" || u.Path != "" || u.RawQuery != "") {
			bad("server.cors_origins: %q is not an origin: use scheme://host[:port] (e.g. https://app.example.com) or *", o)
		}
	}
	for _, h := range c.Server.AllowedHosts {
		if strings.ContainsAny(h, ":/ ") && net.ParseIP(strings.Trim(h, "[]")) == nil {
			bad("server.allowed_hosts: %q is not a host name or IP address (no port, no scheme)", h)
		}
	}
}

func (d Downloads) validate(bad complain) {
	switch d.Redirect {
	case DownloadsProxied, DownloadsPresigned:
	default:
		bad("downloads.redirect %q: use proxied (ferryd streams the bytes) or presigned (a 307 to a short-lived S3 URL)", d.Redirect)
	}
	if d.PresignTTL < time.Second || d.PresignTTL > 7*24*time.Hour {
		bad("downloads.presign_ttl %s must be from 1s to 168h (S3's limit for a presigned URL), for example 5m", d.PresignTTL)
	}
}

// validateLinks checks the link secrets and the rotation's grace.
func (a Auth) validateLinks(bad complain) {
	for _, s := range []struct{ key, value string }{{"auth.link_secret", a.LinkSecret}, {"auth.link_secret_previous", a.LinkSecretPrevious}} {
		if s.value != "" && len(s.value) < MinLinkSecret {
			bad("%s has %d characters; it needs at least %d: `openssl rand -hex 32` makes one", s.key, len(s.value), MinLinkSecret)
		}
	}
	switch _, err := time.Parse(time.RFC3339, a.LinkPreviousUntil); {
	case a.LinkSecretPrevious != "" && a.LinkPreviousUntil == "":
		bad("auth.link_secret_previous is set but not until when to accept it: set auth.link_previous_until (FERRY_LINK_PREVIOUS_UNTIL) to a time like 2026-12-31T00:00:00Z, once the last link signed with it has expired")
	case a.LinkPreviousUntil != "" && err != nil:
		bad("auth.link_previous_until %q is not an RFC 3339 time: write it like 2026-12-31T00:00:00Z", a.LinkPreviousUntil)
	case a.LinkPreviousUntil != "" && a.LinkSecretPrevious == "":
		bad("auth.link_previous_until is set but auth.link_secret_previous is empty: set the previous secret, or drop the time")
	case a.LinkSecretPrevious != "" && a.LinkSecretPrevious == a.LinkSecret:
		bad("auth.link_secret_previous is the same as auth.link_secret: a rotation's previous secret is the one replaced")
	}
}

// loopback reports whether host names only this machine ("" is every
// interface).
func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (c Config) validateLog(bad complain) {
	switch c.Log.Format {
	case "text", "json":
	default:
		bad("log.format %q: use text or json", c.Log.Format)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level %q: use debug, info, warn or error", c.Log.Level)
	}
}

// validateStores checks data_dir, Redis and S3 together: data_dir is needed
// by whichever of the two is embedded.
func (c Config) validateStores(bad complain) {
	if (!c.UsesRedis() || !c.UsesS3()) && strings.TrimSpace(c.DataDir) == "" {
		bad("data_dir is empty: set --data-dir or FERRY_DATA_DIR (the embedded store and filesystem blobs live there)")
	}
	c.Redis.validate(bad)
	if c.S3.Endpoint != "" {
		if !httpURL(c.S3.Endpoint) {
			bad("s3.endpoint %q must be an http:// or https:// URL with a host", c.S3.Endpoint)
		}
		if c.S3.Bucket == "" {
			bad("s3.endpoint is set but s3.bucket is empty: set FERRY_S3_BUCKET (or s3.bucket) to the bucket ferry should write to")
		}
	}
	if c.UsesS3() {
		if c.S3.Region == "" {
			bad("s3.region is empty: set FERRY_S3_REGION (us-east-1 works for most S3-compatible servers)")
		}
		if !bucket.ValidS3Bucket(c.S3.Bucket) {
			bad("s3.bucket %q is not a valid S3 bucket name (3-63 characters of a-z, 0-9, '.' and '-')", c.S3.Bucket)
		}
		if strings.HasPrefix(c.S3.Prefix, "/") {
			bad("s3.prefix %q must not start with '/'", c.S3.Prefix)
		}
	}
	if (c.S3.AccessKeyID == "") != (c.S3.SecretAccessKey == "") {
		bad("S3 credentials are half set: give both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or neither to use the default AWS chain")
	}
}

func (r Redis) validate(bad complain) {
	if r.URL != "" {
		u, err := url.Parse(r.URL)
		switch {
		case err != nil:
			bad("redis.url %q does not parse: %v", r.URL, err)
		case u.Scheme != "redis" && u.Scheme != "rediss" && u.Scheme != "unix":
			bad("redis.url %q: scheme must be redis://, rediss:// or unix://", r.URL)
		case u.Scheme != "unix" && u.Host == "":
			bad("redis.url %q has no host: use redis://host:6379/0", r.URL)
		}
		if len(r.Addrs) > 0 {
			bad("redis.url and redis.addrs are both set: use url for one node, addrs for a cluster or the sentinels")
		}
	}
	if r.CAFile != "" {
		if pem, err := os.ReadFile(r.CAFile); err != nil {
			bad("redis.ca_file: %v", err)
		} else if !x509.NewCertPool().AppendCertsFromPEM(pem) {
			bad("redis.ca_file %s holds no PEM certificate: give the PEM file of the CA that signed the Redis nodes' certificates", r.CAFile)
		}
	}
	for _, a := range r.Addrs {
		if _, port, err := net.SplitHostPort(a); err != nil || port == "" {
			bad("redis.addrs: %q is not host:port", a)
		}
	}
	r.validateReplicas(bad)
	switch mode := r.Topology(); {
	case r.Mode != "" && r.Mode != RedisCluster && r.Mode != RedisSentinel:
		bad("redis.mode %q: use cluster or sentinel (a single node takes redis.url instead)", r.Mode)
	case (r.Mode != "" || r.MasterName != "") && len(r.Addrs) == 0:
		bad("redis.mode and redis.master_name need redis.addrs (FERRY_REDIS_ADDRS): the cluster's nodes or the sentinels")
	case mode == RedisCluster && r.MasterName != "":
		bad("redis.master_name is for sentinel mode; a cluster has no single master")
	case mode == RedisSentinel && r.MasterName == "":
		bad("redis.mode sentinel needs redis.master_name (FERRY_REDIS_MASTER_NAME): the name the sentinels monitor")
	}
}

func (r Redis) validateReplicas(bad complain) {
	switch {
	case r.MinReplicasAck < 0:
		bad("redis.min_replicas_ack %d is negative: use 0 (don't wait for replicas) or the number of replicas that must hold each write", r.MinReplicasAck)
	case r.MinReplicasAck > 0 && r.Topology() == "":
		bad("redis.min_replicas_ack %d needs Redis: the embedded store (bbolt) has no replicas to wait for; "+
			"set redis.url or redis.addrs (FERRY_REDIS_URL, FERRY_REDIS_ADDRS), or set redis.min_replicas_ack to 0", r.MinReplicasAck)
	}
	if r.ReplicaAckTimeout < time.Millisecond || r.ReplicaAckTimeout > MaxReplicaAckTimeout {
		bad("redis.replica_ack_timeout %s must be from 1ms to %s, for example 1s (how long a write waits for its replicas before 503)",
			r.ReplicaAckTimeout, MaxReplicaAckTimeout)
	}
}

func (s Sessions) validate(bad complain) {
	if s.TTL <= 0 {
		bad("sessions.ttl %s must be positive, for example 24h", s.TTL)
	}
	if s.MaxSize <= 0 {
		bad("sessions.max_size %d must be a positive number of bytes", s.MaxSize)
	}
	if s.MaxHeldBytes < bucket.MinPartSize {
		bad("sessions.max_held_bytes %d must be at least %d (5 MiB, one S3 part)", s.MaxHeldBytes, bucket.MinPartSize)
	}
	if s.MaxBufferedBytes < max(s.MaxHeldBytes, 8<<20) {
		bad("sessions.max_buffered_bytes %d must be at least sessions.max_held_bytes (%d) and 8 MiB (one piece of a chunked append): one request may need that much", s.MaxBufferedBytes, s.MaxHeldBytes)
	}
	if s.MaxHeldTotal < s.MaxHeldBytes {
		bad("sessions.max_held_total %d must be at least sessions.max_held_bytes (%d): it is the sum over all sessions", s.MaxHeldTotal, s.MaxHeldBytes)
	}
	if s.PurgeInterval <= 0 {
		bad("sessions.purge_interval %s must be positive, for example 1m", s.PurgeInterval)
	}
	if s.OrphanAge < time.Second {
		bad("sessions.orphan_age %s must be at least 1s, and in production far longer than a metadata store outage (the default is 1h)", s.OrphanAge)
	}
	for _, b := range s.SHA256Buckets {
		if err := bucket.ValidateBucketName(b); b != "*" && err != nil {
			bad("sessions.sha256_buckets: %v (name buckets, or \"*\" for every bucket)", err)
		}
	}
}

func (o OpenAI) validate(bad complain) {
	for _, b := range []struct{ field, name string }{{"openai.bucket", o.Bucket}, {"openai.uploads_bucket", o.UploadsBucket}} {
		if err := bucket.ValidateBucketName(b.name); err != nil {
			bad("%s: %v", b.field, err)
		}
	}
	if o.Bucket == o.UploadsBucket {
		bad("openai.bucket and openai.uploads_bucket are both %q: give the upload parts their own bucket", o.Bucket)
	}
	if o.MaxFileSize <= 0 || o.MaxUploadSize <= 0 {
		bad("openai.max_file_size and openai.max_upload_size must be positive numbers of bytes")
	}
	if o.UploadTTL <= 0 {
		bad("openai.upload_ttl %s must be positive, for example 1h", o.UploadTTL)
	}
	if o.VectorWorkers < 0 || o.VectorWorkers > 64 {
		bad("openai.vector_workers %d must be from 0 (this instance processes no files) to 64", o.VectorWorkers)
	}
	if o.VectorPollInterval <= 0 {
		bad("openai.vector_poll_interval %s must be positive, for example 1s", o.VectorPollInterval)
	}
	if o.VectorMaxFileSize <= 0 || o.VectorCacheSize <= 0 {
		bad("openai.vector_max_file_size and openai.vector_cache_size must be positive numbers of bytes")
	}
	o.Embeddings.validate(bad)
}

func (e Embeddings) validate(bad complain) {
	if e.URL == "" {
		if e.Model != "" || e.APIKey != "" {
			bad("openai.embeddings.model or api_key is set but openai.embeddings.url is empty: set FERRY_OPENAI_EMBEDDINGS_URL (e.g. http://127.0.0.1:11434/v1)")
		}
		return
	}
	if !httpURL(e.URL) {
		bad("openai.embeddings.url %q must be an http:// or https:// URL with a host, e.g. http://127.0.0.1:11434/v1", e.URL)
	}
	if e.Model == "" {
		bad("openai.embeddings.url is set but openai.embeddings.model is empty: set FERRY_OPENAI_EMBEDDINGS_MODEL to the embedding model's name")
	}
}

func (r Registration) validate(bad complain) {
	for _, root := range r.AllowedRoots {
		if !filepath.IsAbs(root) {
			bad("registration.allowed_roots: %q is not an absolute path", root)
		} else if filepath.Clean(root) == "/" {
			bad("registration.allowed_roots: \"/\" would allow every directory; name the directories that hold data to serve")
		}
	}
	for _, b := range r.AllowedS3Buckets {
		if b != "*" && !bucket.ValidS3Bucket(b) {
			bad("registration.allowed_s3_buckets: %q is not an S3 bucket name (or * for any)", b)
		}
	}
}

// httpURL reports whether s is an http:// or https:// URL with a host.
func httpURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

func validHostname(h string) bool {
	if len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
				return false
			}
		}
	}
	return true
}

func (l Limits) validate(bad complain) {
	for _, f := range []struct {
		key string
		n   int
	}{{"uploads_per_minute", l.UploadsPerMinute}, {"retrievals_per_minute", l.RetrievalsPerMinute}, {"deletions_per_minute", l.DeletionsPerMinute}} {
		if f.n < 0 || f.n > MaxPerMinute {
			bad("limits.%s %d must be from 0 (no limit) to %d requests per minute", f.key, f.n, MaxPerMinute)
		}
	}
}
