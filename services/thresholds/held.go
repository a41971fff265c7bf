package thresholds

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"slices"

	"github.com/simtrail/simtrail/pkg/projection"
)

// heldWrites are the writes Apply holds back until FlushTx, which writes
// them before the transaction commits: the period rows and level rows an
// event changed (once each per transaction, with their final value from
// the row cache), new outbox rows (in the order seen), forecast points and
// droam rule alerts. All but the outbox are keyed by subject first, and
// events arrive interleaved across the fleet, so one statement per event
// landed on a random page of a large B-tree, and a SIM touched twice in a
// batch had its period rewritten twice; sorted by key and written several
// rows per statement, a batch fills neighbouring pages in one pass (see
// docs/performance.md for what it bought). Apply reads
// period and level rows through the row cache, which holds what is held,
// and never reads the other tables, so holding writes back changes no
// result (projection.TxFlusher).
//
// The runner calls FlushTx for the transactions it announced (TxBegun); in
// any other transaction Apply flushes its own writes before it returns.
type heldWrites struct {
	snapshots []snapshotRow
	alerts    []alertRow
	// periods and levels changed in this transaction: written once each,
	// with the value the row cache holds at FlushTx.
	periods []heldPeriod
	levels  []heldLevel
	// sims: the SIMs whose state row changed in this transaction.
	sims []heldSIM
	// outbox rows in the order their crossings were seen.
	outbox [][]any
	// pinned are the subjects whose rows are held: the row cache must
	// not forget them before FlushTx (a re-read would miss held rows).
	pinned []*subjectRows
}

// heldPeriod and heldLevel are rows to write. isNew: the row did not exist
// before this transaction, so it is written with a plain INSERT, and a row
// SQLite does hold (the cache was wrong) fails the batch, which is then
// applied event by event from fresh reads, instead of being overwritten.
type heldPeriod struct {
	st, key, provider string
	pr                *periodRows
	isNew             bool
}

type heldSIM struct {
	iccid string
	sub   *subjectRows
}

type heldLevel struct {
	st, key string
	pr      *periodRows
	level   int
	isNew   bool
}

func (h *heldWrites) pin(sub *subjectRows) {
	if !sub.pinned {
		sub.pinned = true
		h.pinned = append(h.pinned, sub)
	}
}

// holdPeriod marks pr (of o's subject) to be written at FlushTx; isNew
// when it is not stored yet (a later change in this transaction keeps it
// new).
func (h *heldWrites) holdPeriod(o *observation, sub *subjectRows, pr *periodRows, isNew bool) {
	if !pr.held {
		pr.held = true
		h.periods = append(h.periods, heldPeriod{st: o.subjectType, key: o.key, provider: o.provider, pr: pr, isNew: isNew})
		h.pin(sub)
	}
}

// holdSIM marks the state row of sub (SIM iccid) to be written at FlushTx.
func (h *heldWrites) holdSIM(iccid string, sub *subjectRows) {
	if !sub.stateHeld {
		sub.stateHeld = true
		h.sims = append(h.sims, heldSIM{iccid: iccid, sub: sub})
		h.pin(sub)
	}
}

// holdLevel marks level of pr to be written at FlushTx, as holdPeriod.
func (h *heldWrites) holdLevel(o *observation, sub *subjectRows, pr *periodRows, level int, isNew bool) {
	if pr.heldLevels == nil {
		pr.heldLevels = map[int]bool{}
	}
	if !pr.heldLevels[level] {
		pr.heldLevels[level] = true
		h.levels = append(h.levels, heldLevel{st: o.subjectType, key: o.key, pr: pr, level: level, isNew: isNew})
		h.pin(sub)
	}
}

type snapshotRow struct {
	st, key, period string
	at              int64
	event           string
	used            int64
}

type alertRow struct {
	st, key, event string
	at             int64
	alert          ruleAlert
}

