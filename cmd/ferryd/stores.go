package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ferryhq/ferry/bucket"
	"github.com/ferryhq/ferry/bucket/fsblob"
	"github.com/ferryhq/ferry/bucket/s3blob"
	"github.com/ferryhq/ferry/config"
	"github.com/ferryhq/ferry/metastore"
	"github.com/ferryhq/ferry/metastore/boltstore"
	"github.com/ferryhq/ferry/metastore/redisstore"
	"github.com/ferryhq/ferry/metrics"
)

type stores struct {
	meta     metastore.Store
	blobs    bucket.Backend
	metaKind string
	blobKind string
	// closeBlobs is the raw backend's Close, if it has one: the metrics
	// wrapper shows only the bucket interfaces.
	closeBlobs io.Closer
}

// openStores is the one place that picks implementations: Redis when
// redis.url is set, else bbolt under data_dir; S3 when s3.bucket is set,
// else the filesystem under data_dir. Both come back wrapped with metrics
// registered on reg.
func openStores(ctx context.Context, cfg config.Config, reg prometheus.Registerer) (*stores, error) {
	st := &stores{}
	var err error
	switch {
	case cfg.UsesRedis():
		st.metaKind = "redis"
		st.meta, err = redisstore.Open(cfg.Redis.URL, cfg.Redis.Prefix)
	default:
		st.metaKind = "bbolt"
		st.meta, err = boltstore.Open(filepath.Join(cfg.DataDir, "meta.db"))
	}
	if err != nil {
		return nil, fmt.Errorf("open %s metadata store: %w", st.metaKind, err)
	}
	st.meta = metrics.Store(st.meta, reg)

	var blobs bucket.Backend
	switch {
	case cfg.UsesS3():
		st.blobKind = "s3"
		var client s3blob.API
		client, err = s3blob.NewClient(ctx, s3blob.ClientConfig{
			Endpoint:        cfg.S3.Endpoint,
			Region:          cfg.S3.Region,
			PathStyle:       cfg.S3.PathStyle,
			AccessKeyID:     cfg.S3.AccessKeyID,
			SecretAccessKey: cfg.S3.SecretAccessKey,
		})
		if err == nil {
			blobs = s3blob.New(metrics.S3API(client, reg), cfg.S3.Bucket, cfg.S3.Prefix)
		}
	default:
		st.blobKind = "filesystem"
		blobs, err = fsblob.New(filepath.Join(cfg.DataDir, "blobs"))
	}
	if err != nil {
		_ = st.meta.Close()
		return nil, fmt.Errorf("open %s blob backend: %w", st.blobKind, err)
	}
	st.closeBlobs, _ = blobs.(io.Closer)
	st.blobs = metrics.Backend(blobs, st.blobKind, reg)
	return st, nil
}

func (st *stores) Close() error {
	var errs []error
	if st.closeBlobs != nil {
		errs = append(errs, st.closeBlobs.Close())
	}
	errs = append(errs, st.meta.Close())
	return errors.Join(errs...)
}
