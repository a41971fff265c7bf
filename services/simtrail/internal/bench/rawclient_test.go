package bench

import (
	"context"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// rawServer is an httptest server (127.0.0.1) with the answers the raw
// client must understand; conns counts the connections it accepted.
func rawServer(t *testing.T) (addr string, conns *atomic.Int64) {
	t.Helper()
	big := strings.Repeat("0123456789abcdef", 4096) // 64 KiB: more than the reader's buffer
	mux := http.NewServeMux()
	mux.HandleFunc("/length", func(w http.ResponseWriter, r *http.Request) {
		body := "length " + r.URL.RawQuery
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		io.WriteString(w, body)
	})
	mux.HandleFunc("/big", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(big)))
		io.WriteString(w, big)
	})
	mux.HandleFunc("/chunked", func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "first,")
		w.(http.Flusher).Flush() // no Content-Length now: chunked
		io.WriteString(w, big)
		w.(http.Flusher).Flush()
		io.WriteString(w, ",last")
	})
	mux.HandleFunc("/close", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Connection", "close")
		io.WriteString(w, "bye")
	})
	mux.HandleFunc("/nocontent", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("/slow", func(w http.ResponseWriter, _ *http.Request) {
		time.Sleep(20 * time.Millisecond) // a server slower than the pace asked of it
		io.WriteString(w, "slow")
	})
	mux.HandleFunc("/hang", func(_ http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	})
	// The raw answers are written as they stand, then the connection closes.
	raw := map[string]string{
		"/raw/cut":         "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this",
		"/raw/cut-head":    "HTTP/1.1 200 OK\r\nContent-Le",
		"/raw/cut-chunk":   "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabc",
		"/raw/nothing":     "",
		"/raw/no-length":   "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nbody",
		"/raw/gzip":        "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
		"/raw/bad-status":  "HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n",
		"/raw/bad-chunk":   "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
		"/raw/bad-length":  "HTTP/1.1 200 OK\r\nContent-Length: -3\r\n\r\n",
		"/raw/lower":       "HTTP/1.1 201 Created\r\ncontent-length: 3\r\nx: y\r\n\r\nabc",
		"/raw/trailer":     "HTTP/1.1 200 OK\r\nTRANSFER-ENCODING: Chunked\r\n\r\n3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nX-Trailer: 1\r\n\r\n",
		"/raw/interim":     "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
		"/raw/http10":      "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
		"/raw/conn-list":   "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive, CLOSE\r\n\r\nok",
		"/raw/no-reason":   "HTTP/1.1 200\r\nContent-Length: 2\r\n\r\nok",
		"/raw/lf-only":     "HTTP/1.1 200 OK\nContent-Length: 2\n\nok",
		"/raw/two-lengths": "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok",
	}
	mux.HandleFunc("/raw/", func(w http.ResponseWriter, r *http.Request) {
		conn, _, err := w.(http.Hijacker).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		io.WriteString(conn, raw[r.URL.Path])
	})
	mux.HandleFunc("/", http.NotFound)
	srv := httptest.NewUnstartedServer(mux)
	conns = &atomic.Int64{}
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String(), conns
}

// get asks target and checks the exact status and body.
func get(t *testing.T, c *rawClient, target string, wantStatus int, wantBody string) {
	t.Helper()
	status, body, err := c.Get(target)
	if err != nil {
		t.Fatalf("GET %s: %v", target, err)
	}
	if status != wantStatus || string(body) != wantBody {
		t.Fatalf("GET %s: %d %.80q, want %d %.80q", target, status, body, wantStatus, wantBody)
	}
}

func TestRawClientAnswers(t *testing.T) {
	addr, conns := rawServer(t)
	big := strings.Repeat("0123456789abcdef", 4096)
	c := newRawClient(context.Background(), addr)
	defer c.Close()

	get(t, c, "/length?a=1&b=2", 200, "length a=1&b=2")
	get(t, c, "/big", 200, big)
	get(t, c, "/chunked", 200, "first,"+big+",last")
	get(t, c, "/nocontent", 204, "")
	get(t, c, "/missing", 404, "404 page not found\n")
	get(t, c, "/length?again", 200, "length again")
	if n := conns.Load(); n != 1 {
		t.Fatalf("%d connections for keep-alive answers, want 1", n)
	}

	// Connection: close ends the connection after the answer; the next
	// request dials again.
	get(t, c, "/close", 200, "bye")
	get(t, c, "/length", 200, "length ")
	if n := conns.Load(); n != 2 {
		t.Fatalf("%d connections after Connection: close, want 2", n)
	}

	// Odd but valid framing, written raw; the raw server closes every
	// connection after its answer, so where the answer does not say so
	// the test closes the client's side too.
	for _, tc := range []struct {
		target, body string
		status       int
		closes       bool // the answer says the connection closes
	}{
		{"/raw/lower", "abc", 201, false},
		{"/raw/trailer", "abcde", 200, false},
		{"/raw/interim", "ok", 200, false},
		{"/raw/no-reason", "ok", 200, false},
		{"/raw/lf-only", "ok", 200, false},
		{"/raw/http10", "ok", 200, true},
		{"/raw/conn-list", "ok", 200, true},
	} {
		get(t, c, tc.target, tc.status, tc.body)
		if !tc.closes {
			c.Close()
		}
		get(t, c, "/length", 200, "length ")
	}
}

