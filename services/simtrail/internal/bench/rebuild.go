package bench

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/schollz/progressbar/v3"
	"github.com/simtrail/simtrail/pkg/events"
	"github.com/simtrail/simtrail/pkg/natsx"
	"github.com/simtrail/simtrail/pkg/projection"
	simtrailv1 "github.com/simtrail/simtrail/proto/simtrail/v1"
	"github.com/simtrail/simtrail/services/ingest/providers"
	"github.com/simtrail/simtrail/services/simtrail/internal/loadgen"
	"github.com/simtrail/simtrail/services/thresholds"
	"github.com/simtrail/simtrail/services/timeline"
)

// RebuildResult holds the fill, the SQLite baseline and each projection's
// rebuild.
type RebuildResult struct {
	Events       int           // events stored
	FillTook     time.Duration // publishing them
	BaselineRows int
	BaselineTook time.Duration
	Builds       []BuildResult
}

// BaselineRate is rows/s of plain batched inserts.
func (r *RebuildResult) BaselineRate() float64 { return rate(r.BaselineRows, r.BaselineTook) }

// BuildResult is one projection's rebuild from sequence 1.
type BuildResult struct {
	Name    string
	Applied int
	Took    time.Duration
}

// Rate is events/s.
func (b BuildResult) Rate() float64 { return rate(b.Applied, b.Took) }

func rate(n int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

func projectors() ([]projection.Projector, error) {
	th, err := thresholds.NewProjector(thresholds.Options{})
	if err != nil {
		return nil, err
	}
	return []projection.Projector{timeline.NewProjector(), th}, nil
}

func (o Options) bar(total int, desc string) *progressbar.ProgressBar {
	if !o.Bar {
		return nil
	}
	return progressbar.NewOptions(total,
		progressbar.OptionSetWriter(o.Log),
		progressbar.OptionSetDescription(desc),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionThrottle(200*time.Millisecond),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(o.Log) }),
	)
}

func benchRebuild(ctx context.Context, o Options, dir string, sampler *phaseSampler) (*RebuildResult, error) {
	ns, err := natsx.StartEmbedded(natsx.EmbeddedConfig{Port: -1, StoreDir: dirJoin(dir, "jetstream")})
	if err != nil {
		return nil, err
	}
	defer func() {
		ns.Shutdown()
		ns.WaitForShutdown()
	}()
	nc, err := natsx.Connect(natsx.ConnConfig{URLs: ns.ClientURL(), Name: "simtrail-bench"})
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	var pubErrs atomic.Int64
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(8192),
		jetstream.WithPublishAsyncErrHandler(func(jetstream.JetStream, *nats.Msg, error) { pubErrs.Add(1) }))
	if err != nil {
		return nil, err
	}
	if _, err := natsx.EnsureStream(ctx, js, natsx.StreamConfig{}); err != nil {
		return nil, err
	}
	res := &RebuildResult{Events: o.Events}

	// Fill: generated bodies through the real parsers, published async.
	fmt.Fprintf(o.Log, "fill: %d events for %d SIMs\n", o.Events, o.Sims)
	took, err := fill(ctx, o, js)
	if err != nil {
		return nil, err
	}
	if n := pubErrs.Load(); n > 0 {
		return nil, fmt.Errorf("fill: %d publishes failed", n)
	}
	res.FillTook = took

	// Baseline: the same sim_event rows straight into SQLite.
	sampler.phase("sqlite baseline")
	base, err := projection.Open(ctx, dirJoin(dir, "baseline.db"), timeline.NewProjector().Migrations())
	if err != nil {
		return nil, err
	}
	res.BaselineRows, res.BaselineTook, err = insertBaseline(ctx, base, o)
	base.Close()
	if err != nil {
		return nil, err
	}
	settle()

	ps, err := projectors()
	if err != nil {
		return nil, err
	}
	for _, p := range ps {
		sampler.phase("rebuild " + p.Name())
		fmt.Fprintf(o.Log, "rebuild: %s from sequence 1\n", p.Name())
		db, err := projection.Open(ctx, dirJoin(dir, p.Name()+".db"), p.Migrations())
		if err != nil {
			return nil, err
		}
		bar := o.bar(o.Events, "rebuild "+p.Name())
		applied := 0
		start := time.Now()
		pos, err := projection.Build(ctx, js, events.StreamName, p, db, projection.BuildOptions{
			Progress: func(pr projection.Progress) {
				applied = pr.Applied
				if bar != nil {
					_ = bar.Set(pr.Applied)
				}
			},
		})
		took := time.Since(start)
		if bar != nil {
			_ = bar.Finish()
		}
		if err == nil {
			// A rebuilt outbox is history, not news: mark it announced so
			// the serving phases do not publish a million old alerts.
			if sp, ok := p.(projection.SwapPreparer); ok {
				err = sp.PrepareSwap(ctx, db.Writer, nil, pos)
			}
		}
		db.Close()
		if err != nil {
			return nil, fmt.Errorf("build %s: %w", p.Name(), err)
		}
		res.Builds = append(res.Builds, BuildResult{Name: p.Name(), Applied: applied, Took: took})
	}
	return res, nil
}

