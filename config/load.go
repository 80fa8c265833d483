package config

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Sources says where each setting's value came from, by YAML key
// ("sessions.ttl"): "file PATH", "env NAME" or "flag --name". A key it
// does not hold has its default.
type Sources map[string]string

// Of is where key's value came from.
func (s Sources) Of(key string) string {
	if from, ok := s[key]; ok {
		return from
	}
	return "default"
}

// Load builds the configuration from args (without the program name) and
// the environment lookup (os.LookupEnv in production). Every problem with
// the flags, the file and the environment comes back in one error, so a
// user fixes them in one go; -h prints the usage to out and returns
// flag.ErrHelp.
func Load(args []string, lookup func(string) (string, bool), out io.Writer) (Config, error) {
	cfg, _, err := LoadWithSources(args, lookup, out)
	return cfg, err
}

// LoadWithSources is Load that also says where each setting came from.
func LoadWithSources(args []string, lookup func(string) (string, bool), out io.Writer) (Config, Sources, error) {
	cfg, src := Default(), Sources{}
	fs, file := newFlagSet(cfg)
	var errs []error
	switch err := fs.Parse(args); {
	case errors.Is(err, flag.ErrHelp):
		fs.SetOutput(out)
		fs.Usage()
		return cfg, src, err
	case err != nil:
		errs = append(errs, fmt.Errorf("%v (ferryd -h lists the flags)", err))
	case fs.Arg(0) == "config":
		errs = append(errs, errors.New(`"config" must come first, before any flag: ferryd config [flags]`))
	case fs.NArg() > 0:
		errs = append(errs, fmt.Errorf("unexpected argument %q: ferryd takes only flags (see ferryd -h)", fs.Arg(0)))
	}
	if *file != "" {
		errs = append(errs, loadFile(&cfg, src, *file))
	}
	for _, e := range envVars {
		if v, ok := lookup(e.name); ok {
			errs = append(errs, set(&cfg, src, e.key, v, "env", e.name))
		}
	}
	fs.Visit(func(f *flag.Flag) {
		for _, fl := range flags {
			if fl.name == f.Name {
				errs = append(errs, set(&cfg, src, fl.key, f.Value.String(), "flag", "--"+f.Name))
			}
		}
	})
	return cfg, src, errors.Join(errs...)
}

// usage is ferryd's -h. It names ferryd config and the README's table,
// since only a few settings have flags.
const usage = `Usage:
  ferryd [flags]          serve
  ferryd config [flags]   print the effective configuration: every setting, its value and where it
                          came from (default, file, env or flag), secrets masked. It refuses what
                          ferryd would refuse to start with, with the same messages.

Settings come from the YAML file named by --config, then FERRY_* environment variables, then the
flags below, each overriding the one before. The Configuration section of README.md lists every
setting with its YAML key, environment variable and default.

Flags:
`

// flags are the settings that have a command-line flag, besides --config.
var flags = []struct{ name, key, usage string }{
	{"addr", "addr", "listen `address` (host:port)"},
	{"data-dir", "data_dir", "`directory` for embedded metadata and blobs"},
	{"log-format", "log.format", "log `format`: text or json"},
	{"log-level", "log.level", "log `level`: debug, info, warn or error"},
	{"read-idle-timeout", "server.read_idle_timeout", "longest wait for more of a request body before the request fails (a `duration`)"},
	{"insecure-open", "auth.insecure_open", "serve without API keys on a non-loopback address"},
}

// newFlagSet declares the flags. Their values are kept as text and parsed
// like the environment's, so a bad value is reported with the others
// rather than stopping the parse.
func newFlagSet(def Config) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet("ferryd", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are returned; -h prints the usage
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage)
		fs.PrintDefaults()
	}
	file := fs.String("config", "", "YAML configuration `file`")
	for _, f := range flags {
		v, _ := lookupField(&def, f.key)
		fs.Var(&text{s: format(v.value), bool: v.value.Kind() == reflect.Bool}, f.name, f.usage)
	}
	return fs, file
}

// text is a flag's value as given.
type text struct {
	s    string
	bool bool
}

func (t *text) String() string     { return t.s }
func (t *text) Set(s string) error { t.s = s; return nil }
func (t *text) IsBoolFlag() bool   { return t.bool }

// loadFile decodes the YAML strictly: an unknown key is an error, so a typo
// never silently falls back to a default. The decoder reports every
// unknown key and bad value it finds, not just the first.
func loadFile(cfg *Config, src Sources, path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read config file (--config): %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	var doc yaml.Node
	if yaml.Unmarshal(data, &doc) == nil {
		fileKeys(&doc, "", func(key string) {
			if _, ok := lookupField(cfg, key); ok {
				src[key] = "file " + path
			}
		})
	}
	return nil
}