func (h *heldWrites) reset() {
	for _, p := range h.periods {
		p.pr.held = false
	}
	for _, l := range h.levels {
		clear(l.pr.heldLevels)
	}
	for _, s := range h.sims {
		s.sub.stateHeld = false
	}
	for _, sub := range h.pinned {
		sub.pinned = false
	}
	h.snapshots = reuse(h.snapshots)
	h.alerts = reuse(h.alerts)
	h.periods = reuse(h.periods)
	h.levels = reuse(h.levels)
	h.sims = reuse(h.sims)
	h.outbox = reuse(h.outbox)
	h.pinned = reuse(h.pinned)
}

// reuse empties s for reuse, dropping the references it held.
func reuse[T any](s []T) []T {
	clear(s)
	return s[:0]
}

var _ projection.TxFlusher = (*Projector)(nil)

// FlushTx implements projection.TxFlusher: it writes the rows Apply held
// back in tx. If a write fails, the rest is dropped with it (the runner
// rolls back what this transaction or event wrote).
func (p *Projector) FlushTx(ctx context.Context, tx *sql.Tx) error {
	return p.flush(ctx, tx, p.stmts.entry(tx))
}

// flush writes what e holds, in tx.
func (p *Projector) flush(ctx context.Context, tx *sql.Tx, e *txEntry) (err error) {
	h := e.held
	defer func() {
		h.reset()
		if err != nil {
			e.rows.reset()
		}
	}()
	s := store{tx: tx, e: e}
	if err := writeSIMs(ctx, s, h.sims, p.levels); err != nil {
		return fmt.Errorf("write sim state: %w", err)
	}
	if err := writeNewThenChanged(ctx, s, h.periods, func(p heldPeriod) bool { return p.isNew },
		func(a, b heldPeriod) int {
			return cmp.Or(cmp.Compare(a.st, b.st), cmp.Compare(a.key, b.key), cmp.Compare(a.pr.row.key, b.pr.row.key))
		},
		periodInsert, periodUpsert, func(args []any, p *heldPeriod) []any {
			return periodArgs(args, p.st, p.key, p.provider, &p.pr.row)
		}); err != nil {
		return fmt.Errorf("write period: %w", err)
	}
	if err := writeNewThenChanged(ctx, s, h.levels, func(l heldLevel) bool { return l.isNew },
		func(a, b heldLevel) int {
			return cmp.Or(cmp.Compare(a.st, b.st), cmp.Compare(a.key, b.key), cmp.Compare(a.pr.row.key, b.pr.row.key),
				cmp.Compare(a.level, b.level))
		},
		levelInsert, levelUpsert, func(args []any, l *heldLevel) []any {
			m := l.pr.levels[l.level]
			return append(args, l.st, l.key, l.pr.row.key, l.level, m.at, m.rank, m.event)
		}); err != nil {
		return fmt.Errorf("write level: %w", err)
	}
	if err := writeRows(ctx, s, outboxInsert, h.outbox, func(args []any, r *[]any) []any {
		return append(args, (*r)...)
	}); err != nil {
		return fmt.Errorf("insert outbox: %w", err)
	}
	slices.SortFunc(h.snapshots, func(a, b snapshotRow) int {
		return cmp.Or(cmp.Compare(a.st, b.st), cmp.Compare(a.key, b.key), cmp.Compare(a.period, b.period),
			cmp.Compare(a.at, b.at), cmp.Compare(a.event, b.event))
	})
	if err := writeRows(ctx, s, snapshotInsert, h.snapshots, func(args []any, r *snapshotRow) []any {
		return append(args, r.st, r.key, r.period, r.at, r.event, r.used)
	}); err != nil {
		return fmt.Errorf("insert snapshot: %w", err)
	}
	slices.SortFunc(h.alerts, func(a, b alertRow) int {
		return cmp.Or(cmp.Compare(a.st, b.st), cmp.Compare(a.key, b.key), cmp.Compare(a.at, b.at), cmp.Compare(a.event, b.event))
	})
	if err := writeRows(ctx, s, alertInsert, h.alerts, func(args []any, r *alertRow) []any {
		return append(args, r.st, r.key, r.event, r.at, r.alert.ruleID, r.alert.name, r.alert.description, r.alert.direction)
	}); err != nil {
		return fmt.Errorf("insert alert: %w", err)
	}
	return nil
}