func TestRawClientErrors(t *testing.T) {
	addr, conns := rawServer(t)
	c := newRawClient(context.Background(), addr)
	defer c.Close()
	get(t, c, "/length", 200, "length ")
	for _, target := range []string{
		"/raw/cut", "/raw/cut-head", "/raw/cut-chunk", "/raw/nothing", "/raw/no-length", "/raw/gzip",
		"/raw/bad-status", "/raw/bad-chunk", "/raw/bad-length", "/raw/two-lengths",
	} {
		before := conns.Load()
		status, body, err := c.Get(target)
		if err == nil {
			t.Errorf("GET %s: %d %q, want an error", target, status, body)
		}
		// The broken connection is gone: the next request dials again
		// and succeeds.
		get(t, c, "/length", 200, "length ")
		if n := conns.Load(); n != before+1 {
			t.Errorf("GET %s: %d connections for it and the next request, want 1", target, n-before)
		}
	}

	// Nothing listens: the dial fails.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	if _, _, err := newRawClient(context.Background(), closed).Get("/"); err == nil {
		t.Errorf("GET on a closed port: no error")
	}
}

func TestRawClientContextEnds(t *testing.T) {
	addr, _ := rawServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	c := newRawClient(ctx, addr)
	defer c.Close()
	get(t, c, "/length", 200, "length ")
	time.AfterFunc(50*time.Millisecond, cancel)
	start := time.Now()
	if _, _, err := c.Get("/hang"); err == nil {
		t.Fatalf("GET /hang: no error after the context ended")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("GET /hang returned %s after the context ended", d)
	}
	if _, _, err := c.Get("/length"); err == nil {
		t.Fatalf("GET after the context ended: no error")
	}
}

// TestRunQueriesCounts checks runQueries' bookkeeping over the raw client:
// every answer is a query, non-200s are bad and the first is kept.
func TestRunQueriesCounts(t *testing.T) {
	addr, _ := rawServer(t)
	o := Options{QueryClients: 3, QueryDuration: 200 * time.Millisecond, Seed: 1}
	ok := runQueries(context.Background(), o, addr, "ok", 0, func(r *rand.Rand) string {
		return "/length?n=" + strconv.Itoa(r.IntN(10))
	})
	if ok.Queries == 0 || ok.Non200 != 0 || ok.FirstBad != "" || ok.Latency.Quantile(0.5) <= 0 {
		t.Errorf("ok: %d queries, %d bad (%s)", ok.Queries, ok.Non200, ok.FirstBad)
	}
	bad := runQueries(context.Background(), o, addr, "bad", 0, func(*rand.Rand) string { return "/missing" })
	if bad.Queries == 0 || bad.Non200 != bad.Queries || bad.FirstBad != "404 404 page not found\n" {
		t.Errorf("bad: %d queries, %d bad (%q)", bad.Queries, bad.Non200, bad.FirstBad)
	}
	cut := runQueries(context.Background(), o, addr, "cut", 0, func(*rand.Rand) string { return "/raw/cut" })
	if cut.Queries != 0 || cut.Non200 == 0 || !strings.Contains(cut.FirstBad, "unexpected EOF") {
		t.Errorf("cut: %d queries, %d bad (%q)", cut.Queries, cut.Non200, cut.FirstBad)
	}
	// Paced at 50/s over 200 ms: 10 queries are due, however fast the
	// server (flat out, the same server answers thousands).
	paced := runQueries(context.Background(), o, addr, "paced", 50, func(*rand.Rand) string { return "/length?n=1" })
	if paced.Queries < 5 || paced.Queries > 10+int64(o.QueryClients) || paced.Non200 != 0 {
		t.Errorf("paced at 50/s for %s: %d queries, %d bad (%s)", o.QueryDuration, paced.Queries, paced.Non200, paced.FirstBad)
	}
	// One client due every 5 ms against a 20 ms answer falls behind: the
	// latency runs from the due times, so it grows past the 20 ms a query
	// takes, and the queries still owed at the end are counted.
	one := Options{QueryClients: 1, QueryDuration: 200 * time.Millisecond, Seed: 1}
	late := runQueries(context.Background(), one, addr, "late", 200, func(*rand.Rand) string { return "/slow" })
	if late.Queries == 0 || late.Latency.Quantile(0.99) < 60*time.Millisecond || late.Unanswered < 20 {
		t.Errorf("paced past the server: %d queries, p99 %s, %d unanswered; want p99 over 60 ms and at least 20 unanswered",
			late.Queries, late.Latency.Quantile(0.99), late.Unanswered)
	}
	if ok.Unanswered != 0 {
		t.Errorf("a closed loop counted %d unanswered", ok.Unanswered)
	}
	if ok.Queries <= 10+int64(o.QueryClients) {
		t.Errorf("flat out for %s: only %d queries, so the paced check proves nothing", o.QueryDuration, ok.Queries)
	}
}
