package thresholds

import (
	"context"
	"strings"
	"testing"
)

// TestDeferredIndexesMatchSchema: each index Build creates after a bulk
// build is the one the migration creates.
func TestDeferredIndexesMatchSchema(t *testing.T) {
	ctx := context.Background()
	p := newProjector(t, Options{})
	db := openDB(t, p)
	indexSQL := func(name string) string {
		var s string
		if err := db.Writer.QueryRowContext(ctx, `SELECT sql FROM sqlite_master WHERE type = 'index' AND name = ?`, name).Scan(&s); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return strings.Join(strings.Fields(strings.Replace(s, "IF NOT EXISTS ", "", 1)), " ")
	}
	for _, ix := range p.DeferredIndexes() {
		want := indexSQL(ix.Name)
		if _, err := db.Writer.ExecContext(ctx, `DROP INDEX `+ix.Name+`; `+ix.Create); err != nil {
			t.Fatal(err)
		}
		if got := indexSQL(ix.Name); got != want {
			t.Errorf("%s: deferred index creates %q, the migration %q", ix.Name, got, want)
		}
	}
}
