// Package projection runs a read model: it feeds canonical events from a
// durable JetStream consumer into a Projector's pure Apply function, in
// batches, inside SQLite transactions that also record the last applied
// stream sequence. Because rows and checkpoint commit together, a projector
// killed at any instant restarts exactly where its data says it stopped:
// nothing is lost and nothing is applied twice.
package projection

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/simtrail/simtrail/pkg/events"
	simtrailv1 "github.com/simtrail/simtrail/proto/simtrail/v1"
)

// Projector is the pure part of a read model. Apply must be deterministic
// given the database state and the message, and idempotent per event id:
// the same event may be stored twice in the log (a retry after JetStream's
// duplicate window) and both copies reach Apply.
type Projector interface {
	// Name is the projection's name in URLs, metrics and the checkpoint.
	Name() string
	// Migrations holds numbered goose SQL files at its root.
	Migrations() fs.FS
	// Apply folds one event into the read model inside tx.
	Apply(ctx context.Context, tx *sql.Tx, m Message) error
}

// Message is one stored event as a projector sees it.
type Message struct {
	Seq     uint64
	Subject string
	// Stored is when JetStream stored it.
	Stored time.Time
	// Event is the decoded event without its raw_body (no projector
	// reads the request bytes; see events.DecodeWithoutRawBody).
	Event *simtrailv1.Event
	// DecodeErr is set (and Event nil) when the payload is not a valid event;
	// such a message is recorded as poison without calling Apply.
	DecodeErr error
}

// Config tunes a Runner. Zero values take the defaults.
type Config struct {
	// Stream is the JetStream stream, events.StreamName by default.
	Stream string
	// Durable is the consumer name, the projector's name by default. Each
	// replica of a projector owns its own SQLite file and so needs its own
	// consumer name.
	Durable string
	// BatchSize is the most events applied in one transaction (default 1000).
	BatchSize int
	// MaxAttempts is how often an event is tried before it is recorded as
	// poison and skipped (default 3).
	MaxAttempts int
	// AfterCommit, if set, runs after every committed batch with the new
	// position (the thresholds projector uses it to flush its outbox).
	AfterCommit func(pos uint64)
	Logger      *slog.Logger
	Registerer  prometheus.Registerer
}

func (c *Config) defaults(name string) {
	if c.Stream == "" {
		c.Stream = events.StreamName
	}
	if c.Durable == "" {
		c.Durable = name
	}
	if c.BatchSize <= 0 {
		c.BatchSize = 1000
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 3
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Runner owns the consumer loop, the checkpoint and the position.
type Runner struct {
	p   Projector
	js  jetstream.JetStream
	cfg Config
	log *slog.Logger

	db      atomic.Pointer[DB]
	applyMu sync.Mutex

	ctxMu sync.Mutex
	ctx   context.Context // Run's context: background work (rebuilds) ends with it

	mu     sync.Mutex
	pos    uint64
	notify chan struct{}
	lag    atomic.Uint64

	rebuild rebuildState

	mApplied  prometheus.Counter
	mPoison   prometheus.Counter
	mPosition prometheus.Gauge
	mLag      prometheus.Gauge
	mBatch    prometheus.Histogram
}

// NewRunner prepares p over db; Run starts consuming.
func NewRunner(ctx context.Context, p Projector, db *DB, js jetstream.JetStream, cfg Config) (*Runner, error) {
	cfg.defaults(p.Name())
	pos, err := Checkpoint(ctx, db.Writer, p.Name())
	if err != nil {
		return nil, err
	}
	r := &Runner{p: p, js: js, cfg: cfg, log: cfg.Logger.With("projection", p.Name()), pos: pos, notify: make(chan struct{})}
	r.db.Store(db)
	r.rebuild.state = "idle"
	labels := prometheus.Labels{"projection": p.Name()}
	r.mApplied = prometheus.NewCounter(prometheus.CounterOpts{Name: "simtrail_projection_events_applied_total", Help: "Events applied to the read model.", ConstLabels: labels})
	r.mPoison = prometheus.NewCounter(prometheus.CounterOpts{Name: "simtrail_projection_poison_events_total", Help: "Events that could not be applied and were skipped.", ConstLabels: labels})
	r.mPosition = prometheus.NewGauge(prometheus.GaugeOpts{Name: "simtrail_projection_position", Help: "Last applied stream sequence.", ConstLabels: labels})
	r.mLag = prometheus.NewGauge(prometheus.GaugeOpts{Name: "simtrail_projection_lag", Help: "Events stored but not yet applied, as last seen.", ConstLabels: labels})
	r.mBatch = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "simtrail_projection_batch_seconds", Help: "Time to apply and commit one batch.", ConstLabels: labels, Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)})
	if cfg.Registerer != nil {
		for _, c := range []prometheus.Collector{r.mApplied, r.mPoison, r.mPosition, r.mLag, r.mBatch} {
			if err := cfg.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("register metrics: %w", err)
			}
		}
	}
	r.mPosition.Set(float64(pos))
	return r, nil
}

