package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
)

// TestProfilesWrittenWhenTheCommandFails: --cpu-profile and
// --alloc-profile are written by finishProfiles, which main calls however
// the command ended (cobra skips post-run hooks after an error).
func TestProfilesWrittenWhenTheCommandFails(t *testing.T) {
	dir := t.TempDir()
	cpu, alloc := filepath.Join(dir, "cpu.pprof"), filepath.Join(dir, "alloc.pprof")
	cmd := newRootCmd()
	cmd.SetArgs([]string{"--cpu-profile", cpu, "--alloc-profile", alloc, "send", filepath.Join(dir, "missing.json")})
	if err := cmd.ExecuteContext(context.Background()); err == nil {
		t.Fatal("send of a missing file succeeded")
	}
	if err := finishProfiles(); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{cpu, alloc} {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(b, []byte{0x1f, 0x8b}) { // pprof's gzipped protobuf
			t.Errorf("%s is not a profile: %d bytes %x", filepath.Base(p), len(b), b[:min(len(b), 8)])
		}
	}
}
