package projection

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/simtrail/simtrail/pkg/events"
	"github.com/simtrail/simtrail/pkg/httpx"
)

// ErrRebuildRunning refuses a second rebuild while one runs (HTTP 409).
var ErrRebuildRunning = errors.New("a rebuild of this projection is already running")

// SwapPreparer is implemented by projectors that must adjust a freshly built
// read model before it replaces the live one; the thresholds projector marks
// its rebuilt alert outbox as published so history is not announced twice.
type SwapPreparer interface {
	PrepareSwap(ctx context.Context, fresh, old *sql.DB, upTo uint64) error
}

// Progress is reported while a read model is being built.
type Progress struct {
	Position        uint64  // last stream sequence applied
	Last            uint64  // the sequence the build is heading for
	Applied         int     // events applied so far
	Pending         uint64  // matching events stored after Position
	EventsPerSecond float64 // since the build started
	ETASeconds      float64 // at the current rate, for the events still pending
}

// BuildOptions bound a Build.
type BuildOptions struct {
	// StartSeq is the first stream sequence to read (default 1).
	StartSeq uint64
	// UpTo stops after this stream sequence; 0 means the end of the stream as
	// it was when the build started.
	UpTo uint64
	// Until, when set, keeps only events JetStream stored at or before it:
	// the read model "as of" that moment.
	Until time.Time
	// BatchSize is the most events per transaction (default: the
	// projector's BuildBatchSize, else DefaultBuildBatchSize).
	BatchSize int
	// Progress is called after every batch.
	Progress func(Progress)
	Logger   *slog.Logger
}

// DefaultBuildBatchSize is a build's transaction size unless the projector
// asks for another (BuildBatcher) or BuildOptions.BatchSize sets one. It is larger than
// the live runner's: a rebuild has a backlog, and with random-key indexes
// each commit rewrites the pages its batch touched, so fewer, larger
// commits write each hot page less often (timeline rebuild at 200k events:
// 10.5k events/s with 1000 per transaction, 17.5k with 5000). The
// thresholds model rewrites the same per-SIM rows on every event, so it
// gains further: 1M events over 10k SIMs in 62.1 s with 5000, 57.5 s with
// 20000 (timeline unchanged; docs/performance.md). Memory grows with it:
// the batch's decoded events, twice that in the pull buffer, and SQLite's
// in-memory rollback journal of the pages the batch touched (+~380 MiB
// peak in that run).
const DefaultBuildBatchSize = 20000

// BuildBatcher is implemented by a projector whose builds are faster with
// another transaction size than DefaultBuildBatchSize (more memory for
// fewer commits, or the reverse).
type BuildBatcher interface {
	BuildBatchSize() int
}

// buildBatchSize is p's build transaction size.
func buildBatchSize(p Projector) int {
	if b, ok := p.(BuildBatcher); ok {
		if n := b.BuildBatchSize(); n > 0 {
			return n
		}
	}
	return DefaultBuildBatchSize
}

// buildWait is how long Build waits for the next event before it asks the
// server whether any is pending; BuildStallLimit is how long it keeps
// waiting while events are pending but none is delivered before it fails.
const (
	buildWait       = 2 * time.Second
	BuildStallLimit = 2 * time.Minute
)

func pendingOrErr(info *jetstream.ConsumerInfo, err error) any {
	if err != nil {
		return err.Error()
	}
	return info.NumPending
}

