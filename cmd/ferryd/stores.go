package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/ferryhq/ferry/bucket"
	"github.com/ferryhq/ferry/bucket/fsblob"
	"github.com/ferryhq/ferry/bucket/s3blob"
	"github.com/ferryhq/ferry/config"
	"github.com/ferryhq/ferry/metastore"
	"github.com/ferryhq/ferry/metastore/boltstore"
	"github.com/ferryhq/ferry/metastore/redisstore"
	"github.com/ferryhq/ferry/metrics"
	"github.com/ferryhq/ferry/ratelimit"
	"github.com/ferryhq/ferry/registry"
)

type stores struct {
	meta     metastore.Store
	blobs    bucket.Composer
	metaKind string
	blobKind string
	s3       s3blob.API // nil without S3
	s3client *s3.Client // st.s3 unwrapped, to sign URLs with
	reg      prometheus.Registerer
	limiter  ratelimit.Limiter // on the metadata store's Redis, else in the process
}

// openStores is the one place that picks implementations: Redis when
// redis.url or redis.addrs is set, else bbolt under data_dir; S3 when s3.bucket is set,
// else the filesystem under data_dir. Both come back wrapped with metrics
// registered on reg. The rate limiter goes with the metadata store: on its
// Redis, shared by every instance, else in the process.
func openStores(ctx context.Context, cfg config.Config, reg prometheus.Registerer) (*stores, error) {
	st := &stores{reg: reg}
	var err error
	switch {
	case cfg.UsesRedis():
		st.metaKind = "redis"
		var c redis.UniversalClient
		if c, err = redisClient(cfg.Redis); err == nil {
			st.meta = redisstore.Own(c, cfg.Redis.Prefix).WaitForReplicas(cfg.Redis.MinReplicasAck, cfg.Redis.ReplicaAckTimeout)
			st.limiter = ratelimit.NewRedis(c, cfg.Redis.Prefix)
		}
	default:
		st.metaKind = "bbolt"
		st.meta, err = boltstore.Open(filepath.Join(cfg.DataDir, "meta.db"))
		st.limiter = ratelimit.NewMemory()
	}
	if err != nil {
		return nil, fmt.Errorf("open %s metadata store: %w", st.metaKind, err)
	}
	st.meta = metrics.Store(st.meta, reg)

	var blobs bucket.Composer
	switch {
	case cfg.UsesS3():
		st.blobKind = "s3"
		st.s3client, err = s3blob.NewClient(ctx, s3blob.ClientConfig{
			Endpoint:        cfg.S3.Endpoint,
			Region:          cfg.S3.Region,
			PathStyle:       cfg.S3.PathStyle,
			AccessKeyID:     cfg.S3.AccessKeyID,
			SecretAccessKey: cfg.S3.SecretAccessKey,
		})
		if err == nil {
			st.s3 = metrics.S3API(st.s3client, reg)
			blobs = st.s3Bucket(cfg.S3.Bucket, cfg.S3.Prefix)
		}
	default:
		st.blobKind = "filesystem"
		var fs *fsblob.Backend
		fs, err = fsblob.New(filepath.Join(cfg.DataDir, "blobs"))
		blobs = bucket.Compose(fs)
	}
	if err != nil {
		_ = st.meta.Close()
		return nil, fmt.Errorf("open %s blob backend: %w", st.blobKind, err)
	}
	st.blobs = metrics.Backend(blobs, st.blobKind, reg)
	return st, nil
}

// s3Bucket is bkt under prefix on the configured S3, with URLs signed by
// the same client.
func (st *stores) s3Bucket(bkt, prefix string) bucket.Composer {
	c := bucket.Compose(s3blob.New(st.s3, bkt, prefix))
	c.Presigner = s3blob.NewPresigner(st.s3client, bkt, prefix)
	return c
}

// locations is what registered buckets may use: directories under the
// allowed roots, and buckets on the configured S3 endpoint, never Ferry's
// own bucket prefix or data directory.
func (st *stores) locations(cfg config.Config) registry.Locations {
	l := registry.Locations{
		Roots:     cfg.Registration.AllowedRoots,
		S3Buckets: cfg.Registration.AllowedS3Buckets,
		OpenDir: func(dir string) (bucket.Composer, error) {
			b, err := fsblob.NewDir(dir)
			if err != nil {
				return bucket.Composer{}, err
			}
			return metrics.Backend(bucket.Compose(b), "filesystem", st.reg), nil
		},
	}
	if dir, err := filepath.Abs(cfg.DataDir); err == nil {
		if real, err := filepath.EvalSymlinks(dir); err == nil {
			dir = real
		}
		l.Own = append(l.Own, registry.Location{Scheme: "file", Dir: dir})
	}
	if st.s3 != nil {
		l.OpenS3 = func(bkt, prefix string) (bucket.Composer, error) {
			return metrics.Backend(st.s3Bucket(bkt, prefix), "s3", st.reg), nil
		}
		own, err := registry.ParseLocation("s3://" + cfg.S3.Bucket + "/" + cfg.S3.Prefix)
		if err == nil {
			l.Own = append(l.Own, own)
		}
	}
	return l
}

func (st *stores) Close() error {
	return errors.Join(st.blobs.Close(), st.meta.Close())
}

// redisClient connects as the settings say: one node by URL, a cluster by
// its nodes, or the master the sentinels name. The ACL user and TLS apply
// to every topology.
func redisClient(r config.Redis) (redis.UniversalClient, error) {
	var tlsConf *tls.Config
	if r.TLS || r.CAFile != "" {
		tlsConf = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	if r.CAFile != "" {
		pem, err := os.ReadFile(r.CAFile)
		if err != nil {
			return nil, fmt.Errorf("redis.ca_file: %w", err)
		}
		tlsConf.RootCAs = x509.NewCertPool()
		if !tlsConf.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("redis.ca_file %s holds no PEM certificate", r.CAFile)
		}
	}
	switch r.Topology() {
	case config.RedisCluster:
		return redis.NewClusterClient(&redis.ClusterOptions{Addrs: r.Addrs,
			Username: r.Username, Password: r.Password, TLSConfig: tlsConf,
			MaintNotificationsConfig: redisstore.NoMaintNotifications()}), nil
	case config.RedisSentinel:
		return redis.NewFailoverClient(&redis.FailoverOptions{MasterName: r.MasterName, SentinelAddrs: r.Addrs,
			SentinelPassword: r.SentinelPassword, Username: r.Username, Password: r.Password, TLSConfig: tlsConf}), nil
	}
	opt, err := redis.ParseURL(r.URL)
	if err != nil {
		return nil, fmt.Errorf("redis.url: %w", err)
	}
	opt.MaintNotificationsConfig = redisstore.NoMaintNotifications()
	if r.Username != "" {
		opt.Username = r.Username
	}
	if r.Password != "" {
		opt.Password = r.Password
	}
	switch {
	case opt.TLSConfig == nil:
		opt.TLSConfig = tlsConf
	case tlsConf != nil:
		opt.TLSConfig.RootCAs = tlsConf.RootCAs // rediss:// set the server name
	}
	return redis.NewClient(opt), nil
}