// simUpdateRest sets every sim_state column but the key, the provider and
// the indexed status and sort_pct.
const simUpdateRest = `status_at = excluded.status_at, status_event = excluded.status_event,
	imei = excluded.imei, imei_at = excluded.imei_at, imei_event = excluded.imei_event,
	period_key = excluded.period_key, period_start = excluded.period_start, period_end = excluded.period_end,
	as_of = excluded.as_of, as_of_event = excluded.as_of_event, used = excluded.used, allowed = excluded.allowed,
	remaining = excluded.remaining, unlimited = excluded.unlimited, percent = excluded.percent,
	ended = excluded.ended, last_level = excluded.last_level, levels_json = excluded.levels_json`

const (
	periodCols = `INSERT INTO period(subject_type, subject_key, period_key, provider, start_at, end_at,
			as_of, as_of_event, snap_at, snap_event, used, allowed, remaining, unlimited, percent, max_reported, ended)`
	levelCols = `INSERT INTO level(subject_type, subject_key, period_key, level, crossed_at, source_rank, event_id)`
)

var (
	// periodInsert writes a new period row; periodUpsert a changed one
	// (whole: the cache holds all of it).
	periodInsert = projection.NewMultiRow(periodCols, 17, ``)
	periodUpsert = projection.NewMultiRow(periodCols, 17,
		`ON CONFLICT(subject_type, subject_key, period_key) DO UPDATE SET start_at = excluded.start_at, end_at = excluded.end_at,
			as_of = excluded.as_of, as_of_event = excluded.as_of_event, snap_at = excluded.snap_at, snap_event = excluded.snap_event,
			used = excluded.used, allowed = excluded.allowed, remaining = excluded.remaining, unlimited = excluded.unlimited,
			percent = excluded.percent, max_reported = excluded.max_reported, ended = excluded.ended`)
	// levelInsert writes a new level row, levelUpsert a lowered mark.
	levelInsert = projection.NewMultiRow(levelCols, 7, ``)
	levelUpsert = projection.NewMultiRow(levelCols, 7,
		`ON CONFLICT(subject_type, subject_key, period_key, level) DO UPDATE SET crossed_at = excluded.crossed_at,
			source_rank = excluded.source_rank, event_id = excluded.event_id`)
	// simInsert writes a new state row; simUpsertIndexed a changed one
	// (whole: the cache holds all of it), simUpsertRest one whose indexed
	// columns did not change. The provider of a SIM never changes.
	simInsert        = projection.NewMultiRow(`INSERT INTO sim_state(`+simColumns+`)`, 22, ``)
	simUpsertIndexed = projection.NewMultiRow(`INSERT INTO sim_state(`+simColumns+`)`, 22,
		`ON CONFLICT(iccid) DO UPDATE SET status = excluded.status, sort_pct = excluded.sort_pct, `+simUpdateRest)
	simUpsertRest = projection.NewMultiRow(`INSERT INTO sim_state(`+simColumns+`)`, 22, `ON CONFLICT(iccid) DO UPDATE SET `+simUpdateRest)
	outboxInsert  = projection.NewMultiRow(`INSERT INTO outbox(alert_id, subject_type, subject_key, provider, period_key, level,
			source, crossed_at, used, allowed, cause_seq, cause_event_id)`, 12, ``)
	snapshotInsert = projection.NewMultiRow(`INSERT INTO snapshot(subject_type, subject_key, period_key, at, event_id, used)`, 6,
		`ON CONFLICT DO NOTHING`)
	alertInsert = projection.NewMultiRow(`INSERT INTO alert(subject_type, subject_key, event_id, at, rule_id, rule_name, description, direction)`, 8,
		`ON CONFLICT DO NOTHING`)
)

