// Package thresholds is the threshold-state projector: a durable consumer of
// simtrail.events.> folded into a SQLite read model that knows, for every
// SIM and pool, how much of its allowance is used, which levels it crossed
// and when, and when it will run out. Every level crossing is also written
// to a transactional outbox and published as a ThresholdCrossed event on
// simtrail.alerts.threshold.<provider>.<key> (see Publisher).
//
// The fold is order-independent: every fact is derived from one event
// alone and merged with commutative rules (newest provider time wins for
// state, earliest provider time wins for crossed_at), and every event id is
// applied once. See README.md for the rules.
package thresholds

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"

	"github.com/simtrail/simtrail/pkg/projection"
)

// Name is the projection's name (URLs, metrics, checkpoint, durable).
const Name = "thresholds"

// DefaultLevels are the threshold levels in percent when Options.Levels is nil.
var DefaultLevels = []int{25, 50, 75, 80, 90, 100}

// Options configure the projector. Changing them changes what Apply
// derives, so the read model must be rebuilt afterwards.
type Options struct {
	// Levels in percent; nil means DefaultLevels. Each must be 1..100, and
	// the list sorted ascending without duplicates.
	Levels []int
	// PoolAllowances maps a pool id to its allowed bytes, for providers
	// that never state a pool's allowance (droam).
	PoolAllowances map[string]int64
}

// ErrBadOptions is returned by NewProjector for invalid Options.
var ErrBadOptions = errors.New("invalid thresholds options")

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Projector implements projection.Projector for the thresholds read model.
type Projector struct {
	levels     []int
	pools      map[string]int64
	migrations fs.FS
	stmts      stmtCache
}

var (
	_ projection.Projector     = (*Projector)(nil)
	_ projection.SwapPreparer  = (*Projector)(nil)
	_ projection.IndexDeferrer = (*Projector)(nil)
)

// NewProjector validates opts and returns the projector.
func NewProjector(opts Options) (*Projector, error) {
	levels := opts.Levels
	if levels == nil {
		levels = DefaultLevels
	}
	if len(levels) == 0 {
		return nil, fmt.Errorf("%w: at least one level is needed", ErrBadOptions)
	}
	for i, l := range levels {
		if l < 1 || l > 100 {
			return nil, fmt.Errorf("%w: level %d outside 1..100", ErrBadOptions, l)
		}
		if i > 0 && l <= levels[i-1] {
			return nil, fmt.Errorf("%w: levels must be sorted ascending and unique (%v)", ErrBadOptions, levels)
		}
	}
	pools := make(map[string]int64, len(opts.PoolAllowances))
	for id, a := range opts.PoolAllowances {
		if a <= 0 {
			return nil, fmt.Errorf("%w: pool %q allowance must be positive", ErrBadOptions, id)
		}
		pools[id] = a
	}
	sub, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		return nil, fmt.Errorf("load migrations: %w", err)
	}
	return &Projector{levels: slices.Clone(levels), pools: pools, migrations: sub}, nil
}

// Name implements projection.Projector.
func (p *Projector) Name() string { return Name }

// Levels returns the configured levels.
func (p *Projector) Levels() []int { return slices.Clone(p.levels) }

// Migrations implements projection.Projector: numbered goose SQL files.
func (p *Projector) Migrations() fs.FS { return p.migrations }

// BuildBatchSize implements projection.BuildBatcher. This model rewrites
// the same per-SIM rows (state, period, levels) on every event, so a
// build's commits write mostly the same pages again and again: at 40000
// events per transaction instead of 20000, building 1M events over 10k
// SIMs cost 14–23 % less CPU and its commits 26–36 % less, in alternating
// runs, for 0.43–0.66 GiB more peak memory (docs/performance.md). The
// timeline gained nothing from the larger size, so it keeps the default.
func (p *Projector) BuildBatchSize() int { return BuildBatchSize }

var _ projection.BuildBatcher = (*Projector)(nil)

// BuildBatchSize is the thresholds model's build transaction size.
const BuildBatchSize = 40000

