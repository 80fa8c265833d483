// Command ferry is the command-line client of ferryd: resumable uploads
// and downloads, ls, stat, rm and registration of existing data.
//
//	ferry [--server URL] upload FILE BUCKET/KEY
//	ferry [--server URL] download BUCKET/KEY [DEST]
//	ferry [--server URL] ls [BUCKET[/PREFIX]]
//	ferry [--server URL] stat BUCKET/KEY
//	ferry [--server URL] rm BUCKET/KEY
//	ferry [--server URL] presign BUCKET/KEY [--ttl D]
//	ferry [--server URL] events [--follow] [--after ID] [--limit N] [--json]
//	ferry [--server URL] register BUCKET LOCATION | BUCKET/KEY
//	ferry [--server URL] unregister BUCKET
//	ferry keys new NAME --buckets PATTERNS --access read|write|admin [--append FILE]
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/ferryhq/ferry/client"
)

const usage = `ferry is the command-line client of ferryd.

Usage:
  ferry [global flags] <command> [flags] [arguments]

Commands:
  upload FILE BUCKET/KEY       upload FILE, 4 parts at once, resuming where an earlier run stopped
  download BUCKET/KEY [DEST]   download to DEST (default: the key's last segment; - for stdout),
                               4 ranges at once, resuming a partial DEST.part
  ls [BUCKET[/PREFIX]]         list buckets, or a bucket's files under PREFIX
  stat BUCKET/KEY              print a file's information as JSON
  verify BUCKET/KEY [FILE]     compare local FILE with the stored file's checksums, downloading nothing
                               (a registered file's are computed by ferryd first)
  rm BUCKET/KEY                delete a file
  presign BUCKET/KEY           print a URL that downloads the file without a key (--ttl, default 1h)
  events                       print the events kept (files created and deleted, sessions, buckets);
                               --follow keeps printing them as they happen, --json as ferryd sent them
  register BUCKET LOCATION     serve existing data (s3://bucket/prefix or file:///dir) as BUCKET
  register BUCKET/KEY          record one existing object of a registered bucket
  unregister BUCKET            forget a registration; the data stays
  keys new NAME                make an API key: prints the key, and its keys-file entry
                               (or adds the entry to a keys file with --append FILE)

Global flags:
  --server URL   ferryd's address (default $FERRY_SERVER, else http://127.0.0.1:8321)

Environment:
  FERRY_API_KEY  sent as "Authorization: Bearer <key>" when ferryd has API keys

Run 'ferry <command> --help' for a command's flags.
`

// errUsage marks a mistake in the command line (exit status 2).
var errUsage = errors.New("usage")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv, nil)
	switch {
	case err == nil:
	case errors.Is(err, errUsage):
		if err != errUsage { // the flag package has printed its own
			fmt.Fprintln(os.Stderr, "ferry:", err)
		}
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "ferry:", strings.TrimPrefix(err.Error(), "ferry: "))
		os.Exit(1)
	}
}

// cli is one invocation: where to talk to and write.
type cli struct {
	c      *client.Client
	server string
	stdout io.Writer
	stderr io.Writer
	getenv func(string) string
}

// run is one invocation; hc nil means http.DefaultClient.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string, hc *http.Client) error {
	global := flag.NewFlagSet("ferry", flag.ContinueOnError)
	global.SetOutput(stderr)
	global.Usage = func() { fmt.Fprint(stderr, usage) }
	server := global.String("server", "", "ferryd's address")
	if err := global.Parse(args); err != nil {
		return usageErr(err)
	}
	if *server == "" {
		*server = getenv("FERRY_SERVER")
	}
	if *server == "" {
		*server = "http://127.0.0.1:8321"
	}
	if global.NArg() == 0 {
		global.Usage()
		return errUsage
	}
	c := client.New(*server, hc)
	if key := getenv("FERRY_API_KEY"); key != "" {
		c = c.WithAPIKey(key)
	}
	x := &cli{c: c, server: strings.TrimRight(*server, "/"), stdout: stdout, stderr: stderr, getenv: getenv}
	cmd, rest := global.Arg(0), global.Args()[1:]
	commands := map[string]func(context.Context, []string) error{
		"upload": x.upload, "download": x.download, "ls": x.ls, "stat": x.stat, "verify": x.verify, "rm": x.rm,
		"register": x.register, "unregister": x.unregister, "keys": x.keys, "presign": x.presign,
		"events": x.events,
	}
	fn, ok := commands[cmd]
	if !ok {
		fmt.Fprintf(stderr, "ferry: unknown command %q\n\n%s", cmd, usage)
		return errUsage
	}
	return fn(ctx, rest)
}

