package timeline_test

import (
	"bytes"
	"context"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/simtrail/simtrail/pkg/httpx"
	"github.com/simtrail/simtrail/pkg/natstest"
	"github.com/simtrail/simtrail/pkg/projection"
	"github.com/simtrail/simtrail/pkg/projection/projtest"
	simtrailv1 "github.com/simtrail/simtrail/proto/simtrail/v1"
	"github.com/simtrail/simtrail/services/timeline"
)

func TestMain(m *testing.M) { projtest.Main(m, serveChild) }

// serveChild is the projector process the crash test kills: a runner over
// the DB file and NATS server it is given, and the query API.
func serveChild(ctx context.Context, js jetstream.JetStream, dbPath string) (http.Handler, error) {
	p := timeline.NewProjector()
	db, err := projection.Open(ctx, dbPath, p.Migrations())
	if err != nil {
		return nil, err
	}
	log := slog.New(slog.DiscardHandler)
	// Small batches: more commits, so more kills land between and inside them.
	r, err := projection.NewRunner(ctx, p, db, js, projection.Config{Durable: "timeline-crash", BatchSize: 100, Logger: log})
	if err != nil {
		return nil, err
	}
	go func() { _ = r.Run(ctx) }()
	e := httpx.NewEcho(log)
	timeline.Routes(e, r)
	e.GET("/v1/projections", projection.ProjectionsHandler(r))
	return e, nil
}

// TestCrashRecovery streams a few thousand events (out of order, with
// duplicates) while SIGKILLing and restarting the projector process at
// random points, then compares every endpoint with a clean rebuild.
func TestCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test skipped with -short")
	}
	const nSIMs, perSIM, kills = 12, 250, 8
	rng := rand.New(rand.NewPCG(2026, 11))
	evs := genEvents(7, nSIMs, perSIM)
	// Out of provider-time order, and ~10 % of events stored twice.
	rng.Shuffle(len(evs), func(i, j int) { evs[i], evs[j] = evs[j], evs[i] })
	type item struct {
		ev     *simtrailv1.Event
		withID bool
	}
	var plan []item
	for _, ev := range evs {
		plan = append(plan, item{ev, true})
	}
	for range len(evs) / 10 {
		i := rng.IntN(len(plan) - 1)
		dup := item{evs[rng.IntN(len(evs))], false}
		plan = append(plan[:i+1], append([]item{dup}, plan[i+1:]...)...)
	}

	s := natstest.Run(t)
	s.Stream(t)
	_, js := s.Conn(t)
	dbPath := filepath.Join(t.TempDir(), "timeline.db")

	// The events stream in while the projector is killed and restarted.
	last := uint64(len(plan))
	published := make(chan struct{})
	go func() {
		defer close(published)
		for _, it := range plan {
			if _, err := tryPublish(js, it.ev, it.withID); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	targets := make([]uint64, kills)
	for i := range targets {
		targets[i] = 1 + uint64(rng.IntN(len(plan)-1))
	}
	slices.Sort(targets)
	c := projtest.Start(t, s.URL(), dbPath)
	killed := 0
	for _, target := range targets {
		// Kill at a random point: right after a restart (while it
		// recreates its consumer), or once it has applied a random part
		// of the log — it is then inside its next batch or waiting.
		if rng.IntN(5) > 0 {
			c.WaitPosition(target, 30*time.Second)
		}
		at := c.Position()
		c.Kill()
		killed++
		t.Logf("kill %d: child at %d (target %d)", killed, at, target)
		c = projtest.Start(t, s.URL(), dbPath)
	}
	<-published
	if killed < 5 {
		t.Fatalf("only %d kills", killed)
	}
	if !c.WaitPosition(last, 60*time.Second) {
		t.Fatalf("restarted projector stuck at %d, want %d", c.Position(), last)
	}

	clean := startProjection(t, js, filepath.Join(t.TempDir(), "clean.db"), "timeline-clean")
	clean.waitFor(t, last)

	iccids := genIccids(nSIMs)
	crashed := queryAll(t, c.URL, iccids, nil)
	rebuilt := queryAll(t, clean.url, iccids, nil)
	// Full timelines in big pages as well.
	for _, id := range iccids {
		for _, base := range []string{c.URL, clean.url} {
			body := pageAll(t, base, "/v1/sims/"+id+"/events?limit=500")
			r := response{name: "all events " + id, path: "/v1/sims/" + id + "/events?limit=500 (all pages)", status: http.StatusOK, body: body}
			if base == c.URL {
				crashed = append(crashed, r)
			} else {
				rebuilt = append(rebuilt, r)
			}
		}
	}
	if len(crashed) != len(rebuilt) {
		t.Fatalf("%d answers after crashes, %d after a clean rebuild", len(crashed), len(rebuilt))
	}
	for i := range crashed {
		a, b := crashed[i], rebuilt[i]
		if a.name != b.name || a.status != b.status || !bytes.Equal(a.body, b.body) {
			t.Errorf("%s (%s): after crashes\n%s\nclean rebuild\n%s", a.name, a.path, clip(a.body), clip(b.body))
		}
		if a.status != http.StatusOK {
			t.Errorf("%s: status %d", a.path, a.status)
		}
	}
	t.Logf("%d events (%d stored), %d kills, %d answers compared", len(evs), last, killed, len(crashed))
}

// pageAll follows next_cursor and concatenates the pages.
func pageAll(t *testing.T, base, path string) []byte {
	var all []byte
	cur := ""
	for {
		p := path
		if cur != "" {
			p += "&cursor=" + cur
		}
		_, body := get(t, base, p)
		all = append(all, body...)
		if cur = nextCursor(t, body); cur == "" {
			return all
		}
	}
}

func clip(b []byte) string {
	if len(b) > 3000 {
		return string(b[:3000]) + "…"
	}
	return string(b)
}
