package faults

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/simtrail/simtrail/pkg/projection"
)

// tmpfs mounts a small tmpfs at a new directory and unmounts it in
// t.Cleanup (after the processes using it, which are registered later and
// so killed first). Mounting needs root; the suite skips where it is not
// permitted.
func tmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tmpfs")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs (need root / CAP_SYS_ADMIN): %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Logf("umount %s: %v: %s; lazy unmount", dir, err, out)
			_ = exec.Command("umount", "-l", dir).Run()
		}
	})
	return dir
}

func remount(t *testing.T, dir, opts string) {
	t.Helper()
	if out, err := exec.Command("mount", "-o", "remount,"+opts, dir).CombinedOutput(); err != nil {
		t.Fatalf("remount %s %s: %v: %s", dir, opts, err, out)
	}
}

// fill writes a filler file until the filesystem is full and returns its
// path (remove it to give the space back).
func fill(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "filler")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for range 1 << 14 { // bounded: 1 GiB
		if _, err := f.Write(buf); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				return p
			}
			t.Fatalf("fill: %v", err)
		}
	}
	t.Fatal("fill: the filesystem never filled up")
	return ""
}

// paddedBodies are unique usage webhooks of about pad bytes each.
func paddedBodies(n, pad int, run string) [][]byte {
	out := uniqueBodies(n, 20, run)
	p := strings.Repeat("p", pad)
	for i, b := range out {
		out[i] = []byte(strings.Replace(string(b), `"reference_id":"`, `"reference_id":"`+p, 1))
	}
	return out
}

// TestJetStreamStoreFullOrReadOnly runs nats-server on a small tmpfs, fills
// it (or makes it read-only) under ingest, and checks the answers (2xx or a
// retryable 503, nothing else), then gives the space back and shows that
// every acknowledged webhook is in the stream and every refused one is
// stored exactly once when re-sent.
func TestJetStreamStoreFullOrReadOnly(t *testing.T) {
	needFaults(t)
	for _, mode := range []string{"full", "read-only"} {
		t.Run(mode, func(t *testing.T) {
			mnt := tmpfs(t, "8m")
			nodes := newNATSCluster(t, 1, natsOpts{})
			nodes[0].store = filepath.Join(mnt, "js")
			rewriteStore(t, nodes[0])
			nodes[0].start(t)
			ing := startIngest(t, nodes[0].url())
			c := newClient(8)
			waitReady(t, c, ing.base, 60*time.Second)

			// full: 12-24 MiB of webhooks into 8 MiB. read-only: the first
			// third (0.8-1.6 MiB) fits, the rest meets a read-only store.
			n, pad := pick(600, 1200), 20<<10
			if mode == "read-only" {
				n, pad = pick(300, 600), 8<<10
			}
			bodies := paddedBodies(n, pad, "js-"+mode)
			var outs []outcome
			if mode == "read-only" {
				// A third normally; then the server crashes and comes back
				// on a read-only store. (A tmpfs cannot be remounted
				// read-only under a process holding files open for writing
				// — mount answers EBUSY — so read-only is tested across a
				// restart, which is also what an ext4 errors=remount-ro
				// followed by a restart looks like.)
				outs = sendAll(c, ing.base, bodies[:n/3], 4, nil)
				nodes[0].kill()
				remount(t, mnt, "ro")
				nodes[0].p = startProc(t, "nats-server n1 (read-only store)", natsBin, []string{"-c", nodes[0].conf})
				eventually(t, 30*time.Second, "nats-server on a read-only store starts or exits", func() error {
					if nodes[0].p.exited() || natsReady.MatchString(nodes[0].p.log.String()) {
						return nil
					}
					return errors.New("neither")
				})
				t.Logf("nats-server on a read-only store: exited=%v", nodes[0].p.exited())
				outs = append(outs, sendAll(c, ing.base, bodies[n/3:], 4, nil)...)
			} else {
				outs = sendAll(c, ing.base, bodies, 4, nil)
			}
			r := row{Scenario: "JetStream store " + mode + " (tmpfs 8 MiB), then space back", Sent: n}
			var failed []int
			statuses := map[string]int{}
			for i, o := range outs {
				statuses[fmt.Sprint(o.status)]++
				switch {
				case o.ok():
					r.OK++
				case o.status == http.StatusServiceUnavailable || o.err != nil:
					r.Failed++
					failed = append(failed, i)
				default:
					t.Errorf("body %d: answer %d %v is neither 2xx nor 503", i, o.status, o.err)
				}
			}
			t.Logf("answers while %s: %v", mode, statuses)
			if r.Failed == 0 {
				t.Fatalf("the store never refused a write while %s", mode)
			}
			logTail := nodes[0].p.log.String()
			for _, re := range []string{`(?i)insufficient|no space|out of resources|read-only|resource limits|disabl`} {
				if m := regexp.MustCompile(re).FindString(logTail); m != "" {
					t.Logf("nats-server logged: …%s…", m)
				}
			}

			// Space back. nats-server sizes JetStream and may have disabled
			// it on a write error: restart it (SIGTERM) after the remount,
			// as an operator would.
			remount(t, mnt, "rw,size=64m")
			recovered := "remount only"
			if o := resend(c, ing.base, bodies[failed[0]], 10); !o.ok() {
				_ = nodes[0].p.cmd.Process.Signal(syscall.SIGTERM)
				<-nodes[0].p.done
				nodes[0].start(t)
				waitReady(t, c, ing.base, 60*time.Second)
				recovered = "remount + nats-server restart"
			}
			for _, i := range failed {
				if o := resend(c, ing.base, bodies[i], 50); !o.ok() {
					t.Fatalf("re-send %d after recovery: %d %v", i, o.status, o.err)
				}
				r.Resent++
			}
			counts, _ := readStream(t, nodes[0].url())
			lostAcked := 0
			for i, b := range bodies {
				switch k := counts[eventID(b)]; {
				case k == 0:
					r.Lost++
					if outs[i].ok() {
						lostAcked++
					}
				case k > 1:
					r.Dups++
					r.Stored++
				default:
					r.Stored++
				}
			}
			r.Note = fmt.Sprintf("answers %v; recovery: %s", statuses, recovered)
			results.add(r)
			if r.Lost != 0 || r.Dups != 0 {
				t.Errorf("%+v (acknowledged then lost: %d)", r, lostAcked)
			}
		})
	}
}