// fileKeys calls found with the dotted key of every value the YAML sets.
func fileKeys(n *yaml.Node, prefix string, found func(string)) {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			fileKeys(c, prefix, found)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			fileKeys(n.Content[i+1], prefix+n.Content[i].Value+".", found)
		}
	default:
		found(strings.TrimSuffix(prefix, "."))
	}
}

// envVar binds one environment variable to the setting at a YAML key.
type envVar struct{ name, key string }

var envVars = []envVar{
	{"FERRY_ADDR", "addr"},
	{"FERRY_DATA_DIR", "data_dir"},
	{"FERRY_SHUTDOWN_TIMEOUT", "shutdown_timeout"},
	{"FERRY_READ_IDLE_TIMEOUT", "server.read_idle_timeout"},
	{"FERRY_READ_HEADER_TIMEOUT", "server.read_header_timeout"},
	{"FERRY_LOG_FORMAT", "log.format"},
	{"FERRY_LOG_LEVEL", "log.level"},
	{"FERRY_REDIS_URL", "redis.url"},
	{"FERRY_REDIS_PREFIX", "redis.prefix"},
	{"FERRY_ALLOWED_HOSTS", "server.allowed_hosts"},
	{"FERRY_MAX_FORM_PARTS", "server.max_form_parts"},
	{"FERRY_MAX_FORM_BYTES", "server.max_form_bytes"},
	{"FERRY_CORS_ORIGINS", "server.cors_origins"},
	{"FERRY_REDIS_ADDRS", "redis.addrs"},
	{"FERRY_REDIS_MODE", "redis.mode"},
	{"FERRY_REDIS_MASTER_NAME", "redis.master_name"},
	{"FERRY_REDIS_USERNAME", "redis.username"},
	{"FERRY_REDIS_PASSWORD", "redis.password"},
	{"FERRY_REDIS_SENTINEL_PASSWORD", "redis.sentinel_password"},
	{"FERRY_REDIS_CA_FILE", "redis.ca_file"},
	{"FERRY_REDIS_TLS", "redis.tls"},
	{"FERRY_REDIS_MIN_REPLICAS_ACK", "redis.min_replicas_ack"},
	{"FERRY_REDIS_REPLICA_ACK_TIMEOUT", "redis.replica_ack_timeout"},
	{"FERRY_S3_ENDPOINT", "s3.endpoint"},
	{"FERRY_S3_REGION", "s3.region"},
	{"FERRY_S3_BUCKET", "s3.bucket"},
	{"FERRY_S3_PREFIX", "s3.prefix"},
	{"FERRY_S3_PATH_STYLE", "s3.path_style"},
	{"AWS_ACCESS_KEY_ID", "s3.access_key_id"},
	{"AWS_SECRET_ACCESS_KEY", "s3.secret_access_key"},
	{"FERRY_SESSION_TTL", "sessions.ttl"},
	{"FERRY_SESSION_MAX_SIZE", "sessions.max_size"},
	{"FERRY_SESSION_MAX_HELD_BYTES", "sessions.max_held_bytes"},
	{"FERRY_SESSION_MAX_BUFFERED_BYTES", "sessions.max_buffered_bytes"},
	{"FERRY_SESSION_MAX_HELD_TOTAL", "sessions.max_held_total"},
	{"FERRY_SESSION_SHA256_BUCKETS", "sessions.sha256_buckets"},
	{"FERRY_S3_FULL_OBJECT_CHECKSUMS", "s3.full_object_checksums"},
	{"FERRY_OPENAI_BUCKET", "openai.bucket"},
	{"FERRY_TUS_BUCKET", "tus.bucket"},
	{"FERRY_OPENAI_UPLOADS_BUCKET", "openai.uploads_bucket"},
	{"FERRY_OPENAI_MAX_FILE_SIZE", "openai.max_file_size"},
	{"FERRY_OPENAI_MAX_UPLOAD_SIZE", "openai.max_upload_size"},
	{"FERRY_OPENAI_UPLOAD_TTL", "openai.upload_ttl"},
	{"FERRY_OPENAI_VECTOR_WORKERS", "openai.vector_workers"},
	{"FERRY_OPENAI_VECTOR_POLL_INTERVAL", "openai.vector_poll_interval"},
	{"FERRY_OPENAI_VECTOR_MAX_FILE_SIZE", "openai.vector_max_file_size"},
	{"FERRY_OPENAI_VECTOR_CACHE_SIZE", "openai.vector_cache_size"},
	{"FERRY_OPENAI_EMBEDDINGS_URL", "openai.embeddings.url"},
	{"FERRY_OPENAI_EMBEDDINGS_MODEL", "openai.embeddings.model"},
	{"FERRY_OPENAI_EMBEDDINGS_API_KEY", "openai.embeddings.api_key"},
	{"FERRY_ALLOWED_ROOTS", rootsKey},
	{"FERRY_ALLOWED_S3_BUCKETS", "registration.allowed_s3_buckets"},
	{"FERRY_API_KEYS_FILE", "auth.keys_file"},
	{"FERRY_INSECURE_OPEN", "auth.insecure_open"},
	{"FERRY_LINK_SECRET", "auth.link_secret"},
	{"FERRY_LINK_SECRET_PREVIOUS", "auth.link_secret_previous"},
	{"FERRY_LINK_PREVIOUS_UNTIL", "auth.link_previous_until"},
	{"FERRY_DOWNLOADS_REDIRECT", "downloads.redirect"},
	{"FERRY_DOWNLOADS_PRESIGN_TTL", "downloads.presign_ttl"},
	{"FERRY_SESSION_PURGE_INTERVAL", "sessions.purge_interval"},
	{"FERRY_SESSION_ORPHAN_AGE", "sessions.orphan_age"},
	{"FERRY_LIMIT_UPLOADS_PER_MINUTE", "limits.uploads_per_minute"},
	{"FERRY_LIMIT_RETRIEVALS_PER_MINUTE", "limits.retrievals_per_minute"},
	{"FERRY_LIMIT_DELETIONS_PER_MINUTE", "limits.deletions_per_minute"},
	{"FERRY_EVENTS_RETENTION", "events.retention"},
	{"FERRY_EVENTS_MAX_EVENTS", "events.max_events"},
	{"FERRY_EVENTS_MAX_AGE", "events.max_age"},
	{"FERRY_WEBHOOK_URL", "events.webhook_url"},
	{"FERRY_WEBHOOK_SECRET", "events.webhook_secret"},
	{"FERRY_HOOK_PRE_CREATE_URL", "hooks.pre_create.url"},
	{"FERRY_HOOK_PRE_CREATE_SECRET", "hooks.pre_create.secret"},
	{"FERRY_HOOK_PRE_CREATE_TIMEOUT", "hooks.pre_create.timeout"},
	{"FERRY_HOOK_PRE_CREATE_ON_ERROR", "hooks.pre_create.on_error"},
}