// Apply implements projection.Projector: it folds one event into the read
// model inside tx. A second copy of an event is a no-op.
func (p *Projector) Apply(ctx context.Context, tx *sql.Tx, m projection.Message) (err error) {
	o, ok := derive(m.Event, p.pools)
	if !ok {
		return nil
	}
	// No "seen event ids" table is needed: every merge below is idempotent
	// (newest-wins and earliest-wins keyed by (time, event id), min/max,
	// insert-or-ignore keyed by event id), so a second copy of an event
	// changes nothing.
	e := p.stmts.entry(tx)
	defer func() {
		if err != nil {
			// The runner undoes this event's writes (ROLLBACK TO its
			// savepoint, or the whole transaction): forget the rows
			// remembered, they may no longer match SQLite.
			e.rows.reset()
			e.held.reset()
		}
	}()
	s := store{tx: tx, e: e}
	var sub *subjectRows
	var cur current // the subject's current period position
	if o.subjectType == subjectSIM {
		if sub, err = s.readSIM(ctx, &o); sub != nil {
			cur = sub.state.cur
		}
	} else {
		cur, err = s.touchPool(ctx, &o)
		sub = e.rows.subject(o.subjectType, o.key)
	}
	if err != nil {
		return err
	}
	var pr *periodRows
	var period *periodRow
	var have map[int]levelMark
	if o.periodKey != "" {
		if pr, err = s.upsertPeriod(ctx, &o, sub); err != nil {
			return err
		}
		period = &pr.row
		cs := o.crossings(p.levels)
		// The stored levels are needed to merge crossings, and to rewrite
		// the state row when this period is (now) the current one;
		// otherwise nothing reads them.
		if len(cs) > 0 || period.isCurrent(cur) {
			if have, err = s.levels(ctx, &o, pr); err != nil {
				return err
			}
		}
		s.cross(&o, cs, m.Seq, sub, pr)
	}
	if o.alert != nil {
		s.addAlert(&o)
	}
	if o.subjectType == subjectSIM {
		s.writeSIM(&o, sub, pr)
	} else if period != nil {
		err = s.refreshPool(ctx, o.key, period, cur, have, p.levels)
	}
	if err == nil && !e.announced {
		// Nobody else will flush a transaction the runner did not announce.
		err = p.flush(ctx, tx, e)
	}
	return err
}

// DeferredIndexes implements projection.IndexDeferrer: the fleet indexes
// of sim_state serve only the fleet query (Apply finds the row by ICCID),
// and every event that changes a SIM's percentage moves its entry in all
// three, so a build from an empty model creates them once at the end.
func (p *Projector) DeferredIndexes() []projection.DeferredIndex {
	return []projection.DeferredIndex{
		{Name: "sim_state_fleet", Create: `CREATE INDEX IF NOT EXISTS sim_state_fleet ON sim_state(sort_pct DESC, iccid)`},
		{Name: "sim_state_provider", Create: `CREATE INDEX IF NOT EXISTS sim_state_provider ON sim_state(provider, sort_pct DESC, iccid)`},
		{Name: "sim_state_status", Create: `CREATE INDEX IF NOT EXISTS sim_state_status ON sim_state(status, sort_pct DESC, iccid) WHERE status IS NOT NULL`},
	}
}

// PrepareSwap implements projection.SwapPreparer: before a rebuilt model
// replaces the live one, its outbox rows for events up to the live
// position are marked published (they were announced by the live model),
// except those the live model itself has not published yet, which stay
// pending so the rebuilt model's publisher sends them.
func (p *Projector) PrepareSwap(ctx context.Context, fresh, old *sql.DB, upTo uint64) error {
	if err := MarkOutboxPublished(ctx, fresh, upTo); err != nil {
		return err
	}
	if old == nil {
		// An offline build (simtrail rebuild --into): nothing is live.
		return nil
	}
	// Matched by what the alert announces, not by alert_id: ids written by
	// an older version (pool ids were hashed without their "pool:" prefix)
	// would not match the rebuilt model's.
	rows, err := old.QueryContext(ctx, `SELECT subject_type, subject_key, period_key, level FROM outbox WHERE published = 0`)
	if err != nil {
		return fmt.Errorf("read live outbox: %w", err)
	}
	var keys []any
	for rows.Next() {
		var st, key, period string
		var level int
		if err := rows.Scan(&st, &key, &period, &level); err != nil {
			rows.Close()
			return fmt.Errorf("scan live outbox: %w", err)
		}
		keys = append(keys, st, key, period, level)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read live outbox: %w", err)
	}
	// The outbox has no index on these columns (it is append-only): one
	// statement per chunk of alerts reads the table once.
	const perChunk = 200
	for chunk := range slices.Chunk(keys, 4*perChunk) {
		q := `UPDATE outbox SET published = 0 WHERE published = 1 AND (subject_type, subject_key, period_key, level) IN (VALUES (?, ?, ?, ?)` +
			strings.Repeat(", (?, ?, ?, ?)", len(chunk)/4-1) + `)`
		if _, err := fresh.ExecContext(ctx, q, chunk...); err != nil {
			return fmt.Errorf("keep alert pending: %w", err)
		}
	}
	return nil
}
