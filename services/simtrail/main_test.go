package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestCLIDevAndSend runs the README's flow with the real binary: `simtrail
// dev` in one process, `simtrail send` of the example files in another, then
// Ctrl-C (SIGINT) must stop dev cleanly and a restart must keep the data.
func TestCLIDevAndSend(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "simtrail")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		t.Fatalf("build: %v", err)
	}
	dataDir := t.TempDir()
	examples := filepath.Join("..", "ingest", "providers", "testdata")

	base, natsURL, stop := runDev(t, bin, dataDir)
	files, _ := filepath.Glob(filepath.Join(examples, "roamify", "esim.*.json"))
	tp, _ := filepath.Glob(filepath.Join(examples, "truphone", "[A-Z]*.json"))
	dr, _ := filepath.Glob(filepath.Join(examples, "droam", "rule.*.json"))
	files = append(append(files, tp...), dr...)
	send := exec.Command(bin, append([]string{"send", "--url", base}, files...)...)
	out, err := send.CombinedOutput()
	if err != nil {
		t.Fatalf("send: %v\n%s", err, out)
	}
	if got := strings.Count(string(out), "\t200\t"); got != len(files) {
		t.Fatalf("send: %d of %d accepted:\n%s", got, len(files), out)
	}

	// tail prints every stored event as one JSON line and stops at the end.
	tailOut, err := exec.Command(bin, "tail", "--nats-url", natsURL).Output()
	if err != nil {
		t.Fatalf("tail: %v", err)
	}
	if lines := strings.Count(string(tailOut), "\n"); lines != len(files) {
		t.Errorf("tail printed %d lines, want %d", lines, len(files))
	}
	if !strings.Contains(string(tailOut), `"subject":"simtrail.events.usage.roamify.8910300000051234567"`) {
		t.Errorf("tail output lacks the Roamify usage subject:\n%.500s", tailOut)
	}
	if code := getStatus(t, base+"/v1/sims/8910300000051234567/usage?granularity=day"); code != 200 {
		t.Errorf("usage: %d", code)
	}
	stop()

	base2, _, stop2 := runDev(t, bin, dataDir)
	defer stop2()
	resend := exec.Command(bin, "send", "--url", base2, files[0])
	out, err = resend.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "position=1\t") {
		t.Errorf("re-sending the first file after restart: %v\n%s (want position=1: the log kept it)", err, out)
	}
}

var (
	httpLine = regexp.MustCompile(`HTTP\s+(http://\S+)`)
	natsLine = regexp.MustCompile(`NATS\s+(nats://\S+)`)
)

// runDev starts `simtrail dev` on random ports and returns its base URL and
// NATS URL as printed in its banner.
func runDev(t *testing.T, bin, dataDir string) (string, string, func()) {
	t.Helper()
	cmd := exec.Command(bin, "dev", "--http-addr", "127.0.0.1:0", "--nats-port", "-1", "--data-dir", dataDir)
	cmd.Env = append(os.Environ(), "SIMTRAIL_NATS_URL=")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	found := make(chan [2]string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		var nats string
		for sc.Scan() {
			if m := natsLine.FindStringSubmatch(sc.Text()); m != nil {
				nats = m[1]
			}
			if m := httpLine.FindStringSubmatch(sc.Text()); m != nil {
				// The banner prints HTTP first, NATS on the next line.
				sc.Scan()
				if m2 := natsLine.FindStringSubmatch(sc.Text()); m2 != nil {
					nats = m2[1]
				}
				select {
				case found <- [2]string{m[1], nats}:
				default:
				}
			}
		}
	}()
	var addrs [2]string
	select {
	case addrs = <-found:
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Fatal("dev did not print its addresses within 60s")
	}
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		_ = cmd.Process.Signal(syscall.SIGINT)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("dev did not exit cleanly on SIGINT: %v", err)
			}
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			t.Error("dev did not stop within 30s of SIGINT")
		}
	}
	t.Cleanup(stop)
	return addrs[0], addrs[1], stop
}

func getStatus(t *testing.T, url string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}