// Build applies the log to db from opts.StartSeq with an ordered consumer
// (no server-side state to clean up) and returns the last applied sequence.
// It serves offline rebuilds (`simtrail rebuild --into`), "as of" builds and
// the online rebuild below.
func Build(ctx context.Context, js jetstream.JetStream, stream string, p Projector, db *DB, opts BuildOptions) (_ uint64, err error) {
	if opts.BatchSize <= 0 {
		opts.BatchSize = buildBatchSize(p)
	}
	if opts.StartSeq == 0 {
		opts.StartSeq = 1
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	pos, err := Checkpoint(ctx, db.Writer, p.Name())
	if err != nil {
		return 0, err
	}
	// A build writes a file nobody reads yet: bulk mode (see DB.BulkMode)
	// made the timeline projection benchmark 31k -> 53k events/s.
	restore, err := db.BulkMode(ctx)
	if err != nil {
		return pos, err
	}
	defer func() {
		if rerr := restore(context.WithoutCancel(ctx)); rerr != nil && err == nil {
			err = rerr
		}
	}()
	if pos == 0 {
		// An empty read model: indexes Apply does not read are built once
		// at the end. They are created even when the build fails or is
		// cancelled, so a file resumed later is never left without them.
		var create func(context.Context) error
		if create, err = deferIndexes(ctx, db.Writer, p); err != nil {
			return pos, err
		}
		defer func() {
			if cerr := create(context.WithoutCancel(ctx)); cerr != nil && err == nil {
				err = cerr
			}
		}()
	}
	target := opts.UpTo
	if target == 0 {
		st, err := js.Stream(ctx, stream)
		if err != nil {
			return pos, fmt.Errorf("stream info: %w", err)
		}
		info, err := st.Info(ctx)
		if err != nil {
			return pos, fmt.Errorf("stream info: %w", err)
		}
		target = info.State.LastSeq
	}
	if target < opts.StartSeq {
		return pos, nil
	}
	cons, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{events.EventsFilter},
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    opts.StartSeq,
	})
	if err != nil {
		return pos, fmt.Errorf("ordered consumer: %w", err)
	}
	// One long-lived pull iterator, not a Fetch per batch: an ordered
	// consumer's Fetch deletes and re-creates its server-side consumer every
	// call, and each creation counts the pending messages of the whole
	// filter (a tenth of a rebuild's CPU at a million events).
	it, err := cons.Messages(jetstream.PullMaxMessages(2 * opts.BatchSize))
	if err != nil {
		return pos, fmt.Errorf("ordered consumer: %w", err)
	}
	// The next batch is fetched and decoded on a goroutine of its own while
	// this one applies the current batch: SQLite's writer is the critical
	// path, and receiving (the client's read loop, header and metadata
	// parsing, protobuf decoding, their garbage) is a fifth of a build's
	// CPU that a second core can do meanwhile. At most one decoded batch
	// waits, so memory stays at about two batches.
	fctx, stop := context.WithCancel(ctx)
	batches := make(chan fetchedBatch, 1)
	go func() {
		defer close(batches)
		fetchBatches(fctx, it, cons, target, opts, batches)
	}()
	defer func() {
		stop()
		it.Stop()
		for range batches { // let the reader end before the iterator goes
		}
	}()
	started := time.Now()
	applied := 0
	for b := range batches {
		if len(b.msgs) > 0 {
			res, err := ApplyBatch(ctx, db.Writer, p, b.msgs, 3, opts.Logger)
			if err != nil {
				return pos, err
			}
			applied += res.Applied + res.Poisoned
			pos = b.msgs[len(b.msgs)-1].Seq
		}
		if b.err != nil {
			if ctx.Err() != nil {
				return pos, ctx.Err()
			}
			return pos, b.err
		}
		if opts.Progress != nil {
			eps := float64(applied) / max(time.Since(started).Seconds(), 1e-9)
			pr := Progress{Position: pos, Last: target, Applied: applied, Pending: b.pending, EventsPerSecond: eps}
			if eps > 0 {
				pr.ETASeconds = float64(b.pending) / eps
			}
			opts.Progress(pr)
		}
		if b.done {
			return pos, ctx.Err()
		}
	}
	// The reader ends only after sending a batch that is done or failed.
	if err := ctx.Err(); err != nil {
		return pos, err
	}
	return pos, errors.New("build: event reader ended early")
}

// fetchedBatch is one batch of decoded messages for Build, with the
// server's pending count after its last message; done: nothing more is to
// be applied; err: reading failed after msgs (which are still applied).
type fetchedBatch struct {
	msgs    []Message
	pending uint64
	done    bool
	err     error
}

