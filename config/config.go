// Package config is ferryd's one configuration struct. It is loaded in three
// layers, each overriding the one before: the YAML file named by --config,
// then FERRY_* environment variables (plus the standard AWS_ACCESS_KEY_ID and
// AWS_SECRET_ACCESS_KEY), then command-line flags. Validate says what to fix.
//
// With no configuration at all ferryd serves on 127.0.0.1:8321 and keeps
// everything under ./data (bbolt metadata plus the local filesystem).
// Setting redis.url switches metadata to Redis; setting s3.bucket switches
// blobs to S3.
package config

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"time"
)

// Config is everything ferryd can be told. The yaml tag is the file key; the
// comment names the environment variable (load.go binds them); secret:"true"
// keeps a value out of ferryd config's output.
type Config struct {
	Addr            string        `yaml:"addr"`             // FERRY_ADDR, --addr
	DataDir         string        `yaml:"data_dir"`         // FERRY_DATA_DIR, --data-dir
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"` // FERRY_SHUTDOWN_TIMEOUT
	Server          Server        `yaml:"server"`
	Log             Log           `yaml:"log"`
	Redis           Redis         `yaml:"redis"`
	S3              S3            `yaml:"s3"`
	Sessions        Sessions      `yaml:"sessions"`
	OpenAI          OpenAI        `yaml:"openai"`
	Tus             Tus           `yaml:"tus"`
	Registration    Registration  `yaml:"registration"`
	Auth            Auth          `yaml:"auth"`
	Downloads       Downloads     `yaml:"downloads"`
	Limits          Limits        `yaml:"limits"`
	Events          Events        `yaml:"events"`
	Hooks           Hooks         `yaml:"hooks"`
}

// Events are the event log (the pull stream, GET /v1/events) and the
// webhooks that receive it.
type Events struct {
	Retention time.Duration `yaml:"retention"`  // FERRY_EVENTS_RETENTION: how long the log keeps an event
	MaxEvents int64         `yaml:"max_events"` // FERRY_EVENTS_MAX_EVENTS: the most events it keeps; the oldest go first
	// MaxAge is how long a webhook retries an event (from its first
	// failure) before dead-lettering it.
	MaxAge   time.Duration `yaml:"max_age"`                // FERRY_EVENTS_MAX_AGE
	Webhooks []Webhook     `yaml:"webhooks" secret:"true"` // YAML only: the receivers, see Webhook
	// WebhookURL and WebhookSecret add one receiver of every event, named
	// "default", for a setup without a YAML file.
	WebhookURL    string `yaml:"webhook_url"`                  // FERRY_WEBHOOK_URL
	WebhookSecret string `yaml:"webhook_secret" secret:"true"` // FERRY_WEBHOOK_SECRET: whsec_<base64>
}

// Webhook is one receiver of events.
type Webhook struct {
	// Name keeps the receiver's place in the log, its retries and dead
	// letters; empty: derived from the URL.
	Name    string   `yaml:"name"`
	URL     string   `yaml:"url"`
	Secret  string   `yaml:"secret"`  // whsec_<base64>: signs each request (Standard Webhooks)
	Types   []string `yaml:"types"`   // only these event types; none: every type
	Buckets []string `yaml:"buckets"` // only events of these buckets; none: every bucket
}

// AllWebhooks is events.webhooks plus the one FERRY_WEBHOOK_URL adds,
// each with its name.
func (e Events) AllWebhooks() []Webhook {
	out := slices.Clone(e.Webhooks)
	if e.WebhookURL != "" {
		out = append(out, Webhook{Name: "default", URL: e.WebhookURL, Secret: e.WebhookSecret})
	}
	for i, w := range out {
		if w.Name == "" {
			sum := sha256.Sum256([]byte(w.URL))
			out[i].Name = "url-" + hex.EncodeToString(sum[:6])
		}
	}
	return out
}

