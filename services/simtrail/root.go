package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime/pprof"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// envPrefix: every flag --foo-bar falls back to SIMTRAIL_FOO_BAR.
const envPrefix = "SIMTRAIL_"

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "simtrail",
		Short:         "Event-sourced usage monitoring for SIM and eSIM fleets",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if err := applyEnv(cmd.Flags()); err != nil {
				return err
			}
			return startProfiles(cmd)
		},
	}
	root.PersistentFlags().String("log-level", "info", "log level: debug, info, warn, error")
	root.PersistentFlags().String("cpu-profile", "", "write a CPU profile of the whole command to this file (go tool pprof)")
	root.PersistentFlags().String("alloc-profile", "", "write a profile of every allocation the command made to this file when it ends (go tool pprof -sample_index=alloc_space)")
	root.AddCommand(newDevCmd(), newIngestCmd(), newTimelineCmd(), newThresholdsCmd(), newSendCmd(), newTailCmd(), newRebuildCmd(), newLoadgenCmd(), newBenchCmd(), newTruphoneCmd())
	return root
}

// applyEnv fills every flag the user did not set from its SIMTRAIL_* variable.
func applyEnv(fs *pflag.FlagSet) error {
	var err error
	fs.VisitAll(func(f *pflag.Flag) {
		if err != nil || f.Changed {
			return
		}
		name := envPrefix + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(name); ok {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("%s: %w", name, e)
			}
		}
	})
	return err
}

// profiles are the files --cpu-profile and --alloc-profile name, open
// from the start of the command until finishProfiles, which main calls
// however the command ended: a failed or interrupted run is often the one
// worth profiling, and cobra skips its post-run hooks after an error.
var profiles struct{ cpu, alloc *os.File }

// startProfiles creates the profile files asked for and starts the CPU
// profile: an operator can see where a slow rebuild or a busy service
// spends its time without a debug build.
func startProfiles(cmd *cobra.Command) error {
	var err error
	if profiles.alloc, err = createProfile(cmd, "alloc-profile"); err != nil {
		return err
	}
	if profiles.cpu, err = createProfile(cmd, "cpu-profile"); profiles.cpu == nil {
		return err
	}
	if err := pprof.StartCPUProfile(profiles.cpu); err != nil {
		return fmt.Errorf("--cpu-profile: %w", err)
	}
	return nil
}

// finishProfiles ends and writes the CPU profile and writes the profile
// of every allocation the command made.
func finishProfiles() error {
	var errs []error
	if f := profiles.cpu; f != nil {
		pprof.StopCPUProfile()
		errs = append(errs, f.Close())
	}
	if f := profiles.alloc; f != nil {
		errs = append(errs, pprof.Lookup("allocs").WriteTo(f, 0), f.Close())
	}
	profiles.cpu, profiles.alloc = nil, nil
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("write profile: %w", err)
	}
	return nil
}

// createProfile creates the file the profile flag names; nil and no error
// when the flag is not set.
func createProfile(cmd *cobra.Command, flag string) (*os.File, error) {
	path, _ := cmd.Flags().GetString(flag)
	if path == "" {
		return nil, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("--%s: %w", flag, err)
	}
	return f, nil
}

func newLogger(cmd *cobra.Command) *slog.Logger {
	lvl := slog.LevelInfo
	s, _ := cmd.Flags().GetString("log-level")
	_ = lvl.UnmarshalText([]byte(s))
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
}