// fetchBatches reads up to opts.BatchSize messages at a time from it, in
// stream order, until target (or opts.Until, or the end of what matches)
// and sends them to out; its last batch is done or carries an error.
func fetchBatches(ctx context.Context, it jetstream.MessagesContext, cons jetstream.Consumer, target uint64, opts BuildOptions, out chan<- fetchedBatch) {
	var stalled time.Duration
	var last uint64
	send := func(b fetchedBatch) bool {
		select {
		case out <- b:
			return true
		case <-ctx.Done():
			return false
		}
	}
	for {
		b := fetchedBatch{msgs: make([]Message, 0, opts.BatchSize)}
		for len(b.msgs) < opts.BatchSize && !b.done {
			m, err := it.Next(jetstream.NextMaxWait(buildWait))
			if err != nil {
				if ctx.Err() != nil {
					b.err = ctx.Err()
					break
				}
				if errors.Is(err, nats.ErrTimeout) || errors.Is(err, context.DeadlineExceeded) {
					// Nothing within the wait: either nothing more matches,
					// or delivery stalled (an ordered consumer resets after
					// missed heartbeats on a busy machine). Ask the server
					// which, so that a build never stops short silently.
					info, ierr := cons.Info(ctx)
					if ierr == nil && info.NumPending == 0 {
						b.done = true
						break
					}
					if stalled += buildWait; stalled >= BuildStallLimit {
						b.err = fmt.Errorf("fetch: no event delivered for %s after sequence %d (pending: %v)", stalled, last, pendingOrErr(info, ierr))
						break
					}
					opts.Logger.Warn("build: delivery stalled, waiting", "after_seq", last, "for", stalled, "pending", pendingOrErr(info, ierr))
					continue
				}
				b.err = fmt.Errorf("fetch: %w", err)
				break
			}
			stalled = 0
			meta, err := m.Metadata()
			if err != nil {
				b.err = fmt.Errorf("metadata: %w", err)
				break
			}
			if meta.Sequence.Stream > target || (!opts.Until.IsZero() && meta.Timestamp.After(opts.Until)) {
				b.done = true
				break
			}
			b.pending = meta.NumPending
			last = meta.Sequence.Stream
			msg := Message{Seq: last, Subject: m.Subject(), Stored: meta.Timestamp}
			msg.Event, msg.DecodeErr = events.DecodeWithoutRawBody(m.Data())
			b.msgs = append(b.msgs, msg)
			if last == target || meta.NumPending == 0 {
				b.done = true
			}
		}
		if !send(b) || b.done || b.err != nil {
			return
		}
	}
}