// writeSIMs writes the held state rows sorted by ICCID: new ones with a
// plain INSERT (a row SQLite does hold fails the batch, as for periods),
// changed ones whose fleet-indexed columns (status, sort_pct) moved with
// an upsert that sets every column, and the others, most of them, with
// one that leaves those two alone, so that SQLite does not touch the
// three fleet indexes for them.
func writeSIMs(ctx context.Context, s store, sims []heldSIM, levels []int) error {
	// A copy, not sims filtered in place: heldWrites.reset walks all of
	// them. Rows that came back to what SQLite holds need no write.
	changed := make([]heldSIM, 0, len(sims))
	for _, r := range sims {
		if r.sub.stateStale {
			if err := deriveSIM(r.sub, levels); err != nil {
				return err
			}
		}
		if r.sub.stateNew || r.sub.state != r.sub.stored {
			changed = append(changed, r)
		}
	}
	sims = changed
	slices.SortFunc(sims, func(a, b heldSIM) int {
		ka, kb := simWriteKind(a.sub), simWriteKind(b.sub)
		return cmp.Or(cmp.Compare(ka, kb), cmp.Compare(a.iccid, b.iccid))
	})
	bind := func(args []any, r *heldSIM) []any { return r.sub.state.args(args, r.iccid) }
	for kind, q := range []projection.MultiRow{simInsert, simUpsertIndexed, simUpsertRest} {
		lo, _ := slices.BinarySearchFunc(sims, kind, func(r heldSIM, k int) int { return cmp.Compare(simWriteKind(r.sub), k) })
		hi, _ := slices.BinarySearchFunc(sims, kind+1, func(r heldSIM, k int) int { return cmp.Compare(simWriteKind(r.sub), k) })
		if err := writeRows(ctx, s, q, sims[lo:hi], bind); err != nil {
			return err
		}
	}
	for _, r := range sims {
		r.sub.stored, r.sub.stateNew = r.sub.state, false
	}
	return nil
}

// simWriteKind is which statement writes a held state row: 0 new, 1 with
// its indexed columns changed, 2 the rest.
func simWriteKind(sub *subjectRows) int {
	switch {
	case sub.stateNew:
		return 0
	case sub.state.status != sub.stored.status || sub.state.sortPct != sub.stored.sortPct:
		return 1
	}
	return 2
}

// writeRows inserts rows in order, projection.RowsPerStatement per
// statement and the remainder one by one, with bind appending a row's
// values.
func writeRows[R any](ctx context.Context, s store, q projection.MultiRow, rows []R, bind func([]any, *R) []any) error {
	var args []any
	return q.Chunks(len(rows), func(query string, first, count int) error {
		args = args[:0]
		for i := first; i < first+count; i++ {
			args = bind(args, &rows[i])
		}
		_, err := s.exec(ctx, query, args...)
		return err
	})
}

// periodArgs appends the values of periodUpsert for one row.
func periodArgs(args []any, st, key, provider string, r *periodRow) []any {
	return append(args, st, key, r.key, provider, r.start, r.end, r.asOf, r.asOfEvent, r.snapAt, r.snapEvent,
		r.used, r.allowed, r.remaining, r.unlimited, r.percent, r.maxReported, r.ended)
}

// outboxInsertRow is the outboxInsert values announcing crossing c of o,
// the event at stream sequence seq.
func outboxInsertRow(o *observation, c crossing, seq uint64) []any {
	return []any{AlertID(o.provider, alertSubjectKey(o.subjectType, o.key), o.periodKey, c.level), o.subjectType, o.key,
		o.provider, o.periodKey, c.level, c.source, o.at, nullInt(o.used), nullInt(o.allowed), seq, o.eventID}
}

// writeNewThenChanged writes rows in key order, the new ones with ins
// (plain INSERTs) first, then the changed ones with ups. isNew and byKey
// take rows by value: a pointer to the comparison's arguments made both
// escape, two allocations per comparison (a tenth of a rebuild's garbage).
func writeNewThenChanged[R any](ctx context.Context, s store, rows []R, isNew func(R) bool, byKey func(a, b R) int,
	ins, ups projection.MultiRow, bind func([]any, *R) []any) error {
	slices.SortFunc(rows, func(a, b R) int {
		if na, nb := isNew(a), isNew(b); na != nb {
			if na {
				return -1
			}
			return 1
		}
		return byKey(a, b)
	})
	n := 0
	for n < len(rows) && isNew(rows[n]) {
		n++
	}
	if err := writeRows(ctx, s, ins, rows[:n], bind); err != nil {
		return err
	}
	return writeRows(ctx, s, ups, rows[n:], bind)
}
