// Command ferryd is the Ferry server: config → stores → router → http.Server,
// with graceful shutdown on SIGTERM or SIGINT. ferryd config prints the
// configuration it would run with, and refuses what it would refuse.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/ferryhq/ferry/auth"
	"github.com/ferryhq/ferry/config"
	"github.com/ferryhq/ferry/events"
	"github.com/ferryhq/ferry/hooks"
	"github.com/ferryhq/ferry/httpapi"
	"github.com/ferryhq/ferry/logging"
	"github.com/ferryhq/ferry/metastore"
	"github.com/ferryhq/ferry/metastore/due"
	"github.com/ferryhq/ferry/metastore/migrate"
	"github.com/ferryhq/ferry/openai"
	"github.com/ferryhq/ferry/registry"
	"github.com/ferryhq/ferry/session"
	"github.com/ferryhq/ferry/tus"
	"github.com/ferryhq/ferry/vectorstore"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	var err error
	if len(os.Args) > 1 && os.Args[1] == "config" {
		err = showConfig(os.Args[2:], os.LookupEnv, os.Stdout, os.Stderr)
	} else {
		err = run(ctx, os.Args[1:], os.LookupEnv, os.Stderr, nil)
	}
	switch {
	case errors.Is(err, flag.ErrHelp):
	case err != nil:
		fmt.Fprintln(os.Stderr, "ferryd:", err)
		os.Exit(1)
	}
}

// run serves until ctx is done. When ready is non-nil it receives the bound
// address once the listener is up (tests listen on port 0).
func run(ctx context.Context, args []string, lookup func(string) (string, bool), stderr io.Writer, ready chan<- string) error {
	cfg, _, err := loadConfig(args, lookup, stderr)
	if err != nil {
		return err
	}
	log, err := logging.New(stderr, cfg.Log.Format, cfg.Log.Level)
	if err != nil {
		return err
	}
	slog.SetDefault(log)
	keys, err := readKeys(cfg.Auth.KeysFile, log)
	if err != nil {
		return err
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), collectors.NewBuildInfoCollector())
	st, err := openStores(ctx, cfg, reg)
	if err != nil {
		return err
	}
	defer st.Close()
	links, err := openLinks(ctx, cfg, st.meta, log)
	if err != nil {
		return err
	}
	svc, err := newServices(ctx, cfg, st, reg, log, links)
	if err != nil {
		return err
	}
	watchKeys(ctx, keys)
	handler := httpapi.New(httpapi.Deps{Store: st.meta, Blobs: st.blobs, Sessions: svc.sessions, Files: svc.files,
		OpenAI: svc.openai, VectorStores: svc.vectors, Tus: svc.tus, Metrics: reg, Logger: log,
		ReadIdleTimeout: cfg.Server.ReadIdleTimeout, AllowedHosts: cfg.Server.AllowedHosts, CORSOrigins: cfg.Server.CORSOrigins,
		Forms: httpapi.FormLimits{Parts: cfg.Server.MaxFormParts, Bytes: cfg.Server.MaxFormBytes},
		Keys:  keys, Links: links, Webhooks: svc.webhookNames(), Stopping: ctx, OpenAIBuckets: []string{cfg.OpenAI.Bucket, cfg.OpenAI.UploadsBucket}, PresignTTL: presignTTL(cfg.Downloads),
		Limits: httpapi.RateLimits{Limiter: st.limiter, Uploads: cfg.Limits.UploadsPerMinute,
			Retrievals: cfg.Limits.RetrievalsPerMinute, Deletions: cfg.Limits.DeletionsPerMinute},
		PreCreate: svc.preCreate})

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w (is another ferryd running? change --addr or FERRY_ADDR)", cfg.Addr, err)
	}
	access := "open (no API keys)"
	if keys != nil {
		access = fmt.Sprintf("%d API keys", keys.Len())
	}
	log.Info("ferryd listening", "addr", ln.Addr().String(), "metadata", st.metaKind, "blobs", st.blobKind, "access", access)
	if ready != nil {
		ready <- ln.Addr().String()
	}
	stop := svc.background(ctx, cfg.Sessions.PurgeInterval, log)
	err = serve(ctx, ln, handler, cfg.Server.ReadHeaderTimeout, cfg.ShutdownTimeout, log)
	stop() // the stores close only after the purger and workers have let go of them
	return err
}

