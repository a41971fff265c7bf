package loadgen

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// RunConfig says where, how fast and how long to send.
type RunConfig struct {
	// URL is the simtrail base URL (scheme://host:port).
	URL string
	// Concurrency is the number of senders, each with its own keep-alive
	// connection (default 64).
	Concurrency int
	// Rate is the target in requests per second over all senders; 0 sends
	// flat out.
	Rate float64
	// Duration and Requests bound the run; whichever ends first. At least
	// one must be set (or ctx must end).
	Duration time.Duration
	Requests int64
	// Gen shapes the traffic (fleet size, seed, duplicate and late shares).
	Gen Config
	// Client is used when set; otherwise NewClient(Concurrency).
	Client *http.Client
	// OnResponse, when set, is called from the sender goroutine after each
	// response has been read completely (done is when it was), with the
	// response's status and headers; it must be cheap and goroutine-safe.
	OnResponse func(req *Request, status int, h http.Header, done time.Time, latency time.Duration)
	// Progress, when set, is called from one goroutine every 100 ms with
	// the requests completed so far.
	Progress func(done int64)
}

// NewClient returns an HTTP client tuned for load: one idle keep-alive
// connection per sender, no compression, no proxies.
func NewClient(concurrency int) *http.Client {
	t := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        concurrency * 2,
		MaxIdleConnsPerHost: concurrency,
		MaxConnsPerHost:     0,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
	}
	return &http.Client{Transport: t, Timeout: 30 * time.Second}
}

// Summary is what a run did.
type Summary struct {
	Elapsed    time.Duration
	Sent       int64
	OK         int64 // 2xx
	ByStatus   map[int]int64
	Errors     int64 // transport errors
	FirstError string
	Duplicates int64
	OutOfOrder int64
	Latency    *Histogram
}

// Rate is completed requests per second.
func (s *Summary) Rate() float64 {
	if s.Elapsed <= 0 {
		return 0
	}
	return float64(s.Sent) / s.Elapsed.Seconds()
}

// OKRate is 2xx answers per second.
func (s *Summary) OKRate() float64 {
	if s.Elapsed <= 0 {
		return 0
	}
	return float64(s.OK) / s.Elapsed.Seconds()
}

// String renders the summary for people.
func (s *Summary) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "sent %d in %s (%.0f req/s), 2xx %d (%.0f/s), duplicates sent %d, out-of-order sent %d\n",
		s.Sent, s.Elapsed.Round(time.Millisecond), s.Rate(), s.OK, s.OKRate(), s.Duplicates, s.OutOfOrder)
	codes := make([]int, 0, len(s.ByStatus))
	for c := range s.ByStatus {
		if c/100 != 2 {
			codes = append(codes, c)
		}
	}
	sort.Ints(codes)
	if len(codes) == 0 && s.Errors == 0 {
		b.WriteString("non-2xx: none\n")
	} else {
		b.WriteString("non-2xx:")
		for _, c := range codes {
			fmt.Fprintf(&b, " %d×%d", c, s.ByStatus[c])
		}
		if s.Errors > 0 {
			fmt.Fprintf(&b, " transport-errors×%d (first: %s)", s.Errors, s.FirstError)
		}
		b.WriteByte('\n')
	}
	l := s.Latency
	fmt.Fprintf(&b, "latency p50 %s  p90 %s  p99 %s  max %s\n",
		fmtDur(l.Quantile(0.50)), fmtDur(l.Quantile(0.90)), fmtDur(l.Quantile(0.99)), fmtDur(l.Max()))
	return b.String()
}

func fmtDur(d time.Duration) string {
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.2fs", d.Seconds())
	case d >= time.Millisecond:
		return fmt.Sprintf("%.2fms", float64(d)/1e6)
	default:
		return fmt.Sprintf("%dµs", d.Microseconds())
	}
}

type worker struct {
	hist       Histogram
	byStatus   map[int]int64
	sent, ok   int64
	errs       int64
	firstErr   string
	dups, late int64
}