// fill publishes o.Events generated events (no duplicates) from one
// goroutine per CPU, each owning a shard of the fleet,
// so every SIM's events keep their generated order in the stream.
func fill(ctx context.Context, o Options, js jetstream.JetStream) (time.Duration, error) {
	workers := fillWorkers(o)
	var done atomic.Int64
	bar := o.bar(o.Events, "fill")
	stopBar := make(chan struct{})
	var bwg sync.WaitGroup
	if bar != nil {
		bwg.Add(1)
		go func() {
			defer bwg.Done()
			t := time.NewTicker(200 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-stopBar:
					_ = bar.Set(int(done.Load()))
					_ = bar.Finish()
					return
				case <-t.C:
					_ = bar.Set(int(done.Load()))
				}
			}
		}()
	}
	start := time.Now()
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			g := fillGenerator(o, w, workers)
			for i := w; i < o.Events; i += workers {
				if ctx.Err() != nil {
					errs <- ctx.Err()
					return
				}
				req := g.Next()
				ev, err := parseRequest(req)
				if err != nil {
					errs <- err
					return
				}
				data, err := events.Encode(ev)
				if err != nil {
					errs <- err
					return
				}
				msg := &nats.Msg{Subject: events.Subject(ev), Data: data, Header: nats.Header{}}
				for k, v := range events.Headers(ev) {
					// Without Nats-Msg-Id: the fill has no duplicates, and a
					// million ids in the de-duplication window would sit in
					// this process's heap (the embedded server's) for the
					// rest of the run, taxing every later phase's GC. A real
					// rebuild reads a log mostly older than the window, and
					// a deployed projector does not share the server's heap.
					if k != events.HeaderMsgID {
						msg.Header.Set(k, v)
					}
				}
				if _, err := js.PublishMsgAsync(msg); err != nil {
					errs <- fmt.Errorf("publish: %w", err)
					return
				}
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(2 * time.Minute):
		return 0, errors.New("fill: publishes not acknowledged within 2 minutes")
	}
	took := time.Since(start)
	close(stopBar)
	bwg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return 0, err
	}
	return took, nil
}

// fillWorkers is how many generators the fill runs, one per CPU, each
// owning a shard of the fleet.
func fillWorkers(o Options) int { return min(max(runtime.NumCPU(), 1), o.Sims) }

// fillGenerator is worker w's generator: event i of the stream (before
// the concurrent publishes interleave them) is generator i%workers's
// (i/workers)th.
func fillGenerator(o Options, w, workers int) *loadgen.Generator {
	return loadgen.NewGenerator(loadgen.Config{Sims: o.Sims, Seed: o.Seed + 1, DuplicateRate: -1}, w, workers)
}

// parseRequest turns a generated webhook into its canonical event, as
// ingest does; receipt is a second after the provider time.
func parseRequest(r *loadgen.Request) (*simtrailv1.Event, error) {
	parse := providers.ParseRoamify
	switch r.Provider {
	case loadgen.Droam:
		parse = providers.ParseDroam
	case loadgen.Truphone:
		parse = providers.ParseTruphone
	}
	p, err := parse(r.Body, r.At.Add(time.Second))
	if err != nil {
		return nil, err
	}
	return p.Event, nil
}

// insertBaseline writes the sim_event rows the timeline writes for the
// fill's events (timeline.SimEventArgs) into its sim_event table with
// everything a build itself gets, so that the ratio compares a projection
// with the fastest plain way to write one row per event, not with a
// handicapped one: the same schema and bulk pragmas as projection.Build,
// the timeline's query index deferred to the end (its creation is timed),
// transactions of projection.DefaultBuildBatchSize rows, one prepared
// statement each, and Exec without a context: with a cancellable context
// go-sqlite3 runs every statement on a goroutine of its own (an earlier
// version of this baseline paid that, with WAL and 1000-row transactions,
// and measured 12.6k rows/s where this one measured 78k on the same
// machine). Each batch's rows are made from the same generators as the
// fill's (so nothing is kept between the phases) before its transaction
// starts; only the transactions and the index are timed.
func insertBaseline(ctx context.Context, db *projection.DB, o Options) (rows int, took time.Duration, err error) {
	batch := projection.DefaultBuildBatchSize
	w := db.Writer
	if _, err := db.BulkMode(ctx); err != nil {
		return 0, 0, err
	}
	workers := fillWorkers(o)
	gens := make([]*loadgen.Generator, workers)
	for i := range gens {
		gens[i] = fillGenerator(o, i, workers)
	}
	start := time.Now()
	idx := timeline.NewProjector().DeferredIndexes()
	for _, ix := range idx {
		if _, err := w.ExecContext(ctx, `DROP INDEX "`+ix.Name+`"`); err != nil {
			return 0, 0, err
		}
	}
	took = time.Since(start)
	args := make([][]any, 0, batch)
	for i := 0; i < o.Events; i += batch {
		if err := ctx.Err(); err != nil {
			return 0, 0, err
		}
		args = args[:0]
		for j := i; j < min(i+batch, o.Events); j++ {
			ev, err := parseRequest(gens[j%workers].Next())
			if err != nil {
				return 0, 0, err
			}
			if a, ok := timeline.SimEventArgs(nil, ev); ok {
				args = append(args, a)
			}
		}
		start := time.Now()
		tx, err := w.BeginTx(ctx, nil)
		if err != nil {
			return 0, 0, err
		}
		st, err := tx.PrepareContext(ctx, timeline.SimEventInsert)
		if err != nil {
			_ = tx.Rollback()
			return 0, 0, err
		}
		for _, a := range args {
			if _, err := st.Exec(a...); err != nil {
				_ = tx.Rollback()
				return 0, 0, fmt.Errorf("baseline insert: %w", err)
			}
		}
		if err := tx.Commit(); err != nil {
			return 0, 0, err
		}
		took += time.Since(start)
		rows += len(args)
	}
	start = time.Now()
	for _, ix := range idx {
		if _, err := w.ExecContext(ctx, ix.Create); err != nil {
			return 0, 0, err
		}
	}
	return rows, took + time.Since(start), nil
}