// rewriteStore points a node's config at its (new) store directory.
func rewriteStore(t *testing.T, n *natsNode) {
	t.Helper()
	b, err := os.ReadFile(n.conf)
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`store_dir: ".*"`)
	b = re.ReplaceAll(b, []byte(fmt.Sprintf("store_dir: %q", n.store)))
	if err := os.WriteFile(n.conf, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestSQLiteFullOrReadOnly puts a projector's data directory on a small
// tmpfs, fills it (or remounts it read-only) while webhooks keep coming,
// and checks that the projector logs the failure and does not advance its
// checkpoint, that the file passes PRAGMA integrity_check, and that once the
// space is back it catches up to exactly the state of a clean rebuild.
func TestSQLiteFullOrReadOnly(t *testing.T) {
	needFaults(t)
	pc := projectorCases[0] // timeline: the larger read model
	for _, mode := range []string{"full", "read-only"} {
		t.Run(mode, func(t *testing.T) {
			nodes := newNATSCluster(t, 1, natsOpts{})
			startAll(t, nodes)
			url := nodes[0].url()
			ing := startIngest(t, url)
			c := newClient(8)
			waitReady(t, c, ing.base, 60*time.Second)
			mnt := tmpfs(t, "8m")
			svc := startService(t, pc.name, url, "--data-dir", mnt)

			n1, n2 := 300, pick(2000, 6000)
			all := paddedBodies(n1+n2, 2<<10, "sqlite-"+mode)
			sendAll(c, ing.base, all[:n1], 4, nil)
			waitPosition(t, c, svc.base, pc.name, lastEventSeq(t, url), time.Minute)
			before, _, _ := projStatus(c, svc.base, pc.name)

			var filler string
			var stuck, last uint64
			state := "full"
			if mode == "full" {
				filler = fill(t, mnt)
			} else {
				// A tmpfs cannot be remounted read-only under an open
				// SQLite writer (EBUSY): the projector crashes, and is
				// restarted on its directory, now read-only.
				state = "read-only"
				svc.kill()
				remount(t, mnt, "ro")
				svc = startService(t, pc.name, url, "--data-dir", mnt)
			}
			outs := sendAll(c, ing.base, all[n1:], 4, nil)
			for i, o := range outs {
				if !o.ok() {
					t.Fatalf("ingest must not depend on the projector's disk: body %d: %d %v", i, o.status, o.err)
				}
			}
			last = lastEventSeq(t, url)
			// The projector must fail to commit and say so, without
			// advancing past what it committed, and keep answering.
			errRE := regexp.MustCompile(`(?i)level=(ERROR|WARN).*(full|readonly|read-only|disk I/O)`)
			svc.waitLog(t, errRE, time.Minute)
			var err error
			if stuck, _, err = projStatus(c, svc.base, pc.name); err != nil {
				t.Fatalf("projector stopped answering while its disk is %s: %v", state, err)
			}
			if mode == "full" && svc.exited() {
				t.Fatalf("projector died: %v", svc.err)
			}
			integrityCheck(t, projection.CurrentPath(mnt, pc.name))
			r := row{Scenario: "SQLite (timeline) data dir " + mode + " (tmpfs 8 MiB), then space back", Sent: n1 + n2, OK: n1 + n2}
			t.Logf("position before fault %d, while %s %d, stream %d", before, mode, stuck, last)
			if stuck >= last {
				t.Errorf("the projector applied everything (%d) while its disk was %s", stuck, mode)
			}

			// Space back: the projector retries and catches up.
			if mode == "full" {
				if err := os.Remove(filler); err != nil {
					t.Fatal(err)
				}
				remount(t, mnt, "size=64m")
			} else {
				remount(t, mnt, "rw,size=64m")
			}
			waitPosition(t, c, svc.base, pc.name, last, 2*time.Minute)
			clean := startService(t, pc.name, url, "--data-dir", t.TempDir(), "--consumer-suffix", "clean")
			waitPosition(t, c, clean.base, pc.name, last, 2*time.Minute)
			diffs := compareModels(t, c, pc, svc.base, clean.base, 20)
			svc.kill()
			integrityCheck(t, projection.CurrentPath(mnt, pc.name))
			counts, _ := readStream(t, url)
			for _, b := range all {
				if k := counts[eventID(b)]; k == 0 {
					r.Lost++
				} else {
					r.Stored++
					if k > 1 {
						r.Dups++
					}
				}
			}
			r.Note = fmt.Sprintf("checkpoint %d→%d while %s (stream at %d), caught up after space back; %d endpoint bodies differ from a clean rebuild; integrity_check ok",
				before, stuck, mode, last, diffs)
			results.add(r)
			if diffs != 0 || r.Lost != 0 || r.Dups != 0 {
				t.Errorf("%+v", r)
			}
		})
	}
}