// Run sends traffic until the duration or request budget is spent or ctx
// ends, and summarises it. Senders share the fleet by shards (one
// generator per sender) so SIM states need no locks.
func Run(ctx context.Context, rc RunConfig) (*Summary, error) {
	if rc.URL == "" {
		return nil, errors.New("loadgen: no URL")
	}
	if rc.Concurrency <= 0 {
		rc.Concurrency = 64
	}
	if rc.Duration <= 0 && rc.Requests <= 0 && ctx.Done() == nil {
		return nil, errors.New("loadgen: set a duration or a request count")
	}
	rc.Gen.defaults()
	client := rc.Client
	if client == nil {
		client = NewClient(rc.Concurrency)
	}
	base := strings.TrimRight(rc.URL, "/")
	shards := min(rc.Concurrency, rc.Gen.Sims)
	gens := make([]*Generator, shards)
	locks := make([]sync.Mutex, shards)
	for i := range gens {
		gens[i] = NewGenerator(rc.Gen, i, shards)
	}
	// Paths are the same for every request of a provider: build them once.
	paths := map[string]string{}
	for _, p := range []string{Droam, Roamify, Truphone} {
		paths[p] = base + (&Request{Provider: p}).Path(rc.Gen.Secrets)
	}

	// The duration stops new requests; requests in flight finish (cutting
	// them would count as server errors that are not).
	loopCtx := ctx
	if rc.Duration > 0 {
		var cancel context.CancelFunc
		loopCtx, cancel = context.WithTimeout(ctx, rc.Duration)
		defer cancel()
	}
	var next atomic.Int64 // slots handed out
	var done atomic.Int64
	start := time.Now()
	var interval time.Duration
	if rc.Rate > 0 {
		interval = time.Duration(float64(time.Second) / rc.Rate)
	}
	workers := make([]*worker, rc.Concurrency)
	var wg sync.WaitGroup
	for w := range workers {
		wk := &worker{byStatus: map[int]int64{}}
		workers[w] = wk
		wg.Add(1)
		go func() {
			defer wg.Done()
			g, mu := gens[w%shards], &locks[w%shards]
			for loopCtx.Err() == nil {
				slot := next.Add(1) - 1
				if rc.Requests > 0 && slot >= rc.Requests {
					return
				}
				if interval > 0 {
					at := start.Add(time.Duration(slot) * interval)
					if d := time.Until(at); d > 0 {
						t := time.NewTimer(d)
						select {
						case <-loopCtx.Done():
							t.Stop()
							return
						case <-t.C:
						}
					}
				}
				mu.Lock()
				req := g.Next()
				mu.Unlock()
				sendOne(ctx, client, paths[req.Provider], req, rc, wk)
				done.Add(1)
			}
		}()
	}
	stopProgress := make(chan struct{})
	var pwg sync.WaitGroup
	if rc.Progress != nil {
		pwg.Add(1)
		go func() {
			defer pwg.Done()
			t := time.NewTicker(100 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-stopProgress:
					rc.Progress(done.Load())
					return
				case <-t.C:
					rc.Progress(done.Load())
				}
			}
		}()
	}
	wg.Wait()
	close(stopProgress)
	pwg.Wait()
	sum := &Summary{Elapsed: time.Since(start), ByStatus: map[int]int64{}, Latency: &Histogram{}}
	for _, wk := range workers {
		sum.Sent += wk.sent
		sum.OK += wk.ok
		sum.Errors += wk.errs
		sum.Duplicates += wk.dups
		sum.OutOfOrder += wk.late
		if sum.FirstError == "" {
			sum.FirstError = wk.firstErr
		}
		for c, n := range wk.byStatus {
			sum.ByStatus[c] += n
		}
		sum.Latency.Merge(&wk.hist)
	}
	return sum, nil
}

func sendOne(ctx context.Context, client *http.Client, url string, req *Request, rc RunConfig, wk *worker) {
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(req.Body))
	if err != nil {
		wk.errs++
		return
	}
	req.Sign(hr.Header, rc.Gen.Secrets, time.Now())
	t0 := time.Now()
	resp, err := client.Do(hr)
	if err != nil {
		if ctx.Err() != nil {
			return // the run ended mid-request: not a failure of the server
		}
		wk.errs++
		wk.sent++
		if wk.firstErr == "" {
			wk.firstErr = err.Error()
		}
		return
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	end := time.Now()
	lat := end.Sub(t0)
	wk.sent++
	wk.hist.Record(lat)
	wk.byStatus[resp.StatusCode]++
	if resp.StatusCode/100 == 2 {
		wk.ok++
	}
	if req.Duplicate {
		wk.dups++
	}
	if req.OutOfOrder {
		wk.late++
	}
	if rc.OnResponse != nil {
		rc.OnResponse(req, resp.StatusCode, resp.Header, end, lat)
	}
}