// rootsKey's environment variable separates paths with ':', as PATH does,
// since a path may hold a comma; every other list takes ','.
const rootsKey = "registration.allowed_roots"

// EnvNames lists every environment variable Load reads, for documentation.
func EnvNames() []string {
	names := make([]string, len(envVars))
	for i, e := range envVars {
		names[i] = e.name
	}
	return names
}

// set parses raw into the setting at key and records where it came from
// (kind "env" or "flag", name as the user wrote it). A bad value names the
// variable or flag and says what to write instead, with the default as
// the example.
func set(cfg *Config, src Sources, key, raw, kind, name string) error {
	f, ok := lookupField(cfg, key)
	d := Default()
	def, _ := lookupField(&d, key)
	if !ok {
		return fmt.Errorf("%s %s names no setting %s", kind, name, key) // a mistake in the tables above
	}
	if err := parse(f.value, def.value, key, raw); err != nil {
		return fmt.Errorf("%s=%q: %v (%s)", name, raw, err, key)
	}
	src[key] = kind + " " + name
	return nil
}

func parse(v, example reflect.Value, key, raw string) error {
	if v.Type() == reflect.TypeFor[time.Duration]() {
		d, err := time.ParseDuration(raw)
		if err != nil {
			return fmt.Errorf("not a duration: write a number with a unit, such as %s", format(example))
		}
		v.SetInt(int64(d))
		return nil
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(raw)
	case reflect.Bool:
		b, err := strconv.ParseBool(raw)
		if err != nil {
			return errors.New("not true or false: write true or false (1 or 0 work too)")
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int64:
		n, err := strconv.ParseInt(raw, 10, v.Type().Bits())
		if err != nil {
			return fmt.Errorf("not a whole number: write digits only, such as %s", format(example))
		}
		v.SetInt(n)
	case reflect.Slice:
		var items []string
		if key == rootsKey {
			items = filepath.SplitList(raw)
		} else {
			items = strings.Split(raw, ",")
		}
		var list []string
		for _, item := range items {
			if item = strings.TrimSpace(item); item != "" {
				list = append(list, item)
			}
		}
		v.Set(reflect.ValueOf(list))
	default:
		return fmt.Errorf("a %s cannot be set here", v.Type()) // a new field type: teach parse
	}
	return nil
}