// loadConfig is the configuration with every problem ferryd refuses to
// start on, before it connects to anything: ferryd config reports the same.
func loadConfig(args []string, lookup func(string) (string, bool), stderr io.Writer) (config.Config, config.Sources, error) {
	cfg, src, err := config.LoadWithSources(args, lookup, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return cfg, src, err
	}
	// The values that did parse are checked too, so one run lists everything.
	if err := errors.Join(err, cfg.Validate()); err != nil {
		return cfg, src, fmt.Errorf("invalid configuration:\n%w", err)
	}
	return cfg, src, nil
}

// readKeys reads the keys file, if one is configured.
func readKeys(path string, log *slog.Logger) (*auth.Keyring, error) {
	if path == "" {
		return nil, nil
	}
	keys, err := auth.Open(path, log)
	if err != nil {
		return nil, fmt.Errorf("%w (auth.keys_file, FERRY_API_KEYS_FILE)", err)
	}
	return keys, nil
}

// watchKeys keeps the keys current: read again on SIGHUP and whenever the
// file changes, until ctx ends.
func watchKeys(ctx context.Context, keys *auth.Keyring) {
	if keys == nil {
		return
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		defer signal.Stop(hup)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				keys.ReloadAndLog("SIGHUP")
			}
		}
	}()
	go keys.Watch(ctx, keysPollInterval)
}

// presignTTL is Deps.PresignTTL for the downloads settings: 0 unless
// presigned.
func presignTTL(d config.Downloads) time.Duration {
	if d.Redirect != config.DownloadsPresigned {
		return 0
	}
	return d.PresignTTL
}

// keysPollInterval is how soon an edit of the keys file takes effect
// without a SIGHUP.
const keysPollInterval = 2 * time.Second

// services are ferryd's domain services over its stores.
type services struct {
	files     *registry.Registry
	sessions  *session.Service
	openai    *openai.Service
	vectors   *vectorstore.Service
	tus       *tus.Handler
	webhooks  *events.Webhooks // nil: no receivers configured
	retention events.Retention
	meta      metastore.Store
	// preCreate is hooks.pre_create; nil when not configured.
	preCreate *hooks.Hook
}

func newServices(ctx context.Context, cfg config.Config, st *stores, reg *prometheus.Registry, log *slog.Logger, links *auth.Links) (*services, error) {
	// Before any service reads metadata: they know today's names only. So
	// ferryd does not start without its metadata store; an outage later
	// makes it not ready instead.
	if _, err := migrate.Run(ctx, st.meta, log); err != nil {
		return nil, fmt.Errorf("check the metadata layout (ferryd needs its metadata store at startup): %w", err)
	}
	places := registry.NewResolver(st.meta, st.blobs, st.locations(cfg))
	files := registry.New(st.meta, places)
	sessions, err := session.New(st.meta, places, files, session.Config{
		TTL: cfg.Sessions.TTL, MaxSize: cfg.Sessions.MaxSize, MaxHeld: cfg.Sessions.MaxHeldBytes,
		MaxHeldTotal: cfg.Sessions.MaxHeldTotal, MaxBuffered: cfg.Sessions.MaxBufferedBytes, SHA256Buckets: cfg.Sessions.SHA256Buckets,
		PlainParts: !cfg.S3.FullObjectChecksums, OrphanAge: cfg.Sessions.OrphanAge, Metrics: reg}, log)
	if err != nil {
		return nil, err
	}
	oc := cfg.OpenAI
	purgeFailures := due.NewFailures(reg, "openai") // the files' and the vector stores' purgers
	oai := openai.New(sessions, files, st.meta, openai.Config{Bucket: oc.Bucket, UploadsBucket: oc.UploadsBucket,
		MaxFileSize: oc.MaxFileSize, MaxUploadSize: oc.MaxUploadSize, UploadTTL: oc.UploadTTL, Metrics: reg,
		PurgeFailures: purgeFailures}, log)
	vs := vectorstore.New(oai, st.meta, vectorstore.Config{
		VectorWorkers: oc.VectorWorkers, VectorPollInterval: oc.VectorPollInterval, VectorMaxFileSize: oc.VectorMaxFileSize,
		VectorCacheSize: oc.VectorCacheSize,
		Embeddings:      vectorstore.EmbeddingsConfig{URL: oc.Embeddings.URL, Model: oc.Embeddings.Model, APIKey: oc.Embeddings.APIKey},
		Metrics:         reg, PurgeFailures: purgeFailures}, log)
	files.Subscribe(vs.OnFileEvent) // a file deleted or replaced by any route leaves the vector stores
	preCreate, err := hooks.NewClient(reg, log).Hook(hooks.PreCreate, cfg.Hooks.PreCreate)
	if err != nil {
		return nil, err
	}
	tusd, err := tus.New(sessions, files, st.meta, tus.Config{Bucket: cfg.Tus.Bucket, MaxSize: cfg.Sessions.MaxSize,
		NetworkTimeout: cfg.Server.ReadIdleTimeout, Logger: log, Links: links, PreCreate: preCreate})
	if err != nil {
		return nil, err
	}
	svc := &services{files: files, sessions: sessions, openai: oai, vectors: vs, tus: tusd, preCreate: preCreate,
		retention: events.Retention{MaxAge: cfg.Events.Retention, Max: cfg.Events.MaxEvents}, meta: st.meta}
	if sinks := cfg.Events.AllWebhooks(); len(sinks) > 0 {
		svc.webhooks = &events.Webhooks{Store: st.meta, Log: log, Metrics: events.NewMetrics(reg), Options: events.DefaultDelivery}
		svc.webhooks.Options.MaxAge = cfg.Events.MaxAge
		for _, w := range sinks {
			svc.webhooks.Sinks = append(svc.webhooks.Sinks, events.Sink{Name: w.Name, URL: w.URL, Secret: w.Secret, Types: w.Types, Buckets: w.Buckets})
		}
	}
	return svc, nil
}

