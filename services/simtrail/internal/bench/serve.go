package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/simtrail/simtrail/services/ingest"
	"github.com/simtrail/simtrail/services/simtrail/internal/app"
	"github.com/simtrail/simtrail/services/simtrail/internal/loadgen"
	"github.com/simtrail/simtrail/services/thresholds"
)

// QueryResult is one query kind under QueryClients concurrent clients.
type QueryResult struct {
	Name string
	// Bar marks the query SPEC §9 sets a bar for (the 31-day usage query);
	// the others are context.
	Bar     bool
	Queries int64
	Non200  int64
	// Unanswered counts the paced queries due before the end of the run
	// that were not answered by then (sent late or not at all): a paced
	// row's latency leaves them out, so the table shows them.
	Unanswered int64
	Took       time.Duration
	Latency    *loadgen.Histogram
	FirstBad   string
}

// Rate is queries per second.
func (q QueryResult) Rate() float64 { return rate(int(q.Queries), q.Took) }

// FreshnessResult is, for one read model, the time from a webhook's 2xx to
// the model's position reaching the webhook's X-Event-Position.
type FreshnessResult struct {
	Model    string
	Webhooks int // measured (2xx, not duplicates)
	Missed   int // never seen within the wait
	Latency  *loadgen.Histogram
	Load     *loadgen.Summary
}

// benchServing starts the whole system over the filled store (its read
// models already rebuilt, so the projectors start at the end of the log)
// and measures queries, then freshness.
func benchServing(ctx context.Context, o Options, dir string, sampler *phaseSampler) ([]QueryResult, []FreshnessResult, error) {
	a, stop, err := startSystem(ctx, app.Config{
		DataDir: dir,
		Ingest: &ingest.Config{
			DroamSecrets:   []string{loadgen.DevSecrets.Droam},
			RoamifySecrets: []string{loadgen.DevSecrets.Roamify},
			TruphoneTokens: []string{loadgen.DevSecrets.TruphoneToken},
		},
		Timeline:   true,
		Thresholds: &thresholds.Options{},
		Logger:     o.Logger,
	})
	if err != nil {
		return nil, nil, err
	}
	defer stop() //nolint:errcheck // best effort at the end of a measurement
	base := "http://" + a.Addr()

	var qs []QueryResult
	if o.want("queries") {
		// The fleet's provider times start 20 days back at midnight (see
		// loadgen.Config.Start); a 31-day window covers them with margin.
		from := time.Now().UTC().Add(-25 * 24 * time.Hour).Truncate(24 * time.Hour)
		to := from.Add(31 * 24 * time.Hour)
		window := "?from=" + from.Format(time.RFC3339) + "&to=" + to.Format(time.RFC3339) + "&granularity=day"
		sims := o.Sims
		// The targets are built once: the clients share the server's process
		// and heap, so garbage of their own would be marked by its GC.
		targets := make([]string, sims)
		for i := range targets {
			targets[i] = "/v1/sims/" + loadgen.ICCID(i) + "/usage" + window
		}
		usage := func(r *rand.Rand) string { return targets[r.IntN(sims)] }
		fleet := func(*rand.Rand) string { return "/v1/thresholds?min_percent=50&limit=50" }
		// The floor under the usage figure on this machine: the same
		// clients against a bare echo handler that answers every GET with
		// one real usage answer's bytes (net/http, echo and the clients,
		// no database).
		bare, stopBare, err := startBareAnswer(ctx, a.Addr(), targets[0])
		if err != nil {
			return nil, nil, err
		}
		defer stopBare() // idle once its row is measured
		// The bar's closed loop keeps both CPUs busy, so its latency is
		// mostly queueing (the mean is clients / throughput). The paced
		// row shows what the same clients get below saturation.
		paced := fmt.Sprintf("same usage query, paced: %s q/s over %d clients", group(int64(o.QueryPacedRate)), o.QueryClients)
		for _, q := range []struct {
			name   string
			addr   string
			bar    bool
			rate   float64
			target func(*rand.Rand) string
		}{
			{"bare echo handler, one fixed usage answer", bare, false, 0, usage},
			{"usage 31 days (day buckets)", a.Addr(), true, 0, usage},
			{paced, a.Addr(), false, o.QueryPacedRate, usage},
			{"fleet thresholds ≥50%, limit 50", a.Addr(), false, 0, fleet},
		} {
			fmt.Fprintf(o.Log, "queries: %s, %d clients, %s\n", q.name, o.QueryClients, o.QueryDuration)
			r := runQueries(ctx, o, q.addr, q.name, q.rate, q.target)
			r.Bar = q.bar
			qs = append(qs, r)
		}
	}

	var fs []FreshnessResult
	if o.want("freshness") {
		sampler.phase("freshness")
		fmt.Fprintf(o.Log, "freshness: %.0f webhooks/s for %s\n", o.FreshRate, o.FreshDuration)
		fs, err = runFreshness(ctx, o, base)
		if err != nil {
			return qs, nil, err
		}
	}
	return qs, fs, nil
}

