package main

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/ferryhq/ferry/auth"
	"github.com/ferryhq/ferry/config"
)

// linkSecretFile holds the generated link secret under the data directory.
const linkSecretFile = "link_secret"

// openLinks is the signer of upload links and presigned downloads: with
// auth.link_secret, or the secret in <data_dir>/link_secret, made there
// (mode 0600) the first time.
func openLinks(cfg config.Config, log *slog.Logger) (*auth.Links, error) {
	secret := cfg.Auth.LinkSecret
	if secret == "" {
		var err error
		secret, err = localLinkSecret(cfg.DataDir, log)
		switch {
		case err != nil && cfg.UsesRedis():
			// On Redis and S3 nothing else needs the data directory, which
			// may not be writable: start, with links that last this run.
			log.Warn("link_secret_ephemeral", "err", err,
				"advice", "set auth.link_secret (FERRY_LINK_SECRET): until then upload links and presigned URLs stop working when ferryd restarts")
			secret = auth.NewLinkSecret()
		case err != nil:
			return nil, fmt.Errorf("%w (or set auth.link_secret, FERRY_LINK_SECRET)", err)
		case cfg.UsesRedis():
			// Another instance has its own file: a link it made fails here.
			log.Warn("link_secret_local", "path", filepath.Join(cfg.DataDir, linkSecretFile),
				"advice", "with more than one ferryd instance, set auth.link_secret (FERRY_LINK_SECRET) to the same value on each")
		}
	}
	links, err := auth.NewLinks(secret, cfg.Auth.LinkSecretPrevious, cfg.Auth.PreviousUntil())
	if err != nil {
		return nil, fmt.Errorf("%w (auth.link_secret, FERRY_LINK_SECRET)", err)
	}
	return links, nil
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
