package main

import (
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
			return startCPUProfile(cmd)
		},
		PersistentPostRunE: func(cmd *cobra.Command, _ []string) error {
			stopCPUProfile()
			return writeAllocProfile(cmd)
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

var cpuProfile *os.File

// startCPUProfile starts the --cpu-profile profile, if one is asked for:
// an operator can see where a slow rebuild or a busy service spends its
// time without a debug build.
func startCPUProfile(cmd *cobra.Command) error {
	path, _ := cmd.Flags().GetString("cpu-profile")
	if path == "" {
		return nil
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return fmt.Errorf("cpu profile: %w", err)
	}
	cpuProfile = f
	return nil
}

// stopCPUProfile ends and writes the --cpu-profile profile.
func stopCPUProfile() {
	if cpuProfile != nil {
		pprof.StopCPUProfile()
		cpuProfile.Close()
		cpuProfile = nil
	}
}

// writeAllocProfile writes the --alloc-profile profile, if one is asked for.
func writeAllocProfile(cmd *cobra.Command) error {
	path, _ := cmd.Flags().GetString("alloc-profile")
	if path == "" {
		return nil
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("alloc profile: %w", err)
	}
	defer f.Close()
	if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
		return fmt.Errorf("alloc profile: %w", err)
	}
	return f.Close()
}

func newLogger(cmd *cobra.Command) *slog.Logger {
	lvl := slog.LevelInfo
	s, _ := cmd.Flags().GetString("log-level")
	_ = lvl.UnmarshalText([]byte(s))
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
}
