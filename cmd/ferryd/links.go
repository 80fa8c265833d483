package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/ferryhq/ferry/auth"
	"github.com/ferryhq/ferry/config"
	"github.com/ferryhq/ferry/metastore"
)

// linkSecretFile holds the generated link secret under the data directory
// (the embedded store); linkSecretRecord in the metadata store (Redis),
// where every instance finds the same one.
const (
	linkSecretFile   = "link_secret"
	linkSecretRecord = "auth/link_secret"
)

// openLinks is the signer of upload links and presigned downloads: with
// auth.link_secret, else a generated one, made the first time and kept:
// on Redis in the metadata store, shared by every instance; embedded in
// <data_dir>/link_secret (mode 0600).
func openLinks(ctx context.Context, cfg config.Config, meta metastore.Store, log *slog.Logger) (*auth.Links, error) {
	secret := cfg.Auth.LinkSecret
	if secret == "" {
		var err error
		if cfg.UsesRedis() {
			secret, err = sharedLinkSecret(ctx, meta, log)
		} else {
			secret, err = localLinkSecret(cfg.DataDir, log)
		}
		if err != nil {
			return nil, fmt.Errorf("%w (or set auth.link_secret, FERRY_LINK_SECRET)", err)
		}
	}
	links, err := auth.NewLinks(secret, cfg.Auth.LinkSecretPrevious, cfg.Auth.PreviousUntil())
	if err != nil {
		return nil, fmt.Errorf("%w (auth.link_secret, FERRY_LINK_SECRET)", err)
	}
	return links, nil
}

// sharedLinkSecret reads the metadata store's link secret, generating it if
// there is none: of instances starting together, one creates it and the
// others read it.
func sharedLinkSecret(ctx context.Context, meta metastore.Store, log *slog.Logger) (string, error) {
	for range 3 {
		rec, err := meta.Get(ctx, linkSecretRecord)
		if err == nil {
			if s := string(rec.Value); len(s) >= auth.MinLinkSecret {
				return s, nil
			}
			return "", fmt.Errorf("link secret record %s holds fewer than %d characters: delete it to have a new one made (links made so far stop working)", linkSecretRecord, auth.MinLinkSecret)
		}
		if !errors.Is(err, metastore.ErrNotFound) {
			return "", fmt.Errorf("read the link secret from the metadata store: %w", err)
		}
		_, err = meta.Put(ctx, linkSecretRecord, []byte(auth.NewLinkSecret()), metastore.Cond{Version: 0})
		if err == nil {
			log.Info("link_secret_generated", "record", linkSecretRecord)
		} else if !errors.Is(err, metastore.ErrConflict) {
			return "", fmt.Errorf("write the link secret to the metadata store: %w", err)
		}
	}
	return "", fmt.Errorf("link secret: the record %s keeps changing", linkSecretRecord)
}

// localLinkSecret reads the data directory's link secret, generating it if
// there is none.
func localLinkSecret(dataDir string, log *slog.Logger) (string, error) {
	path := filepath.Join(dataDir, linkSecretFile)
	data, err := os.ReadFile(path)
	if err == nil {
		if s := strings.TrimSpace(string(data)); len(s) >= auth.MinLinkSecret {
			return s, nil
		}
		return "", fmt.Errorf("link secret %s holds fewer than %d characters: remove it to have a new one made (links made so far stop working), or set auth.link_secret", path, auth.MinLinkSecret)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("link secret: %w", err)
	}
	if err := os.MkdirAll(dataDir, 0o750); err != nil {
		return "", fmt.Errorf("link secret: %w", err)
	}
	secret := auth.NewLinkSecret()
	// O_EXCL: of two ferryd starting on one directory, one writes and the other reads.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return localLinkSecret(dataDir, log)
	}
	if err != nil {
		return "", fmt.Errorf("link secret: %w", err)
	}
	_, err = f.WriteString(secret + "\n")
	if err = errors.Join(err, f.Sync(), f.Close()); err != nil {
		_ = os.Remove(path)
		return "", fmt.Errorf("link secret: %w", err)
	}
	log.Info("link_secret_generated", "path", path)
	return secret, nil
}
