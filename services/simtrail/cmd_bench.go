package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/simtrail/simtrail/services/simtrail/internal/bench"
	"github.com/spf13/cobra"
)

func newBenchCmd() *cobra.Command {
	var (
		o      bench.Options
		phases string
		quiet  bool
	)
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure simtrail against the quality bars of SPEC §9 (what `make bench` runs)",
		Long: `bench starts everything it needs in this process (embedded JetStream, SQLite
files in a temporary directory, HTTP on 127.0.0.1 random ports) and measures,
in one run:
  ingest     durable webhooks/s vs a bare echo handler, same load and concurrency
  rebuild    events/s of rebuilding each projection from --events stored events
             vs plain batched SQLite inserts of the same rows
  queries    31-day usage and fleet threshold queries, --query-clients clients
  freshness  webhook 2xx → visible in each read model at --fresh-rate
and prints one table with the machine, the commit and peak memory. Progress
goes to stderr, the table to stdout. See docs/performance.md.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if phases != "" {
				o.Phases = strings.Split(phases, ",")
			}
			if o.Reuse && o.Dir == "" {
				return errors.New("--reuse needs --dir: a temporary store is removed after each run")
			}
			if o.ProfileDir != "" {
				if err := os.MkdirAll(o.ProfileDir, 0o755); err != nil {
					return fmt.Errorf("profile dir: %w", err)
				}
			}
			o.Log = cmd.ErrOrStderr()
			o.Bar = !quiet
			o.Logger = newLogger(cmd).With("component", "bench")
			if lvl, _ := cmd.Flags().GetString("log-level"); lvl == "info" {
				// The services' info lines would bury the progress output.
				o.Logger = slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelWarn}))
			}
			res, err := bench.Run(cmd.Context(), o)
			if err != nil {
				return err
			}
			return res.WriteTable(cmd.OutOrStdout())
		},
	}
	fs := cmd.Flags()
	fs.IntVar(&o.Events, "events", 1_000_000, "events stored for the rebuild and query phases")
	fs.IntVar(&o.Sims, "sims", 10_000, "simulated SIMs")
	fs.Uint64Var(&o.Seed, "seed", 42, "seed of the generated traffic")
	fs.IntVar(&o.Concurrency, "concurrency", 64, "keep-alive connections of the ingest and freshness load")
	fs.DurationVar(&o.IngestDuration, "ingest-duration", 0, "each ingest run (default 10s)")
	fs.IntVar(&o.QueryClients, "query-clients", 50, "concurrent query clients")
	fs.DurationVar(&o.QueryDuration, "query-duration", 0, "each query run (default 5s)")
	fs.Float64Var(&o.QueryPacedRate, "query-paced-rate", 0, "total queries/s of the paced usage row (default 10000)")
	fs.Float64Var(&o.FreshRate, "fresh-rate", 1000, "webhooks/s of the freshness run")
	fs.DurationVar(&o.FreshDuration, "fresh-duration", 0, "the freshness run (default 10s)")
	fs.StringVar(&o.Dir, "dir", "", "keep the data here instead of a removed temporary directory")
	fs.StringVar(&phases, "phases", "", "comma-separated subset: ingest,rebuild,queries,freshness (default all)")
	fs.BoolVar(&quiet, "no-progress", false, "no progress bars")
	fs.StringVar(&o.ProfileDir, "profile-dir", "", "write per phase a CPU profile and the heap at its start and end here (<phase>.cpu.pprof, <phase>.start.heap.pprof, <phase>.end.heap.pprof)")
	fs.BoolVar(&o.Reuse, "reuse", false, "with --dir: serve over the store an earlier run filled and rebuilt today with the same --events, --sims and --seed (not with the rebuild phase)")
	return cmd
}
