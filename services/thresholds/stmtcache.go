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
	mu    sync.Mutex
	order []*sql.Tx
	byTx  map[*sql.Tx]map[string]*sql.Stmt
}

const stmtCacheTxs = 4

func (c *stmtCache) get(ctx context.Context, tx *sql.Tx, query string) (*sql.Stmt, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.byTx == nil {
		c.byTx = map[*sql.Tx]map[string]*sql.Stmt{}
	}
	m, ok := c.byTx[tx]
	if !ok {
		if len(c.order) == stmtCacheTxs {
			delete(c.byTx, c.order[0])
			c.order = c.order[1:]
		}
		m = map[string]*sql.Stmt{}
		c.byTx[tx] = m
		c.order = append(c.order, tx)
	}
	if st, ok := m[query]; ok {
		return st, nil
	}
	st, err := tx.PrepareContext(ctx, query)
	if err != nil {
		return nil, fmt.Errorf("prepare: %w", err)
	}
	m[query] = st
	return st, nil
}

func (s store) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	st, err := s.c.get(ctx, s.tx, query)
	if err != nil {
		return nil, err
	}
	return st.ExecContext(ctx, args...)
}

func (s store) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	st, err := s.c.get(ctx, s.tx, query)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

func (s store) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	st, err := s.c.get(ctx, s.tx, query)
	if err != nil {
		// Let Scan report it: QueryRowContext on a fresh (unprepared) path.
		return s.tx.QueryRowContext(ctx, query, args...)
	}
	return st.QueryRowContext(ctx, args...)
}
