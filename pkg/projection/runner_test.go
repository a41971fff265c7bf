package projection_test

import (
	"context"
	"database/sql"
	"errors"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"testing"
	"testing/fstest"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/simtrail/simtrail/pkg/events"
	"github.com/simtrail/simtrail/pkg/httpx"
	"github.com/simtrail/simtrail/pkg/natstest"
	"github.com/simtrail/simtrail/pkg/projection"
	simtrailv1 "github.com/simtrail/simtrail/proto/simtrail/v1"
)

// counter is a minimal projector: one row per event id, and a failure for
// the ICCID "0000000000poison" to exercise poison handling.
type counter struct{ applies int }

func (c *counter) Name() string { return "counter" }
func (c *counter) Migrations() fs.FS {
	return fstest.MapFS{"00001_init.sql": {Data: []byte(`-- +goose Up
CREATE TABLE seen (event_id TEXT PRIMARY KEY, seq INTEGER NOT NULL);
-- +goose Down
DROP TABLE seen;
`)}}
}
func (c *counter) Apply(ctx context.Context, tx *sql.Tx, m projection.Message) error {
	c.applies++
	if m.Event.GetIccid() == "0000000000poison" {
		return errors.New("cannot apply this one")
	}
	_, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO seen(event_id, seq) VALUES(?, ?)`, m.Event.GetId(), m.Seq)
	return err
}

func publish(t *testing.T, js jetstream.JetStream, iccid string, n int) uint64 {
	t.Helper()
	ev := &simtrailv1.Event{Id: events.ID(simtrailv1.Provider_PROVIDER_ROAMIFY, []byte(iccid+strconv.Itoa(n))),
		Provider: simtrailv1.Provider_PROVIDER_ROAMIFY, Kind: simtrailv1.Kind_KIND_STATUS, Iccid: iccid}
	data, err := events.Encode(ev)
	if err != nil {
		t.Fatal(err)
	}
	ack, err := js.Publish(context.Background(), events.Subject(ev), data)
	if err != nil {
		t.Fatal(err)
	}
	return ack.Sequence
}

func startRunner(t *testing.T, js jetstream.JetStream, path string, p projection.Projector) (*projection.Runner, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	db, err := projection.Open(ctx, path, p.Migrations())
	if err != nil {
		t.Fatal(err)
	}
	r, err := projection.NewRunner(ctx, p, db, js, projection.Config{BatchSize: 4, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	stop := func() { cancel(); <-done; db.Close() }
	return r, stop
}

func waitFor(t *testing.T, r *projection.Runner, seq uint64) {
	t.Helper()
	// Generous: CI machines run several race-enabled packages at once.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := r.WaitFor(ctx, seq); err != nil {
		t.Fatalf("position %d not reached (at %d): %v", seq, r.Position(), err)
	}
}

func TestRunnerPoisonCheckpointRestart(t *testing.T) {
	ns := natstest.Run(t)
	ns.Stream(t)
	nc, js := ns.Conn(t)
	path := filepath.Join(t.TempDir(), "counter.db")

	for i := range 5 {
		publish(t, js, "89000000000000000001", i)
	}
	poisonSeq := publish(t, js, "0000000000poison", 0)
	// A payload that is not an event at all.
	if err := nc.Publish("simtrail.events.status.roamify.89000000000000000001", []byte{0xff, 0x01}); err != nil {
		t.Fatal(err)
	}
	nc.Flush()
	var last uint64
	for i := 5; i < 10; i++ {
		last = publish(t, js, "89000000000000000001", i)
	}

	p := &counter{}
	r, stop := startRunner(t, js, path, p)
	waitFor(t, r, last)
	st, err := r.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.PoisonCount != 2 || st.Poison[1].Seq != poisonSeq || st.Poison[1].Attempts != 3 {
		t.Errorf("poison = %+v, want 2 entries, seq %d tried 3 times", st.Poison, poisonSeq)
	}
	var rows int
	r.DB().Reader.QueryRow(`SELECT count(*) FROM seen`).Scan(&rows)
	if rows != 10 {
		t.Errorf("rows = %d, want 10", rows)
	}
	stop()

	// Restart: the checkpoint is where the data is; nothing is re-applied.
	p2 := &counter{}
	r2, stop2 := startRunner(t, js, path, p2)
	defer stop2()
	if r2.Position() != last {
		t.Fatalf("position after restart %d, want %d", r2.Position(), last)
	}
	next := publish(t, js, "89000000000000000002", 0)
	waitFor(t, r2, next)
	if p2.applies != 1 {
		t.Errorf("after restart the projector applied %d events, want only the 1 new one", p2.applies)
	}
}

func TestMiddlewareMinPosition(t *testing.T) {
	ns := natstest.Run(t)
	ns.Stream(t)
	_, js := ns.Conn(t)
	r, stop := startRunner(t, js, filepath.Join(t.TempDir(), "c.db"), &counter{})
	defer stop()
	seq := publish(t, js, "89000000000000000001", 0)

	e := httpx.NewEcho(slog.New(slog.DiscardHandler))
	e.GET("/x", func(c echo.Context) error { return c.String(200, "ok") }, r.Middleware())
	srv := httptest.NewServer(e)
	defer srv.Close()

	get := func(q string) (int, string) {
		resp, err := http.Get(srv.URL + "/x" + q)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get(projection.HeaderPosition)
	}
	if code, pos := get("?min_position=" + strconv.FormatUint(seq, 10)); code != 200 || pos != strconv.FormatUint(seq, 10) {
		t.Errorf("read-your-write: %d position %s, want 200 and %d", code, pos, seq)
	}
	if code, _ := get("?min_position=abc"); code != 400 {
		t.Errorf("bad min_position: %d", code)
	}
	if code, _ := get("?min_position=999999"); code != 503 {
		t.Errorf("unreachable position: %d, want 503", code)
	}
}
