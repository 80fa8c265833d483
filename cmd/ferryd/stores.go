package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/ferryhq/ferry/bucket"
	"github.com/ferryhq/ferry/bucket/fsblob"
	"github.com/ferryhq/ferry/bucket/s3blob"
	"github.com/ferryhq/ferry/config"
	"github.com/ferryhq/ferry/metastore"
	"github.com/ferryhq/ferry/metastore/boltstore"
	"github.com/ferryhq/ferry/metastore/redisstore"
)

type stores struct {
	meta     metastore.Store
	blobs    bucket.Backend
	metaKind string
	blobKind string
}

// openStores is the one place that picks implementations: Redis when
// redis.url is set, else bbolt under data_dir; S3 when s3.bucket is set,
// else the filesystem under data_dir.
func openStores(ctx context.Context, cfg config.Config) (*stores, error) {
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
			st.blobs = s3blob.New(client, cfg.S3.Bucket, cfg.S3.Prefix)
		}
	default:
		st.blobKind = "filesystem"
		st.blobs, err = fsblob.New(filepath.Join(cfg.DataDir, "blobs"))
	}
	if err != nil {
		_ = st.meta.Close()
		return nil, fmt.Errorf("open %s blob backend: %w", st.blobKind, err)
	}
	return st, nil
}

func (st *stores) Close() error {
	var errs []error
	if c, ok := st.blobs.(interface{ Close() error }); ok {
		errs = append(errs, c.Close())
	}
	errs = append(errs, st.meta.Close())
	return errors.Join(errs...)
}