// Downloads says how file content reaches clients.
type Downloads struct {
	// Redirect is "proxied" (ferryd streams the bytes) or "presigned" (a
	// 307 to a short-lived S3 URL, as container registries answer blob
	// GETs; files on the filesystem are still proxied).
	Redirect   string        `yaml:"redirect"`    // FERRY_DOWNLOADS_REDIRECT
	PresignTTL time.Duration `yaml:"presign_ttl"` // FERRY_DOWNLOADS_PRESIGN_TTL: how long a presigned URL works
}

// Download modes: downloads.redirect's values.
const (
	DownloadsProxied   = "proxied"
	DownloadsPresigned = "presigned"
)

// Auth turns on API keys. Without a keys file ferryd is open to whoever
// reaches its port, so it then listens only on loopback unless told
// otherwise.
type Auth struct {
	KeysFile     string `yaml:"keys_file"`     // FERRY_API_KEYS_FILE: YAML of key hashes, buckets and access (ferry keys new)
	InsecureOpen bool   `yaml:"insecure_open"` // FERRY_INSECURE_OPEN, --insecure-open: serve without keys beyond loopback
	// LinkSecret signs upload links and presigned downloads (HMAC-SHA256);
	// empty: ferryd generates one into <data_dir>/link_secret. Instances
	// that serve the same sessions need the same one.
	LinkSecret string `yaml:"link_secret" secret:"true"` // FERRY_LINK_SECRET
	// LinkSecretPrevious is the secret before a rotation: links signed with
	// it still work until LinkPreviousUntil (RFC 3339).
	LinkSecretPrevious string `yaml:"link_secret_previous" secret:"true"` // FERRY_LINK_SECRET_PREVIOUS
	LinkPreviousUntil  string `yaml:"link_previous_until"`                // FERRY_LINK_PREVIOUS_UNTIL
}

// MinLinkSecret is the shortest auth.link_secret taken (auth.MinLinkSecret).
const MinLinkSecret = 32

// PreviousUntil is when the previous link secret stops being accepted; the
// zero time when none is set (Validate has checked the form).
func (a Auth) PreviousUntil() time.Time {
	t, _ := time.Parse(time.RFC3339, a.LinkPreviousUntil)
	return t
}

// Limits are the rate limits of Llama Stack's Files API docs: requests
// per subject (the API key's name under auth, else the client's address)
// in any one minute, shared through Redis when it is configured. 0 turns
// a class off.
type Limits struct {
	UploadsPerMinute    int `yaml:"uploads_per_minute"`    // FERRY_LIMIT_UPLOADS_PER_MINUTE: session, OpenAI file and Upload creates
	RetrievalsPerMinute int `yaml:"retrievals_per_minute"` // FERRY_LIMIT_RETRIEVALS_PER_MINUTE: GETs of file info, content and lists
	DeletionsPerMinute  int `yaml:"deletions_per_minute"`  // FERRY_LIMIT_DELETIONS_PER_MINUTE: DELETEs of files, buckets and vector stores
}

// MaxPerMinute bounds each limit: the limiter keeps one timestamp per
// counted request for a minute, per subject.
const MaxPerMinute = 100_000

// Server bounds how long a client may keep a connection busy without
// sending anything.
type Server struct {
	// ReadIdleTimeout bounds each read of a request body: a client that
	// sends nothing for this long loses the request (and the session lock
	// it held), so its resume from a new connection is not refused as busy.
	ReadIdleTimeout   time.Duration `yaml:"read_idle_timeout"`   // FERRY_READ_IDLE_TIMEOUT, --read-idle-timeout
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"` // FERRY_READ_HEADER_TIMEOUT: time to send a request's headers
	// AllowedHosts, when set, are the only Host names requests may carry
	// (DNS rebinding: a hostile page whose name resolves to ferryd's
	// address still sends its own name).
	AllowedHosts []string `yaml:"allowed_hosts"` // FERRY_ALLOWED_HOSTS: host names, ','-separated
	// CORSOrigins are the web origins whose pages may call ferryd (tus-js-
	// client, Uppy, the OpenAI SDKs in a browser); none: CORS is off.
	CORSOrigins []string `yaml:"cors_origins"` // FERRY_CORS_ORIGINS: origins, ','-separated ("*": any)
	// A multipart form (OpenAI uploads) may have at most MaxFormParts parts
	// and MaxFormBytes of non-file fields together.
	MaxFormParts int `yaml:"max_form_parts"` // FERRY_MAX_FORM_PARTS
	MaxFormBytes int `yaml:"max_form_bytes"` // FERRY_MAX_FORM_BYTES
}