// CurrentPath is the read model file in use for projection name in dir:
// the file a finished online rebuild recorded in <name>.current, or
// <name>.db.
func CurrentPath(dir, name string) string {
	b, err := os.ReadFile(filepath.Join(dir, name+".current"))
	if err == nil {
		f := strings.TrimSpace(string(b))
		if f != "" && !strings.ContainsAny(f, `/\`) {
			return filepath.Join(dir, f)
		}
	}
	return filepath.Join(dir, name+".db")
}

// setCurrent records file as the read model of name, atomically.
func setCurrent(dir, name, file string) error {
	tmp := filepath.Join(dir, name+".current.tmp")
	if err := os.WriteFile(tmp, []byte(file+"\n"), 0o644); err != nil {
		return err
	}
	f, err := os.Open(tmp)
	if err == nil {
		_ = f.Sync()
		f.Close()
	}
	return os.Rename(tmp, filepath.Join(dir, name+".current"))
}

// StartRebuild builds a fresh read model from sequence 1 beside the live
// one, in the background: queries keep being answered from the live model,
// progress shows in Status, and when the fresh model has caught up the live
// loop is paused between two batches, the fresh model is brought to exactly
// the live position and swapped in atomically.
func (r *Runner) StartRebuild() error {
	r.rebuild.mu.Lock()
	defer r.rebuild.mu.Unlock()
	if r.rebuild.state == "running" {
		return ErrRebuildRunning
	}
	r.rebuild.state = "running"
	r.rebuild.position, r.rebuild.last, r.rebuild.eventsPerSecond, r.rebuild.etaSeconds = 0, 0, 0, 0
	r.rebuild.err = ""
	r.rebuild.startedAt = time.Now()
	r.rebuild.finishedAt = time.Time{}
	ctx := r.baseCtx()
	go func() {
		err := r.runRebuild(ctx)
		r.rebuild.mu.Lock()
		defer r.rebuild.mu.Unlock()
		r.rebuild.finishedAt = time.Now()
		if err != nil {
			r.rebuild.state = "failed"
			r.rebuild.err = err.Error()
			r.log.Error("rebuild failed", "err", err)
			return
		}
		r.rebuild.state = "done"
		r.rebuild.etaSeconds = 0
		r.log.Info("rebuild done", "position", r.rebuild.position, "took", time.Since(r.rebuild.startedAt))
	}()
	return nil
}

func (r *Runner) progress(p Progress) {
	r.rebuild.mu.Lock()
	r.rebuild.position, r.rebuild.last = p.Position, p.Last
	r.rebuild.eventsPerSecond, r.rebuild.etaSeconds = p.EventsPerSecond, p.ETASeconds
	r.rebuild.mu.Unlock()
}

func (r *Runner) runRebuild(ctx context.Context) error {
	old := r.DB()
	dir := filepath.Dir(old.Path)
	file := fmt.Sprintf("%s.%d.db", r.p.Name(), time.Now().UnixNano())
	fresh, err := Open(ctx, filepath.Join(dir, file), r.p.Migrations())
	if err != nil {
		return err
	}
	ok := false
	defer func() {
		if !ok {
			fresh.Close()
			removeDB(fresh.Path)
		}
	}()
	opts := BuildOptions{BatchSize: max(r.cfg.BatchSize, buildBatchSize(r.p)), Progress: r.progress, Logger: r.log}
	pos, err := Build(ctx, r.js, r.cfg.Stream, r.p, fresh, opts)
	if err != nil {
		return fmt.Errorf("build: %w", err)
	}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		live := r.Position()
		if pos < live {
			opts.StartSeq, opts.UpTo = pos+1, live
			if pos, err = Build(ctx, r.js, r.cfg.Stream, r.p, fresh, opts); err != nil {
				return fmt.Errorf("catch up: %w", err)
			}
			continue
		}
		if pos > live {
			wctx, cancel := context.WithTimeout(ctx, time.Minute)
			err := r.WaitFor(wctx, pos)
			cancel()
			if err != nil {
				return fmt.Errorf("live projection did not reach %d: %w", pos, err)
			}
			continue
		}
		r.applyMu.Lock()
		if r.Position() != pos {
			r.applyMu.Unlock()
			continue
		}
		err := func() error {
			defer r.applyMu.Unlock()
			if sp, isSP := r.p.(SwapPreparer); isSP {
				if err := sp.PrepareSwap(ctx, fresh.Writer, old.Writer, pos); err != nil {
					return fmt.Errorf("prepare swap: %w", err)
				}
			}
			if err := setCurrent(dir, r.p.Name(), file); err != nil {
				return fmt.Errorf("record current read model: %w", err)
			}
			r.db.Store(fresh)
			return nil
		}()
		if err != nil {
			return err
		}
		ok = true
		r.progress(Progress{Position: pos, Last: pos})
		// Queries that started on the old model get a grace period.
		go func() {
			time.Sleep(10 * time.Second)
			old.Close()
			removeDB(old.Path)
		}()
		return nil
	}
}

func removeDB(path string) {
	for _, suffix := range []string{"", "-wal", "-shm"} {
		_ = os.Remove(path + suffix)
	}
}

// ProjectionsRoutes registers GET /v1/projections and
// POST /v1/projections/:name/rebuild for the given runners.
func ProjectionsRoutes(e *echo.Echo, runners ...*Runner) {
	e.GET("/v1/projections", ProjectionsHandler(runners...))
	e.POST("/v1/projections/:name/rebuild", func(c echo.Context) error {
		for _, r := range runners {
			if r.Name() != c.Param("name") {
				continue
			}
			if err := r.StartRebuild(); err != nil {
				if errors.Is(err, ErrRebuildRunning) {
					return httpx.NewError(http.StatusConflict, "rebuild_running", err.Error())
				}
				return err
			}
			st, err := r.Status(c.Request().Context())
			if err != nil {
				return err
			}
			return c.JSON(http.StatusAccepted, st)
		}
		return httpx.NotFound("projection_not_found", "no projection named "+c.Param("name"))
	})
}