func (r *Runner) baseCtx() context.Context {
	r.ctxMu.Lock()
	defer r.ctxMu.Unlock()
	if r.ctx == nil {
		return context.Background()
	}
	return r.ctx
}

// Name is the projection's name.
func (r *Runner) Name() string { return r.p.Name() }

// DB is the read model currently served (it changes when a rebuild swaps).
func (r *Runner) DB() *DB { return r.db.Load() }

// Position is the last applied stream sequence.
func (r *Runner) Position() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.pos
}

// Lag is the number of matching events stored after the position, as last
// reported by JetStream.
func (r *Runner) Lag() uint64 { return r.lag.Load() }

// WaitFor blocks until the position is at least seq or ctx ends.
func (r *Runner) WaitFor(ctx context.Context, seq uint64) error {
	for {
		r.mu.Lock()
		if r.pos >= seq {
			r.mu.Unlock()
			return nil
		}
		ch := r.notify
		r.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (r *Runner) advance(pos uint64) {
	r.mu.Lock()
	if pos > r.pos {
		r.pos = pos
		close(r.notify)
		r.notify = make(chan struct{})
	}
	r.mu.Unlock()
	r.mPosition.Set(float64(pos))
}

// errGap means JetStream delivered past a message we never received; the
// session restarts from the checkpoint so nothing is skipped.
var errGap = errors.New("delivery gap detected")

// Run consumes until ctx ends, restarting the consumer after any failure
// (NATS down, consumer deleted, gap) from the checkpoint in SQLite.
func (r *Runner) Run(ctx context.Context) error {
	r.ctxMu.Lock()
	r.ctx = ctx
	r.ctxMu.Unlock()
	backoff := 100 * time.Millisecond
	for {
		err := r.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, errGap) {
			r.log.Warn("restarting consumer from checkpoint", "reason", err)
			backoff = 100 * time.Millisecond
			continue
		}
		if IsStorageError(err) {
			// Nothing was committed; reopen the writer so a repaired disk
			// (space freed, remounted read-write) is seen on the retry.
			r.resetConns()
		}
		r.log.Warn("consumer session ended; retrying", "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

// session runs one consumer from position+1 until an error. The durable
// consumer is re-created at the checkpoint on every session: SQLite, not the
// consumer's ack floor, is the truth about what was applied, and a fresh
// consumer never holds unacknowledged messages that would be redelivered
// out of order after their ack wait.
func (r *Runner) session(ctx context.Context) error {
	start := r.Position() + 1
	cfg := jetstream.ConsumerConfig{
		Durable:       r.cfg.Durable,
		Description:   "simtrail projection " + r.p.Name(),
		FilterSubject: events.EventsFilter,
		AckPolicy:     jetstream.AckAllPolicy,
		AckWait:       2 * time.Minute,
		MaxAckPending: 4 * r.cfg.BatchSize,
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:   start,
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := r.js.DeleteConsumer(cctx, r.cfg.Stream, r.cfg.Durable); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return fmt.Errorf("reset consumer: %w", err)
	}
	cons, err := r.js.CreateConsumer(cctx, r.cfg.Stream, cfg)
	if err != nil {
		return fmt.Errorf("create consumer: %w", err)
	}
	msgs := make(chan jetstream.Msg, 2*r.cfg.BatchSize)
	fail := make(chan error, 1)
	stop := make(chan struct{})
	cc, err := cons.Consume(func(m jetstream.Msg) {
		select {
		case msgs <- m:
		case <-stop:
		}
	}, jetstream.PullMaxMessages(2*r.cfg.BatchSize), jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		if errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrConsumerNotFound) {
			select {
			case fail <- err:
			default:
			}
		}
	}))
	if err != nil {
		return fmt.Errorf("consume: %w", err)
	}
	defer func() {
		close(stop)
		cc.Stop()
	}()
	r.log.Info("consuming", "from_seq", start, "durable", r.cfg.Durable)

	var lastConsumerSeq uint64
	batch := make([]jetstream.Msg, 0, r.cfg.BatchSize)
	for {
		batch = batch[:0]
		select {
		case <-ctx.Done():
			return nil
		case err := <-fail:
			return err
		case m := <-msgs:
			batch = append(batch, m)
		}
	drain:
		for len(batch) < r.cfg.BatchSize {
			select {
			case m := <-msgs:
				batch = append(batch, m)
			default:
				break drain
			}
		}
		todo := make([]Message, 0, len(batch))
		var gap bool
		var pending uint64
		pos := r.Position()
		n := 0
		for _, m := range batch {
			meta, err := m.Metadata()
			if err != nil {
				return fmt.Errorf("message metadata: %w", err)
			}
			if lastConsumerSeq != 0 && meta.Sequence.Consumer != lastConsumerSeq+1 {
				gap = true
				break
			}
			lastConsumerSeq = meta.Sequence.Consumer
			n++
			pending = meta.NumPending
			if meta.Sequence.Stream <= pos {
				continue // redelivery of something already applied
			}
			msg := Message{Seq: meta.Sequence.Stream, Subject: m.Subject(), Stored: meta.Timestamp}
			msg.Event, msg.DecodeErr = events.DecodeWithoutRawBody(m.Data())
			todo = append(todo, msg)
		}
		if len(todo) > 0 {
			started := time.Now()
			// applyMu lets an online rebuild pause the live loop between
			// batches while it catches up and swaps the database.
			r.applyMu.Lock()
			res, err := ApplyBatch(ctx, r.DB().Writer, r.p, todo, r.cfg.MaxAttempts, r.log)
			r.applyMu.Unlock()
			if err != nil {
				return fmt.Errorf("apply batch: %w", err)
			}
			r.mBatch.Observe(time.Since(started).Seconds())
			r.mApplied.Add(float64(res.Applied))
			r.mPoison.Add(float64(res.Poisoned))
			r.advance(todo[len(todo)-1].Seq)
			if r.cfg.AfterCommit != nil {
				r.cfg.AfterCommit(r.Position())
			}
		}
		if n > 0 {
			// AckAll: one ack covers the batch. It is sent after the commit,
			// and losing it is harmless because the checkpoint decides.
			_ = batch[n-1].Ack()
			r.lag.Store(pending)
			r.mLag.Set(float64(pending))
		}
		if gap {
			return errGap
		}
	}
}

// Result counts what ApplyBatch did.
type Result struct {
	Applied  int
	Poisoned int
}

// ApplyBatch applies msgs (in order) to the read model in one transaction
// and records the last sequence as the checkpoint in the same transaction.
//
// The fast path applies the whole batch without savepoints. If any event
// fails, the transaction is rolled back and the batch is re-applied with a
// savepoint per event, so one bad event is retried up to maxAttempts times
// and then recorded as poison, while the rest of the batch still applies.
func ApplyBatch(ctx context.Context, w *sql.DB, p Projector, msgs []Message, maxAttempts int, log *slog.Logger) (Result, error) {
	if len(msgs) == 0 {
		return Result{}, nil
	}
	res, err := applyTx(ctx, w, p, msgs, false, maxAttempts, log)
	if errors.Is(err, errNeedCareful) {
		res, err = applyTx(ctx, w, p, msgs, true, maxAttempts, log)
	}
	return res, err
}

var errNeedCareful = errors.New("an event failed; re-applying with savepoints")

func applyTx(ctx context.Context, w *sql.DB, p Projector, msgs []Message, careful bool, maxAttempts int, log *slog.Logger) (Result, error) {
	var res Result
	tx, err := w.BeginTx(ctx, nil)
	if err != nil {
		return res, fmt.Errorf("begin: %w", err)
	}
	committed := false
	defer txEnded(p, tx, &committed) // after the rollback below
	txBegun(ctx, p, tx, w)
	defer tx.Rollback() //nolint:errcheck // no-op after commit
	// Statements run without ctx's cancellation: go-sqlite3 executes every
	// statement of a cancellable context on a goroutine of its own, which
	// costs about as much as the small statements a projector runs. ctx
	// still ends the batch: database/sql rolls the transaction back when
	// it is cancelled (later statements and the commit then fail), and ctx
	// is checked after every failed Apply.
	sctx := context.WithoutCancel(ctx)
	for _, m := range msgs {
		if m.DecodeErr != nil {
			if err := recordPoison(sctx, tx, m, m.DecodeErr, 1); err != nil {
				return res, err
			}
			log.Error("poison event skipped", "seq", m.Seq, "subject", m.Subject, "err", m.DecodeErr)
			res.Poisoned++
			continue
		}
		if !careful {
			if err := p.Apply(sctx, tx, m); err != nil {
				if ctx.Err() != nil {
					return res, ctx.Err()
				}
				if IsStorageError(err) {
					return res, fmt.Errorf("apply seq %d: %w", m.Seq, err)
				}
				return res, errNeedCareful
			}
			res.Applied++
			continue
		}
		var lastErr error
		attempts := 0
		for attempts < maxAttempts {
			attempts++
			if _, err := tx.ExecContext(sctx, `SAVEPOINT ev`); err != nil {
				return res, fmt.Errorf("savepoint: %w", err)
			}
			lastErr = p.Apply(sctx, tx, m)
			if lastErr == nil {
				lastErr = flushTx(sctx, p, tx)
			}
			if lastErr == nil {
				if _, err := tx.ExecContext(sctx, `RELEASE ev`); err != nil {
					return res, fmt.Errorf("release savepoint: %w", err)
				}
				break
			}
			if _, err := tx.ExecContext(sctx, `ROLLBACK TO ev; RELEASE ev`); err != nil {
				return res, fmt.Errorf("rollback savepoint: %w", err)
			}
			if ctx.Err() != nil {
				return res, ctx.Err()
			}
			if IsStorageError(lastErr) {
				// Not the event's fault: retry the batch later, never poison.
				return res, fmt.Errorf("apply seq %d: %w", m.Seq, lastErr)
			}
			time.Sleep(time.Duration(attempts) * 10 * time.Millisecond)
		}
		if lastErr != nil {
			if err := recordPoison(sctx, tx, m, lastErr, attempts); err != nil {
				return res, err
			}
			log.Error("poison event skipped", "seq", m.Seq, "subject", m.Subject, "attempts", attempts, "err", lastErr)
			res.Poisoned++
			continue
		}
		res.Applied++
	}
	if !careful {
		if err := flushTx(sctx, p, tx); err != nil {
			if ctx.Err() != nil {
				return res, ctx.Err()
			}
			if IsStorageError(err) {
				return res, err
			}
			// An event's held-back write failed: find it event by event.
			return res, errNeedCareful
		}
	}
	if err := saveCheckpoint(sctx, tx, p.Name(), msgs[len(msgs)-1].Seq); err != nil {
		return res, err
	}
	if err := tx.Commit(); err != nil {
		return res, fmt.Errorf("commit: %w", err)
	}
	committed = true
	return res, nil
}

func recordPoison(ctx context.Context, tx *sql.Tx, m Message, cause error, attempts int) error {
	id := ""
	if m.Event != nil {
		id = m.Event.GetId()
	}
	msg := cause.Error()
	if len(msg) > 2000 {
		msg = msg[:2000]
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO projection_poison(seq, event_id, subject, error, attempts, recorded_at)
		VALUES(?, ?, ?, ?, ?, ?) ON CONFLICT(seq) DO UPDATE SET error = excluded.error, attempts = excluded.attempts`,
		m.Seq, id, m.Subject, msg, attempts, time.Now().UTC().Format(time.RFC3339Nano))
	if err != nil {
		return fmt.Errorf("record poison: %w", err)
	}
	return nil
}
