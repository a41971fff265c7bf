package timeline_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/simtrail/simtrail/pkg/events"
	"github.com/simtrail/simtrail/pkg/httpx"
	"github.com/simtrail/simtrail/pkg/projection"
	simtrailv1 "github.com/simtrail/simtrail/proto/simtrail/v1"
	"github.com/simtrail/simtrail/services/timeline"
)

// harness is a running timeline projection with its HTTP API, wired the
// way the simtrail CLI wires it.
type harness struct {
	runner *projection.Runner
	db     *projection.DB
	url    string
}

func startProjection(t testing.TB, js jetstream.JetStream, dbPath, durable string) *harness {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	p := timeline.NewProjector()
	db, err := projection.Open(ctx, dbPath, p.Migrations())
	if err != nil {
		t.Fatalf("open db: %v", err)
	}
	log := slog.New(slog.DiscardHandler)
	r, err := projection.NewRunner(ctx, p, db, js, projection.Config{Durable: durable, Logger: log})
	if err != nil {
		t.Fatalf("new runner: %v", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = r.Run(ctx)
	}()
	e := httpx.NewEcho(log)
	timeline.Routes(e, r)
	srv := httptest.NewServer(e)
	t.Cleanup(func() {
		srv.Close()
		cancel()
		<-done
		_ = db.Close()
	})
	return &harness{runner: r, db: db, url: srv.URL}
}

func (h *harness) waitFor(t testing.TB, seq uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := h.runner.WaitFor(ctx, seq); err != nil {
		t.Fatalf("projection did not reach %d (at %d): %v", seq, h.runner.Position(), err)
	}
}

// publish stores ev on the stream; withID sends Nats-Msg-Id (and the
// CloudEvents headers), without it JetStream keeps a second copy.
func publish(t testing.TB, js jetstream.JetStream, ev *simtrailv1.Event, withID bool) uint64 {
	t.Helper()
	seq, err := tryPublish(js, ev, withID)
	if err != nil {
		t.Fatal(err)
	}
	return seq
}

// tryPublish is publish for goroutines other than the test's own.
func tryPublish(js jetstream.JetStream, ev *simtrailv1.Event, withID bool) (uint64, error) {
	data, err := events.Encode(ev)
	if err != nil {
		return 0, err
	}
	msg := nats.NewMsg(events.Subject(ev))
	msg.Data = data
	for k, v := range events.Headers(ev) {
		if !withID && (k == events.HeaderMsgID) {
			continue
		}
		msg.Header.Set(k, v)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ack, err := js.PublishMsg(ctx, msg)
	if err != nil {
		return 0, fmt.Errorf("publish: %w", err)
	}
	return ack.Sequence, nil
}

// get fetches base+path and returns the status and the body re-indented.
func get(t testing.TB, base, path string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(base + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	if resp.Header.Get(projection.HeaderPosition) == "" {
		t.Errorf("GET %s: no %s header", path, projection.HeaderPosition)
	}
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", "  "); err != nil {
		t.Fatalf("GET %s: body is not JSON: %v: %s", path, err, b)
	}
	out.WriteByte('\n')
	return resp.StatusCode, out.Bytes()
}

// nextCursor extracts next_cursor from an events page.
func nextCursor(t testing.TB, body []byte) string {
	t.Helper()
	var page struct {
		NextCursor *string `json:"next_cursor"`
	}
	if err := json.Unmarshal(body, &page); err != nil {
		t.Fatal(err)
	}
	if page.NextCursor == nil {
		return ""
	}
	return *page.NextCursor
}

// response is one endpoint answer, named for golden files.
type response struct {
	name   string
	path   string
	status int
	body   []byte
}

// queryAll asks every endpoint, with several parameter variants, for each
// SIM, following events pagination to the end.
func queryAll(t testing.TB, base string, iccids []string, extra map[string][]string) []response {
	t.Helper()
	var out []response
	ask := func(name, path string) []byte {
		st, body := get(t, base, path)
		out = append(out, response{name: name, path: path, status: st, body: body})
		return body
	}
	for _, id := range iccids {
		sim := "/v1/sims/" + id
		paths := []string{
			sim,
			sim + "/usage",
			sim + "/usage?granularity=hour",
			sim + "/usage?granularity=month",
			sim + "/usage?granularity=day&group_by=location",
			sim + "/usage?granularity=month&group_by=location",
			sim + "/usage?granularity=hour&group_by=location",
			sim + "/events",
			sim + "/events?kind=imei,status",
			sim + "/events?kind=threshold,lifecycle",
		}
		paths = append(paths, extra[id]...)
		for _, p := range paths {
			ask(fileName(p), p)
		}
		// Pagination with limit=2 across every page.
		cur := ""
		for page := 1; page < 100; page++ {
			p := sim + "/events?limit=2"
			if cur != "" {
				p += "&cursor=" + url.QueryEscape(cur)
			}
			body := ask(fileName(sim+"/events?limit=2")+"_page"+itoa(page), p)
			if cur = nextCursor(t, body); cur == "" {
				break
			}
		}
	}
	return out
}

func itoa(n int) string { return string(rune('0'+n/10)) + string(rune('0'+n%10)) }

// fileName turns a request path into a golden file stem.
func fileName(p string) string {
	b := []byte(p)
	for i, c := range b {
		switch {
		case c >= '0' && c <= '9', c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '-', c == '=':
		default:
			b[i] = '_'
		}
	}
	return string(bytes.TrimLeft(b, "_"))
}

func goldenPath(name string) string { return filepath.Join("testdata", "golden", name+".json") }
