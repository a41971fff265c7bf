package bench

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestProfileDir: with ProfileDir every phase leaves a CPU profile and
// the heap at its start and end, each a gzipped pprof file.
func TestProfileDir(t *testing.T) {
	if testing.Short() {
		t.Skip("starts JetStream")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	prof := t.TempDir()
	var log bytes.Buffer
	if _, err := Run(ctx, Options{
		Phases: []string{"rebuild"}, Events: 300, Sims: 30,
		Dir: t.TempDir(), ProfileDir: prof, Log: &log,
	}); err != nil {
		t.Fatalf("bench: %v\n%s", err, log.String())
	}
	for _, phase := range []string{"fill", "sqlite-baseline", "rebuild-timeline", "rebuild-thresholds"} {
		for _, kind := range []string{".cpu.pprof", ".start.heap.pprof", ".end.heap.pprof"} {
			b, err := os.ReadFile(filepath.Join(prof, phase+kind))
			if err != nil {
				t.Errorf("%s%s: %v", phase, kind, err)
				continue
			}
			if len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
				t.Errorf("%s%s is not a gzipped profile (%d bytes)", phase, kind, len(b))
			}
		}
	}
}