// Tus configures the tus 1.0 endpoint at /v1/tus/.
type Tus struct {
	Bucket string `yaml:"bucket"` // FERRY_TUS_BUCKET: where uploads go whose Upload-Metadata names no bucket
}

// Registration limits what existing data may be registered.
type Registration struct {
	// AllowedRoots are the directories under which file:// locations may be
	// registered. None (the default) disables file:// registration.
	AllowedRoots []string `yaml:"allowed_roots"` // FERRY_ALLOWED_ROOTS: absolute paths, ':'-separated
	// AllowedS3Buckets are the S3 buckets s3:// locations may name ("*":
	// any the credentials reach). None (the default) disables s3://
	// registration: ferryd's credentials may reach buckets its users must not.
	AllowedS3Buckets []string `yaml:"allowed_s3_buckets"` // FERRY_ALLOWED_S3_BUCKETS: bucket names, ','-separated
}

// OpenAI configures the OpenAI-compatible adapter.
type OpenAI struct {
	Bucket        string        `yaml:"bucket"`          // FERRY_OPENAI_BUCKET: native bucket of OpenAI files
	UploadsBucket string        `yaml:"uploads_bucket"`  // FERRY_OPENAI_UPLOADS_BUCKET: parts of unfinished Uploads
	MaxFileSize   int64         `yaml:"max_file_size"`   // FERRY_OPENAI_MAX_FILE_SIZE: largest POST /files, bytes
	MaxUploadSize int64         `yaml:"max_upload_size"` // FERRY_OPENAI_MAX_UPLOAD_SIZE: largest Upload, bytes
	UploadTTL     time.Duration `yaml:"upload_ttl"`      // FERRY_OPENAI_UPLOAD_TTL: an Upload expires after this

	// Vector stores.
	VectorWorkers      int           `yaml:"vector_workers"`       // FERRY_OPENAI_VECTOR_WORKERS: files this instance processes at once (0: none)
	VectorPollInterval time.Duration `yaml:"vector_poll_interval"` // FERRY_OPENAI_VECTOR_POLL_INTERVAL: how often idle workers check the shared queue
	VectorMaxFileSize  int64         `yaml:"vector_max_file_size"` // FERRY_OPENAI_VECTOR_MAX_FILE_SIZE: largest file a vector store indexes, bytes
	VectorCacheSize    int64         `yaml:"vector_cache_size"`    // FERRY_OPENAI_VECTOR_CACHE_SIZE: bytes of search indexes kept in memory
	Embeddings         Embeddings    `yaml:"embeddings"`
}

// Embeddings names an OpenAI-compatible embeddings endpoint for the vector
// and hybrid search modes. Empty URL: keyword search only.
type Embeddings struct {
	URL    string `yaml:"url"`                   // FERRY_OPENAI_EMBEDDINGS_URL: base URL, e.g. http://127.0.0.1:11434/v1
	Model  string `yaml:"model"`                 // FERRY_OPENAI_EMBEDDINGS_MODEL
	APIKey string `yaml:"api_key" secret:"true"` // FERRY_OPENAI_EMBEDDINGS_API_KEY: sent as a bearer token
}

// Log configures the structured logger.
type Log struct {
	Format string `yaml:"format"` // FERRY_LOG_FORMAT, --log-format: text or json
	Level  string `yaml:"level"`  // FERRY_LOG_LEVEL, --log-level: debug, info, warn or error
}

