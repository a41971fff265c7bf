// Package projtest runs a projector in a separate process that a crash test
// can SIGKILL at any instant: the test binary re-executes itself as the
// child, which serves the projection's HTTP API on a random loopback port.
package projtest

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Environment of the child process.
const (
	envChild = "PROJTEST_CHILD"
	envNATS  = "PROJTEST_NATS_URL"
	envDB    = "PROJTEST_DB"
)

// Serve builds the child's projection over js and the SQLite file at
// dbPath, starts its loops, and returns the handler serving its query API
// and /v1/projections.
type Serve func(ctx context.Context, js jetstream.JetStream, dbPath string) (http.Handler, error)

// Main is the body of a crash-testing package's TestMain: in the child it
// serves until killed, otherwise it runs the tests.
func Main(m *testing.M, serve Serve) {
	if os.Getenv(envChild) != "1" {
		os.Exit(m.Run())
	}
	if err := runChild(serve); err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

func runChild(serve Serve) error {
	ctx := context.Background()
	nc, err := nats.Connect(os.Getenv(envNATS))
	if err != nil {
		return err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	h, err := serve(ctx, js, os.Getenv(envDB))
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Printf("LISTEN http://%s\n", ln.Addr())
	return http.Serve(ln, h)
}

// Child is one running projector process.
type Child struct {
	cmd *exec.Cmd
	URL string
}

// Start runs a child over natsURL and dbPath and waits until it listens.
func Start(t *testing.T, natsURL, dbPath string) *Child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envChild+"=1", envNATS+"="+natsURL, envDB+"="+dbPath)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &Child{cmd: cmd}
	t.Cleanup(c.Kill)
	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if u, ok := strings.CutPrefix(sc.Text(), "LISTEN "); ok {
				line <- u
				break
			}
		}
		_, _ = io.Copy(io.Discard, out)
	}()
	select {
	case c.URL = <-line:
	case <-time.After(30 * time.Second):
		t.Fatal("child did not start listening")
	}
	return c
}

// Kill sends SIGKILL: no deferred code runs, no clean shutdown.
func (c *Child) Kill() {
	if c.cmd.ProcessState != nil {
		return
	}
	_ = c.cmd.Process.Signal(syscall.SIGKILL)
	_ = c.cmd.Wait()
}

// Position asks the child for its projection position (0 when it does not
// answer yet).
func (c *Child) Position() uint64 {
	resp, err := http.Get(c.URL + "/v1/projections")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	var st struct {
		Projections []struct {
			Position uint64 `json:"position"`
		} `json:"projections"`
	}
	if json.NewDecoder(resp.Body).Decode(&st) != nil || len(st.Projections) == 0 {
		return 0
	}
	return st.Projections[0].Position
}

// WaitPosition polls until the child has applied at least seq.
func (c *Child) WaitPosition(seq uint64, within time.Duration) bool {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if c.Position() >= seq {
			return true
		}
		time.Sleep(2 * time.Millisecond) // poll interval; correctness never depends on it
	}
	return false
}
