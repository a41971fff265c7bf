package projtest

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/simtrail/simtrail/pkg/projection"
)

// DeferredIndexesMatchSchema fails t unless every index p defers during
// builds (projection.IndexDeferrer) is created by its Create statement
// exactly as p's migrations create it: a build must end with the schema a
// migrated file has.
func DeferredIndexesMatchSchema(t testing.TB, p projection.Projector) {
	t.Helper()
	d, ok := p.(projection.IndexDeferrer)
	if !ok {
		t.Fatalf("%s defers no indexes", p.Name())
	}
	ctx := context.Background()
	db, err := projection.Open(ctx, filepath.Join(t.TempDir(), "schema.db"), p.Migrations())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	indexSQL := func(name string) string {
		var s string
		if err := db.Writer.QueryRowContext(ctx, `SELECT sql FROM sqlite_master WHERE type = 'index' AND name = ?`, name).Scan(&s); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return strings.Join(strings.Fields(strings.Replace(s, "IF NOT EXISTS ", "", 1)), " ")
	}
	for _, ix := range d.DeferredIndexes() {
		want := indexSQL(ix.Name)
		if _, err := db.Writer.ExecContext(ctx, `DROP INDEX "`+ix.Name+`"`); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Writer.ExecContext(ctx, ix.Create); err != nil {
			t.Fatalf("%s: %v", ix.Name, err)
		}
		if got := indexSQL(ix.Name); got != want {
			t.Errorf("%s: deferred index creates %q, the migrations %q", ix.Name, got, want)
		}
	}
}
