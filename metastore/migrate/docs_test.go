package migrate_test

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/ferryhq/ferry/metastore/migrate"
)

// The documents name the layout this code writes.
func TestDocumentsNameTheLayout(t *testing.T) {
	for file, says := range map[string]string{
		"../../docs/storage-layout.md": fmt.Sprintf("the layout the data is in (now %d)", migrate.Version),
		"../../README.md":              fmt.Sprintf("(now layout %d:", migrate.Version),
	} {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(data), says) {
			t.Errorf("%s does not say %q", file, says)
		}
	}
}
