package projection

import (
	"context"
	"database/sql"
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