// Redis selects the Redis metadata store: one node by URL, or a cluster or
// Sentinel-watched master by Addrs. Neither set means embedded bbolt.
type Redis struct {
	URL    string `yaml:"url"`    // FERRY_REDIS_URL: redis://[user:pass@]host:port/db or rediss://…
	Prefix string `yaml:"prefix"` // FERRY_REDIS_PREFIX: prepended to every key
	// Addrs are a cluster's nodes (any of them; the rest are discovered)
	// or, with MasterName, the sentinels.
	Addrs      []string `yaml:"addrs"`       // FERRY_REDIS_ADDRS: host:port,host:port
	Mode       string   `yaml:"mode"`        // FERRY_REDIS_MODE: cluster or sentinel; empty: sentinel if master_name is set, else cluster
	MasterName string   `yaml:"master_name"` // FERRY_REDIS_MASTER_NAME: the master the sentinels watch
	// Username and Password are the ACL user for the data nodes (a URL may
	// carry its own); SentinelPassword authenticates to the sentinels.
	Username         string `yaml:"username"`                        // FERRY_REDIS_USERNAME
	Password         string `yaml:"password" secret:"true"`          // FERRY_REDIS_PASSWORD
	SentinelPassword string `yaml:"sentinel_password" secret:"true"` // FERRY_REDIS_SENTINEL_PASSWORD
	TLS              bool   `yaml:"tls"`                             // FERRY_REDIS_TLS: TLS to every node (a rediss:// URL implies it)
	CAFile           string `yaml:"ca_file"`                         // FERRY_REDIS_CA_FILE: PEM certificates that sign the nodes' (default: the system's); implies tls
	// MinReplicasAck makes every metadata write wait (Redis WAIT) until
	// this many replicas hold it before ferryd acknowledges anything it
	// wrote; past ReplicaAckTimeout the request gets 503 instead. 0 does
	// not wait: a failover may then lose what the old master acknowledged
	// last (docs/scaling.md).
	MinReplicasAck    int           `yaml:"min_replicas_ack"`    // FERRY_REDIS_MIN_REPLICAS_ACK
	ReplicaAckTimeout time.Duration `yaml:"replica_ack_timeout"` // FERRY_REDIS_REPLICA_ACK_TIMEOUT
}

// MaxReplicaAckTimeout bounds redis.replica_ack_timeout: the WAIT travels
// in the write's round trip, which go-redis reads with a 3 s timeout.
const MaxReplicaAckTimeout = 2 * time.Second

// Redis topologies: redis.mode's values, and single for redis.url.
const (
	RedisSingle   = "single"
	RedisCluster  = "cluster"
	RedisSentinel = "sentinel"
)

// Topology is how the Redis settings connect: single (redis.url), cluster
// or sentinel (redis.addrs); "" without Redis.
func (r Redis) Topology() string {
	switch {
	case r.URL != "":
		return RedisSingle
	case len(r.Addrs) == 0:
		return ""
	case r.Mode != "":
		return r.Mode
	case r.MasterName != "":
		return RedisSentinel
	}
	return RedisCluster
}

// S3 selects the S3 blob backend. Empty Bucket means the local filesystem.
type S3 struct {
	Endpoint  string `yaml:"endpoint"`   // FERRY_S3_ENDPOINT: empty means AWS
	Region    string `yaml:"region"`     // FERRY_S3_REGION
	Bucket    string `yaml:"bucket"`     // FERRY_S3_BUCKET
	Prefix    string `yaml:"prefix"`     // FERRY_S3_PREFIX: where ferry's objects live in the bucket
	PathStyle bool   `yaml:"path_style"` // FERRY_S3_PATH_STYLE
	// FullObjectChecksums has S3 check every assembled object against its
	// CRC32C (ChecksumType FULL_OBJECT), each part sent with its own.
	FullObjectChecksums bool   `yaml:"full_object_checksums"`           // FERRY_S3_FULL_OBJECT_CHECKSUMS
	AccessKeyID         string `yaml:"access_key_id"`                   // AWS_ACCESS_KEY_ID
	SecretAccessKey     string `yaml:"secret_access_key" secret:"true"` // AWS_SECRET_ACCESS_KEY
}

