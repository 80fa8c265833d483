package main

import (
	"fmt"
	"io"
	"log/slog"
	"text/tabwriter"
)

// showConfig is ferryd config: it prints every setting, its value and
// where it came from, and refuses (with ferryd's own messages) whatever
// would keep ferryd from starting before it connects to its stores.
func showConfig(args []string, lookup func(string) (string, bool), stdout, stderr io.Writer) error {
	cfg, src, err := loadConfig(args, lookup, stderr)
	if err != nil {
		return err
	}
	if _, err := readKeys(cfg.Auth.KeysFile, slog.New(slog.DiscardHandler)); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SETTING\tVALUE\tSOURCE")
	for _, s := range cfg.Settings(src) {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", s.Key, s.Value, s.Source)
	}
	return tw.Flush()
}
