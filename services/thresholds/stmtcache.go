package thresholds

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
)

// stmtCache keeps the statements Apply uses prepared for the life of one
// transaction. database/sql re-prepares every tx.ExecContext, and
// preparing is most of the cost of a small SQLite statement; a batch of
// 1000 events runs in one transaction, so preparing once per batch turns
// ~10 prepares per event into ~10 per batch.
//
// Statements belong to their transaction (database/sql closes them when it
// ends). A rebuild may apply through the same Projector concurrently with
// the live loop, so a few transactions are remembered; the oldest is
// forgotten first.
type stmtCache struct {
	mu     sync.Mutex
	order  []*sql.Tx
	byTx   map[*sql.Tx]*txEntry
	models models
}

// txEntry is what is remembered of one transaction: its prepared
// statements, the row cache Apply reads and updates in it (the
// writer's cache kept across transactions when the runner announced tx
// through TxBegun, otherwise one for tx alone; see rowCache) and the
// writes it holds back.
type txEntry struct {
	stmts map[string]*sql.Stmt
	rows  *rowCache
	// held collects the writes FlushTx makes (see heldWrites).
	held *heldWrites
	// announced: the runner announced tx (TxBegun) and so calls FlushTx
	// before it commits; otherwise Apply flushes its own writes.
	announced bool
}

const stmtCacheTxs = 4

// entry returns tx's entry, creating it (and forgetting the oldest
// transaction) on first use. The entry is used only by the goroutine
// applying in tx: a transaction is never used concurrently.
func (c *stmtCache) entry(tx *sql.Tx) *txEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.entryLocked(tx)
}

func (c *stmtCache) entryLocked(tx *sql.Tx) *txEntry {
	if c.byTx == nil {
		c.byTx = map[*sql.Tx]*txEntry{}
	}
	e, ok := c.byTx[tx]
	if !ok {
		if len(c.order) >= stmtCacheTxs {
			// Forget the oldest transaction the runner did not announce
			// (those it did are forgotten at TxEnded, and may hold writes
			// back). If that transaction is still applying, it goes on
			// with a cache of its own, so its writer's cache must not
			// outlive it either.
			for i, old := range c.order {
				if oe := c.byTx[old]; !oe.announced {
					oe.rows.reset()
					delete(c.byTx, old)
					c.order = append(c.order[:i], c.order[i+1:]...)
					break
				}
			}
		}
		e = &txEntry{stmts: map[string]*sql.Stmt{}, rows: newRowCache(), held: &heldWrites{}}
		c.byTx[tx] = e
		c.order = append(c.order, tx)
	}
	return e
}

func (e *txEntry) get(ctx context.Context, tx *sql.Tx, query string) (*sql.Stmt, error) {
	if st, ok := e.stmts[query]; ok {
		return st, nil
	}
	st, err := tx.PrepareContext(ctx, query)
	if err != nil {
		return nil, fmt.Errorf("prepare: %w", err)
	}
	e.stmts[query] = st
	return st, nil
}

func (s store) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	st, err := s.e.get(ctx, s.tx, query)
	if err != nil {
		return nil, err
	}
	return st.ExecContext(ctx, args...)
}

func (s store) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	st, err := s.e.get(ctx, s.tx, query)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

func (s store) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	st, err := s.e.get(ctx, s.tx, query)
	if err != nil {
		// Let Scan report it: QueryRowContext on a fresh (unprepared) path.
		return s.tx.QueryRowContext(ctx, query, args...)
	}
	return st.QueryRowContext(ctx, args...)
}