// startBareAnswer fetches target from the system at sysAddr once and
// starts a bare echo server on 127.0.0.1 that answers every GET with that
// body (same status, type and size as a real answer), until stop.
func startBareAnswer(ctx context.Context, sysAddr, target string) (addr string, stop func(), err error) {
	c := newRawClient(ctx, sysAddr)
	status, body, err := c.Get(target)
	c.Close()
	if err != nil {
		return "", nil, fmt.Errorf("fetch the answer for the bare handler: %w", err)
	}
	if status != http.StatusOK {
		return "", nil, fmt.Errorf("fetch the answer for the bare handler: status %d: %s", status, body[:min(len(body), 200)])
	}
	answer := bytes.Clone(body)
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.GET("/*", func(c echo.Context) error { return c.JSONBlob(http.StatusOK, answer) })
	return serveLocal(e)
}

// runQueries has QueryClients clients ask GET target(r) of the server at
// addr for QueryDuration, each on its own keep-alive connection
// (rawClient, so the figures are the server's, not net/http's client's):
// back to back when rate is 0, else together at rate queries/s, each
// client on its own evenly spaced schedule. A paced query's latency runs
// from when it was due, not from when it was sent, so a client that falls
// behind its schedule counts the wait (no coordinated omission).
func runQueries(ctx context.Context, o Options, addr, name string, rate float64, target func(*rand.Rand) string) QueryResult {
	ctx, cancel := context.WithTimeout(ctx, o.QueryDuration)
	defer cancel()
	type acc struct {
		h        loadgen.Histogram
		n, bad   int64
		firstBad string
		// unanswered: paced queries due before the end that got no
		// answer in time (never sent, or cut off in flight).
		unanswered int64
	}
	accs := make([]*acc, o.QueryClients)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range accs {
		ac := &acc{}
		accs[i] = ac
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(o.Seed, uint64(i)))
			client := newRawClient(ctx, addr)
			defer client.Close()
			var every time.Duration
			var timer *time.Timer
			due := start
			if rate > 0 {
				// One timer per client, reset for each wait: the clients
				// share the server's heap (see targets).
				timer = time.NewTimer(time.Hour)
				defer timer.Stop()
				// At least 1 ns: a rate too high to space still counts from
				// the due times, instead of turning into a closed loop.
				every = max(time.Duration(float64(o.QueryClients)/rate*float64(time.Second)), 1)
				due = start.Add(every * time.Duration(i) / time.Duration(o.QueryClients))
			}
			// ended counts the exchanges that ended (answer or error)
			// before the run did; a paced client owes one per due time.
			first, ended := due, int64(0)
			defer func() {
				if end, ok := ctx.Deadline(); ok && every > 0 && first.Before(end) {
					ac.unanswered = int64((end.Sub(first)+every-1)/every) - ended
				}
			}()
			for ctx.Err() == nil {
				t := target(r)
				t0 := time.Now()
				if every > 0 {
					if wait := time.Until(due); wait > 0 {
						timer.Reset(wait)
						select {
						case <-ctx.Done():
							return
						case <-timer.C:
						}
					}
					t0 = due
					due = due.Add(every)
				}
				status, body, err := client.Get(t)
				if err != nil {
					if ctx.Err() == nil {
						ended++
						ac.bad++
						if ac.firstBad == "" {
							ac.firstBad = err.Error()
						}
					}
					continue
				}
				ac.h.Record(time.Since(t0))
				ac.n++
				ended++
				if status != http.StatusOK {
					ac.bad++
					if ac.firstBad == "" {
						ac.firstBad = strconv.Itoa(status) + " " + string(body[:min(len(body), 200)])
					}
				}
			}
		}()
	}
	wg.Wait()
	res := QueryResult{Name: name, Took: time.Since(start), Latency: &loadgen.Histogram{}}
	for _, ac := range accs {
		res.Queries += ac.n
		res.Non200 += ac.bad
		res.Unanswered += ac.unanswered
		res.Latency.Merge(&ac.h)
		if res.FirstBad == "" {
			res.FirstBad = ac.firstBad
		}
	}
	return res
}