func (svc *services) webhookNames() []string {
	if svc.webhooks == nil {
		return nil
	}
	var names []string
	for _, s := range svc.webhooks.Sinks {
		names = append(names, s.Name)
	}
	return names
}

// background starts the purgers and the vector-store workers; stop ends
// them and returns once they have.
func (svc *services) background(ctx context.Context, purgeInterval time.Duration, log *slog.Logger) (stop func()) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	purged := make(chan struct{})
	workers := make(chan struct{})
	delivery := make(chan struct{})
	go func() { // vector-store processing; a job cut short here is taken up again by any instance
		defer close(workers)
		svc.vectors.RunWorkers(ctx)
	}()
	go func() { // webhooks: one instance at a time delivers to each receiver
		defer close(delivery)
		if svc.webhooks != nil {
			svc.webhooks.Run(ctx)
		}
	}()
	go func() {
		defer close(purged)
		every(ctx, purgeInterval, func(ctx context.Context) {
			for name, purge := range map[string]func(context.Context) (int, error){
				"sessions": svc.sessions.Purge, "openai": svc.openai.Purge, "vector_stores": svc.vectors.Purge} {
				n, err := purge(ctx)
				if err != nil && !errors.Is(err, context.Canceled) {
					log.WarnContext(ctx, "purge_failed", "what", name, "err", err)
				}
				if n > 0 {
					log.InfoContext(ctx, "purged", "what", name, "count", n)
				}
			}
			if err := svc.retention.Trim(ctx, svc.meta, time.Now()); err != nil && !errors.Is(err, context.Canceled) {
				log.WarnContext(ctx, "purge_failed", "what", "events", "err", err)
			}
		})
	}()
	return func() {
		cancel()
		<-purged
		<-workers
		<-delivery
	}
}

// every runs fn each interval until ctx ends.
func every(ctx context.Context, interval time.Duration, fn func(context.Context)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fn(ctx)
		}
	}
}

// serve runs an http.Server on ln until ctx is done, then stops accepting
// and gives in-flight requests up to timeout to finish.
func serve(ctx context.Context, ln net.Listener, h http.Handler, readHeader, timeout time.Duration, log *slog.Logger) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: readHeader,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		// No ReadTimeout/WriteTimeout: uploads and downloads of many GiB are
		// long by design. A body that stops arriving is bounded per read by
		// the handler's read idle timeout instead (server.read_idle_timeout).
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down: finishing in-flight requests", "timeout", timeout)
	sctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
		return fmt.Errorf("shutdown: in-flight requests did not finish within %s: %w", timeout, err)
	}
	log.Info("stopped")
	return nil
}