// Sessions bounds upload sessions.
type Sessions struct {
	TTL           time.Duration `yaml:"ttl"`            // FERRY_SESSION_TTL: an idle session expires after this
	MaxSize       int64         `yaml:"max_size"`       // FERRY_SESSION_MAX_SIZE: largest file, in bytes
	PurgeInterval time.Duration `yaml:"purge_interval"` // FERRY_SESSION_PURGE_INTERVAL: how often expired sessions are freed
	OrphanAge     time.Duration `yaml:"orphan_age"`     // FERRY_SESSION_ORPHAN_AGE: a multipart upload no session owns is aborted this old
	MaxHeldBytes  int64         `yaml:"max_held_bytes"` // FERRY_SESSION_MAX_HELD_BYTES: cap on bytes one S3 session holds back between small chunks
	MaxHeldTotal  int64         `yaml:"max_held_total"` // FERRY_SESSION_MAX_HELD_TOTAL: cap on bytes all sessions together hold back in the metadata store
	// MaxBufferedBytes caps the request data one instance holds in memory
	// at once (held-back chunks, tails sent as a part, pieces of chunked
	// appends and OpenAI uploads); past it a request waits, then gets 503.
	MaxBufferedBytes int64 `yaml:"max_buffered_bytes"` // FERRY_SESSION_MAX_BUFFERED_BYTES
	// SHA256Buckets are the buckets whose every file gets a SHA-256, as if
	// each upload asked for it ("*": every bucket).
	SHA256Buckets []string `yaml:"sha256_buckets"` // FERRY_SESSION_SHA256_BUCKETS, ','-separated
}

// Default returns the embedded-default configuration.
func Default() Config {
	return Config{
		Addr:            "127.0.0.1:8321",
		DataDir:         "./data",
		ShutdownTimeout: 30 * time.Second,
		Server: Server{ReadIdleTimeout: 15 * time.Second, ReadHeaderTimeout: 10 * time.Second,
			MaxFormParts: 64, MaxFormBytes: 256 << 10},
		Log:   Log{Format: "text", Level: "info"},
		Redis: Redis{Prefix: "ferry:", ReplicaAckTimeout: time.Second},
		S3:    S3{Region: "us-east-1", FullObjectChecksums: true},
		OpenAI: OpenAI{Bucket: "openai", UploadsBucket: "openai-uploads", MaxFileSize: 512 << 20, MaxUploadSize: 8 << 30, UploadTTL: time.Hour,
			VectorWorkers: 2, VectorPollInterval: time.Second, VectorMaxFileSize: 16 << 20, VectorCacheSize: 256 << 20},
		Downloads: Downloads{Redirect: DownloadsProxied, PresignTTL: 5 * time.Minute},
		Sessions: Sessions{TTL: 24 * time.Hour, MaxSize: 5 << 40, PurgeInterval: time.Minute, OrphanAge: time.Hour, MaxHeldBytes: 16 << 20, MaxHeldTotal: 1 << 30,
			MaxBufferedBytes: 64 << 20},
		Limits: Limits{UploadsPerMinute: 100, RetrievalsPerMinute: 1000, DeletionsPerMinute: 100},
		Tus:    Tus{Bucket: "tus"},
		Events: Events{Retention: 7 * 24 * time.Hour, MaxEvents: 100_000, MaxAge: 24 * time.Hour},
		Hooks:  defaultHooks(),
	}
}

// UsesRedis reports whether metadata lives in Redis rather than bbolt.
func (c Config) UsesRedis() bool { return c.Redis.Topology() != "" }

// UsesS3 reports whether blobs live in S3 rather than under DataDir.
func (c Config) UsesS3() bool { return c.S3.Bucket != "" }
