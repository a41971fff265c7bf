package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// mainArgsEnv, when set in a re-run of this test binary, holds the
// command-line arguments (newline-separated) the re-run hands to main.
const mainArgsEnv = "SIMTRAIL_TEST_MAIN_ARGS"

// TestProfilesWrittenWhenTheCommandFails: --cpu-profile and
// --alloc-profile are written however the command ended (cobra skips
// post-run hooks after an error, so main finishes them itself). The
// command runs through main, in a re-run of this test binary, because main
// exits the process when the command fails.
func TestProfilesWrittenWhenTheCommandFails(t *testing.T) {
	if args := os.Getenv(mainArgsEnv); args != "" {
		os.Args = append([]string{"simtrail"}, strings.Split(args, "\n")...)
		main()
		os.Exit(0) // main returned: the command succeeded
	}
	dir := t.TempDir()
	cpu, alloc := filepath.Join(dir, "cpu.pprof"), filepath.Join(dir, "alloc.pprof")
	args := []string{"--cpu-profile", cpu, "--alloc-profile", alloc, "send", filepath.Join(dir, "missing.json")}
	cmd := exec.Command(os.Args[0], "-test.run=^TestProfilesWrittenWhenTheCommandFails$")
	cmd.Env = append(os.Environ(), mainArgsEnv+"="+strings.Join(args, "\n"))
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 || !bytes.Contains(out, []byte("simtrail:")) {
		t.Fatalf("send of a missing file: %v, want exit status 1 and the error; output:\n%s", err, out)
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
