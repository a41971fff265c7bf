package projection

import (
	"context"
	"database/sql"
	"fmt"
)

// TxHooks is implemented, optionally, by a Projector that remembers
// read-model rows across transactions (a cache in front of SQLite). Such a
// cache may only hold what the committed database holds, so it must learn
// where each transaction starts and how it ends. ApplyBatch (and so the
// runner and Build) calls TxBegun after beginning a transaction on w,
// before the first Apply in it, and TxEnded once the transaction is over:
// committed is true only when COMMIT succeeded; otherwise the transaction
// was rolled back (or its outcome is unknown) and whatever the projector
// remembered of it is void.
type TxHooks interface {
	TxBegun(ctx context.Context, tx *sql.Tx, w *sql.DB)
	TxEnded(tx *sql.Tx, committed bool)
}

// txBegun runs p's TxBegun hook, if p has one.
func txBegun(ctx context.Context, p Projector, tx *sql.Tx, w *sql.DB) {
	if h, ok := p.(TxHooks); ok {
		h.TxBegun(ctx, tx, w)
	}
}

// txEnded runs p's TxEnded hook, if p has one; *committed says how tx ended.
func txEnded(p Projector, tx *sql.Tx, committed *bool) {
	if h, ok := p.(TxHooks); ok {
		h.TxEnded(tx, *committed)
	}
}

// TxFlusher is implemented, optionally, by a Projector that holds some of
// an event's writes back to issue them together (sorted, several rows per
// statement) instead of one statement per event. ApplyBatch calls FlushTx
// on every transaction it announced through TxBegun: once before the
// checkpoint is written and the transaction committed, and, when it applies
// event by event under savepoints (after an Apply failed), after each
// successful Apply, inside that event's savepoint. So nothing held back
// is ever committed unwritten, and a failed event leaves nothing of its own
// behind: Apply (or FlushTx) that fails must drop what it held back.
// Writes held back must not be read back by a later Apply before FlushTx.
type TxFlusher interface {
	FlushTx(ctx context.Context, tx *sql.Tx) error
}

// flushTx runs p's FlushTx, if p has one.
func flushTx(ctx context.Context, p Projector, tx *sql.Tx) error {
	if f, ok := p.(TxFlusher); ok {
		if err := f.FlushTx(ctx, tx); err != nil {
			return fmt.Errorf("flush: %w", err)
		}
	}
	return nil
}
