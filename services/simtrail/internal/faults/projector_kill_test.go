package faults

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3"
	"github.com/simtrail/simtrail/pkg/events"
	"github.com/simtrail/simtrail/pkg/projection"
)

// projectorCase describes a projector and the per-SIM endpoints whose JSON
// must be identical to a clean rebuild.
type projectorCase struct {
	name  string
	paths func(iccid string) []string
	fleet []string // fleet-wide endpoints
}

var projectorCases = []projectorCase{
	{name: "timeline", paths: func(id string) []string {
		return []string{
			"/v1/sims/" + id,
			"/v1/sims/" + id + "/usage?granularity=day",
			"/v1/sims/" + id + "/usage?granularity=hour&group_by=location",
			"/v1/sims/" + id + "/usage?granularity=month",
			"/v1/sims/" + id + "/events?limit=500",
		}
	}},
	{name: "thresholds", paths: func(id string) []string {
		return []string{"/v1/sims/" + id + "/thresholds"}
	}, fleet: []string{"/v1/thresholds?min_percent=0&limit=500"}},
}

// thresholdsBuilds answers whether the thresholds package compiles yet (it
// is being finished concurrently); the suite waits for it, bounded.
func thresholdsBuilds(t *testing.T) error {
	t.Helper()
	deadline := time.Now().Add(time.Duration(pick(5, 300)) * time.Second)
	for {
		cmd := exec.Command("go", "build", ".")
		cmd.Dir = filepath.Join("..", "..", "..", "thresholds")
		out, err := cmd.CombinedOutput()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%v: %s", err, out)
		}
		time.Sleep(5 * time.Second)
	}
}

// TestProjectorKilledUnderLoad SIGKILLs each projector process at random
// instants while webhooks flow, restarts it on the same data directory, and
// requires its read model to end identical, SIM by SIM, to a clean build
// from sequence 1 by a fresh process.
func TestProjectorKilledUnderLoad(t *testing.T) {
	needFaults(t)
	for _, pc := range projectorCases {
		t.Run(pc.name, func(t *testing.T) {
			if pc.name == "thresholds" {
				if err := thresholdsBuilds(t); err != nil {
					t.Skipf("thresholds package does not build yet: %v", err)
				}
			}
			nodes := newNATSCluster(t, 1, natsOpts{})
			startAll(t, nodes)
			url := nodes[0].url()
			ing := startIngest(t, url)
			c := newClient(16)
			waitReady(t, c, ing.base, 60*time.Second)

			dataDir := t.TempDir()
			sims := 40
			total := pick(8000, 30000)
			minKills := pick(6, 20)
			bodies := uniqueBodies(total, sims, "projkill-"+pc.name)
			var answered atomic.Int64
			doneCh := make(chan []outcome, 1)
			loadDone := make(chan struct{})
			go func() {
				outs := sendAll(c, ing.base, bodies, 4, func(int, outcome) { answered.Add(1) })
				close(loadDone)
				doneCh <- outs
			}()

			svc := startService(t, pc.name, url, "--data-dir", dataDir)
			rng := rand.New(rand.NewPCG(1, uint64(len(pc.name))))
			// Keep killing while the load runs, at least minKills times
			// (bounded).
			kills := 0
			for kills < 200 && (kills < minKills || !closed(loadDone)) {
				k := kills
				// Kill at a random instant of the running projector: some
				// kills land mid-batch, some between batches, some during
				// start-up's consumer re-creation.
				time.Sleep(time.Duration(50+rng.IntN(600)) * time.Millisecond)
				pos, _, _ := projStatus(c, svc.base, pc.name)
				svc.kill()
				t.Logf("kill %d at position %d (%d webhooks answered)", k+1, pos, answered.Load())
				svc = startService(t, pc.name, url, "--data-dir", dataDir)
				kills++
			}
			outs := <-doneCh
			r := row{Scenario: fmt.Sprintf("%s SIGKILL ×%d under load", pc.name, kills), Sent: total}
			for i, o := range outs {
				if o.ok() {
					r.OK++
					continue
				}
				r.Failed++
				if o = resend(c, ing.base, bodies[i], 20); !o.ok() {
					t.Fatalf("webhook %d never accepted: %d %v", i, o.status, o.err)
				}
				r.Resent++
			}
			// Every webhook again: retries of the same bytes must change
			// nothing (idempotency by event id).
			for i := 0; i < total; i += 7 {
				if o := resend(c, ing.base, bodies[i], 5); !o.ok() {
					t.Fatalf("duplicate %d: %d %v", i, o.status, o.err)
				}
			}
			last := lastEventSeq(t, url)
			waitPosition(t, c, svc.base, pc.name, last, 2*time.Minute)

			clean := startService(t, pc.name, url, "--data-dir", t.TempDir(), "--consumer-suffix", "clean")
			waitPosition(t, c, clean.base, pc.name, last, 2*time.Minute)
			diffs := compareModels(t, c, pc, svc.base, clean.base, sims)
			counts, _ := readStream(t, url)
			for _, b := range bodies {
				if n := counts[eventID(b)]; n == 0 {
					r.Lost++
				} else {
					r.Stored++
					if n > 1 {
						r.Dups++
					}
				}
			}
			svc.kill()
			integrityCheck(t, projection.CurrentPath(dataDir, pc.name))
			r.Note = fmt.Sprintf("read model vs clean rebuild: %d of %d endpoint bodies differ; integrity_check ok", diffs, sims*len(pc.paths(""))+len(pc.fleet))
			results.add(r)
			if diffs > 0 || r.Lost > 0 || r.Dups > 0 {
				t.Errorf("%+v", r)
			}
		})
	}
}