// observation is a read model's position as one poll saw it.
type observation struct {
	at  time.Time // when the poll's answer arrived
	pos uint64
}

type written struct {
	at  time.Time // when the 2xx had been read
	pos uint64
}

// pollPause spaces a poller's requests: the resolution of a freshness
// figure is this pause plus one poll round trip.
const pollPause = time.Millisecond

// runFreshness sends webhooks at FreshRate while one poller per read model
// reads X-Projection-Position back to back. A webhook is visible in a model
// at the first poll answer whose position is at least its X-Event-Position;
// the measured time overstates the truth by at most pollPause plus one
// poll round trip.
func runFreshness(ctx context.Context, o Options, base string) ([]FreshnessResult, error) {
	// The pollers ask with a malformed ICCID: the middleware sets
	// X-Projection-Position before the handler refuses it with 400, so a
	// poll costs no database work and perturbs what it measures little.
	models := []struct{ name, url string }{
		{"timeline", base + "/v1/sims/x.y"},
		{"thresholds", base + "/v1/sims/x.y/thresholds"},
	}
	var mu sync.Mutex
	var writes []written
	pctx, stopPolling := context.WithCancel(ctx)
	obs := make([][]observation, len(models))
	latest := make([]atomic.Uint64, len(models))
	var pollErr atomic.Value
	var pwg sync.WaitGroup
	pollClient := fleetClient(len(models))
	defer pollClient.CloseIdleConnections()
	for i, m := range models {
		pwg.Add(1)
		go func() {
			defer pwg.Done()
			var last uint64
			for pctx.Err() == nil {
				req, _ := http.NewRequestWithContext(pctx, http.MethodGet, m.url, nil)
				resp, err := pollClient.Do(req)
				if err != nil {
					if pctx.Err() == nil {
						pollErr.Store(err)
					}
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				at := time.Now()
				pos, err := strconv.ParseUint(resp.Header.Get("X-Projection-Position"), 10, 64)
				if err != nil {
					pollErr.Store(fmt.Errorf("%s: no X-Projection-Position (status %d)", m.name, resp.StatusCode))
					continue
				}
				if pos > last {
					last = pos
					obs[i] = append(obs[i], observation{at, pos})
					latest[i].Store(pos)
				}
				time.Sleep(pollPause)
			}
		}()
	}
	// Provider clocks start at this second: a second run over a kept store
	// (--reuse) then sends new webhooks. Starting at the hour, as before,
	// resent the first run's bytes within the hour, all answered as
	// duplicates already visible, and measured nothing.
	gen := loadgen.Config{Sims: o.Sims, Seed: o.Seed + 2, Start: time.Now().UTC().Truncate(time.Second)}
	sum, err := loadgen.Run(ctx, loadgen.RunConfig{
		URL: base, Concurrency: o.Concurrency, Rate: o.FreshRate, Duration: o.FreshDuration, Gen: gen,
		OnResponse: func(req *loadgen.Request, status int, h http.Header, done time.Time, _ time.Duration) {
			if status/100 != 2 || req.Duplicate {
				return
			}
			pos, err := strconv.ParseUint(h.Get("X-Event-Position"), 10, 64)
			if err != nil {
				return
			}
			mu.Lock()
			writes = append(writes, written{done, pos})
			mu.Unlock()
		},
	})
	if err != nil {
		stopPolling()
		pwg.Wait()
		return nil, err
	}
	// Let the models catch up with the last writes, then stop polling.
	var maxPos uint64
	for _, w := range writes {
		maxPos = max(maxPos, w.pos)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		caught := true
		for i := range models {
			if latest[i].Load() < maxPos {
				caught = false
			}
		}
		if caught {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	stopPolling()
	pwg.Wait()
	if len(writes) == 0 {
		return nil, fmt.Errorf("freshness: no webhook acknowledged:\n%s", sum)
	}
	if e, ok := pollErr.Load().(error); ok && len(obs[0]) == 0 {
		return nil, fmt.Errorf("freshness: polling failed: %w", e)
	}
	out := make([]FreshnessResult, len(models))
	for i, m := range models {
		r := FreshnessResult{Model: m.name, Latency: &loadgen.Histogram{}, Load: sum}
		ob := obs[i]
		for _, w := range writes {
			k := sort.Search(len(ob), func(j int) bool { return ob[j].pos >= w.pos })
			if k == len(ob) {
				r.Missed++
				continue
			}
			r.Webhooks++
			r.Latency.Record(max(ob[k].at.Sub(w.at), 0))
		}
		out[i] = r
	}
	return out, nil
}