// usageErr is a flag parse error: the flag package has printed it and the
// usage already, so main prints nothing more.
func usageErr(error) error { return errUsage }

// flags returns a command's flag set, which prints its own usage.
func (x *cli) flags(name, args, help string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(x.stderr)
	fs.Usage = func() {
		fmt.Fprintf(x.stderr, "Usage: ferry %s %s\n\n%s\n", name, args, help)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses a command's flags and checks its argument count.
func parse(fs *flag.FlagSet, args []string, minArgs, maxArgs int) error {
	if err := fs.Parse(args); err != nil {
		return usageErr(err)
	}
	if fs.NArg() < minArgs || fs.NArg() > maxArgs {
		fs.Usage()
		return errUsage
	}
	return nil
}

// bucketKey splits "bucket/key".
func bucketKey(s string) (string, string, error) {
	b, k, ok := strings.Cut(s, "/")
	if !ok || b == "" || k == "" {
		return "", "", fmt.Errorf("%w: %q is not BUCKET/KEY", errUsage, s)
	}
	return b, k, nil
}

func (x *cli) printJSON(v any) error {
	enc := json.NewEncoder(x.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func (x *cli) stat(ctx context.Context, args []string) error {
	fs := x.flags("stat", "BUCKET/KEY", "Prints a file's information as JSON.")
	if err := parse(fs, args, 1, 1); err != nil {
		return err
	}
	b, k, err := bucketKey(fs.Arg(0))
	if err != nil {
		return err
	}
	f, err := x.c.Stat(ctx, b, k)
	if err != nil {
		return err
	}
	return x.printJSON(f)
}

func (x *cli) verify(ctx context.Context, args []string) error {
	fs := x.flags("verify", "BUCKET/KEY [FILE]", "Compares local FILE with the stored file's checksums (CRC32C, and SHA-256 when the\nfile has one), reading FILE but downloading nothing; exits 1 if they differ. A file of a registered\nbucket has no checksums until asked: ferryd then reads it once to compute them (an admin key).\nWithout FILE, prints the stored file's checksums, computing them so if needed.")
	if err := parse(fs, args, 1, 2); err != nil {
		return err
	}
	b, k, err := bucketKey(fs.Arg(0))
	if err != nil {
		return err
	}
	f, err := x.c.Stat(ctx, b, k)
	if err == nil && f.Checksums == nil {
		f, err = x.c.Checksum(ctx, b, k)
	}
	if err != nil {
		return err
	}
	if fs.NArg() == 1 {
		return x.printJSON(f.Checksums)
	}
	local, _, err := openRegular(fs.Arg(1))
	if err != nil {
		return err
	}
	defer local.Close()
	got, err := client.Digest(local, f.Checksums.SHA256 != "")
	if err != nil {
		return err
	}
	if got.CRC32C != f.Checksums.CRC32C || got.SHA256 != f.Checksums.SHA256 {
		return fmt.Errorf("%s differs from %s/%s: crc32c %s here, %s stored; sha256 %q here, %q stored",
			fs.Arg(1), b, k, got.CRC32C, f.Checksums.CRC32C, got.SHA256, f.Checksums.SHA256)
	}
	fmt.Fprintf(x.stdout, "%s matches %s/%s (crc32c %s", fs.Arg(1), b, k, got.CRC32C)
	if got.SHA256 != "" {
		fmt.Fprintf(x.stdout, ", sha256 %s", got.SHA256)
	}
	fmt.Fprintln(x.stdout, ")")
	return nil
}

func (x *cli) rm(ctx context.Context, args []string) error {
	fs := x.flags("rm", "BUCKET/KEY", "Deletes a file.")
	if err := parse(fs, args, 1, 1); err != nil {
		return err
	}
	b, k, err := bucketKey(fs.Arg(0))
	if err != nil {
		return err
	}
	return x.c.Delete(ctx, b, k)
}

func (x *cli) ls(ctx context.Context, args []string) error {
	fs := x.flags("ls", "[BUCKET[/PREFIX]]", "Lists the buckets, or a bucket's files (size, time, key) in key order.")
	limit := fs.Int("limit", 1000, "files asked for per request (1-1000)")
	if err := parse(fs, args, 0, 1); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		for after := ""; ; {
			page, err := x.c.Buckets(ctx, after, 0)
			if err != nil {
				return err
			}
			for _, b := range page.Data {
				fmt.Fprintln(x.stdout, strings.TrimSpace(b.Name+"  "+b.Location))
			}
			if !page.HasMore {
				return nil
			}
			after = page.Next
		}
	}
	bucket, prefix, _ := strings.Cut(fs.Arg(0), "/")
	for after := ""; ; {
		page, err := x.c.List(ctx, bucket, prefix, after, *limit)
		if err != nil {
			return err
		}
		for _, f := range page.Data {
			fmt.Fprintf(x.stdout, "%12d  %s  %s\n", f.Bytes, unixTime(f.CreatedAt), f.Key)
		}
		if !page.HasMore {
			return nil
		}
		after = page.Next
	}
}

func (x *cli) register(ctx context.Context, args []string) error {
	fs := x.flags("register", "BUCKET LOCATION | BUCKET/KEY",
		"Serves existing data (s3://bucket/prefix, or file:///dir under ferryd's allowed roots) as BUCKET,\nor records one existing object of a registered bucket.")
	if err := parse(fs, args, 1, 2); err != nil {
		return err
	}
	if fs.NArg() == 2 {
		r, err := x.c.RegisterBucket(ctx, fs.Arg(0), fs.Arg(1))
		if err != nil {
			return err
		}
		return x.printJSON(r)
	}
	b, k, err := bucketKey(fs.Arg(0))
	if err != nil {
		return err
	}
	f, err := x.c.RegisterFile(ctx, b, k)
	if err != nil {
		return err
	}
	return x.printJSON(f)
}

func (x *cli) unregister(ctx context.Context, args []string) error {
	fs := x.flags("unregister", "BUCKET", "Forgets a registered bucket; its data stays where it is.")
	if err := parse(fs, args, 1, 1); err != nil {
		return err
	}
	return x.c.UnregisterBucket(ctx, fs.Arg(0))
}

func (x *cli) presign(ctx context.Context, args []string) error {
	fs := x.flags("presign", "BUCKET/KEY [--ttl D]", "Prints a URL that downloads the file, as it is now, without an API key until it expires\n"+
		"(curl it, or give it to someone). A file replaced meanwhile is not served under it.")
	ttl := fs.Duration("ttl", time.Hour, "how long the URL works: 90s, 15m, 24h, at most 168h")
	if err := parse(fs, interspersed(args), 1, 1); err != nil {
		return err
	}
	b, k, err := bucketKey(fs.Arg(0))
	if err != nil {
		return err
	}
	if *ttl < time.Second || *ttl > 7*24*time.Hour {
		return fmt.Errorf("%w: --ttl %s: a presigned URL lasts from 1s to 168h", errUsage, *ttl)
	}
	p, err := x.c.Presign(ctx, b, k, *ttl)
	if err != nil {
		return err
	}
	fmt.Fprintln(x.stdout, p.URL)
	fmt.Fprintf(x.stderr, "expires %s\n", unixTime(p.ExpiresAt))
	return nil
}

// interspersed moves flags after the arguments to the front, so
// "presign BUCKET/KEY --ttl 1h" parses as the usage shows it.
func interspersed(args []string) []string {
	var flags, rest []string
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case a == "--":
			return append(append(flags, args[i:]...), rest...)
		case strings.HasPrefix(a, "-") && len(a) > 1:
			flags = append(flags, a)
			if !strings.Contains(a, "=") && i+1 < len(args) {
				flags = append(flags, args[i+1])
				i++
			}
		default:
			rest = append(rest, a)
		}
	}
	return append(flags, rest...)
}
