package projection

import (
	"context"
	"database/sql"
	"fmt"
)

// DeferredIndex is a secondary index of a read model: its name and the
// statement that creates it (CREATE INDEX IF NOT EXISTS ...).
type DeferredIndex struct {
	Name   string
	Create string
}

// IndexDeferrer is implemented by a projector with secondary indexes that
// only the query side reads, never Apply. Build drops them while it fills
// an empty read model and creates them once at the end: SQLite then sorts
// the finished table once instead of inserting every event into a B-tree
// keyed at random (a SIM), which at a million events is most of the pages a
// build rewrites (docs/performance.md).
type IndexDeferrer interface {
	DeferredIndexes() []DeferredIndex
}

// deferIndexes drops p's deferred indexes from db when p has any and
// returns the function that creates them again. It must run on an empty
// read model only, so that the indexes are created over the whole result.
func deferIndexes(ctx context.Context, w *sql.DB, p Projector) (create func(context.Context) error, err error) {
	d, ok := p.(IndexDeferrer)
	if !ok {
		return func(context.Context) error { return nil }, nil
	}
	idx := d.DeferredIndexes()
	for _, ix := range idx {
		if _, err := w.ExecContext(ctx, `DROP INDEX IF EXISTS "`+ix.Name+`"`); err != nil {
			return nil, fmt.Errorf("defer index %s: %w", ix.Name, err)
		}
	}
	return func(ctx context.Context) error {
		for _, ix := range idx {
			if _, err := w.ExecContext(ctx, ix.Create); err != nil {
				return fmt.Errorf("create index %s: %w", ix.Name, err)
			}
		}
		return nil
	}, nil
}