// projStatus reads position and lag of projection name from /v1/projections.
func projStatus(c *http.Client, base, name string) (pos, lag uint64, err error) {
	resp, err := c.Get(base + "/v1/projections")
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	var ans struct {
		Projections []projection.Status `json:"projections"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&ans); err != nil {
		return 0, 0, fmt.Errorf("status %d: %w", resp.StatusCode, err)
	}
	for _, p := range ans.Projections {
		if p.Name == name {
			return p.Position, p.Lag, nil
		}
	}
	return 0, 0, fmt.Errorf("no projection %s", name)
}

func waitPosition(t *testing.T, c *http.Client, base, name string, seq uint64, timeout time.Duration) {
	t.Helper()
	eventually(t, timeout, name+" reaches sequence "+fmt.Sprint(seq), func() error {
		pos, _, err := projStatus(c, base, name)
		if err != nil {
			return err
		}
		if pos < seq {
			return fmt.Errorf("position %d", pos)
		}
		return nil
	})
}

// lastEventSeq is the stream sequence of the newest canonical event.
func lastEventSeq(t *testing.T, url string) uint64 {
	t.Helper()
	js, done := connectJS(t, url)
	defer done()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, events.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	m, err := st.GetLastMsgForSubject(ctx, "simtrail.events.>")
	if err != nil {
		t.Fatal(err)
	}
	return m.Sequence
}

// get answers the body of GET base+path.
func get(c *http.Client, url string) (int, []byte, error) {
	resp, err := c.Get(url)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// compareModels asks both processes every endpoint of every SIM and counts
// the answers that differ (each difference is reported).
func compareModels(t *testing.T, c *http.Client, pc projectorCase, live, clean string, sims int) int {
	t.Helper()
	var paths []string
	for s := range sims {
		paths = append(paths, pc.paths(iccid(s))...)
	}
	paths = append(paths, pc.fleet...)
	diffs := 0
	for _, p := range paths {
		s1, b1, err1 := get(c, live+p)
		s2, b2, err2 := get(c, clean+p)
		if err1 != nil || err2 != nil {
			t.Fatalf("GET %s: %v / %v", p, err1, err2)
		}
		if s1 != http.StatusOK {
			t.Errorf("GET %s: live answered %d: %s", p, s1, b1)
		}
		if s1 != s2 || !bytes.Equal(b1, b2) {
			diffs++
			t.Errorf("GET %s differs:\n live  %d %s\n clean %d %s", p, s1, tail(string(b1), 600), s2, tail(string(b2), 600))
		}
	}
	return diffs
}

// integrityCheck runs PRAGMA integrity_check on a read model file.
func integrityCheck(t *testing.T, path string) {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var res string
	if err := db.QueryRow("PRAGMA integrity_check").Scan(&res); err != nil {
		t.Fatalf("integrity_check %s: %v", path, err)
	}
	if res != "ok" {
		t.Fatalf("integrity_check %s: %s", path, res)
	}
}

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
