package main

import (
	"fmt"
	"os"

	"github.com/simtrail/simtrail/services/simtrail/internal/app"
	"github.com/spf13/cobra"
)

func newDevCmd() *cobra.Command {
	var (
		nf       natsFlags
		inf      ingestFlags
		tf       thresholdFlags
		hf       httpFlags
		natsPort int
		natsSync bool
	)
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run the whole system in one process (embedded JetStream + SQLite, one HTTP port)",
		Long: `dev starts an embedded NATS server with JetStream on 127.0.0.1:4222 (unless
SIMTRAIL_NATS_URL / --nats-url names an external one), the ingest service, the
timeline and thresholds projectors, and one HTTP listener for webhooks, the
query API, /healthz, /readyz and /metrics. All state lives under --data-dir.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log := newLogger(cmd)
			icfg, err := inf.config(true, log)
			if err != nil {
				return err
			}
			topts, err := tf.options()
			if err != nil {
				return err
			}
			cfg := app.Config{
				Embedded: nf.url == "", EmbeddedHost: "127.0.0.1", EmbeddedPort: natsPort, SyncAlways: natsSync,
				NATS: nf.conn("simtrail-dev"), Stream: nf.stream(), ManageStream: true,
				Ingest: icfg, Timeline: true, Thresholds: topts, Logger: log,
			}
			if err := hf.apply(&cfg); err != nil {
				return err
			}
			a, err := app.Start(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, `
simtrail dev is running
  HTTP         http://%[1]s   (webhooks, query API, /healthz, /readyz, /metrics)
  NATS         %[2]s   (stream SIMTRAIL, subjects simtrail.>)
  data         %[3]s
  webhooks     POST /webhooks/droam, /webhooks/roamify, /webhooks/truphone/%[4]s
  try          bin/simtrail send --provider roamify services/ingest/providers/testdata/roamify/esim.usage.0*.json
  Ctrl-C stops; data is kept across restarts.

`, a.Addr(), a.NATSURL(), hf.dataDir, devTruphoneToken)
			return a.Run(cmd.Context())
		},
	}
	fs := cmd.Flags()
	nf.register(fs, "")
	inf.register(fs)
	tf.register(fs)
	hf.register(fs, "127.0.0.1:8080")
	fs.IntVar(&natsPort, "nats-port", 4222, "client port of the embedded NATS server (127.0.0.1 only)")
	fs.BoolVar(&natsSync, "nats-sync-always", false, "embedded JetStream fsyncs every write before acknowledging (slower, survives power loss)")
	return cmd
}

// serviceCmd builds `simtrail ingest|timeline|thresholds`: one service
// against an external NATS server or cluster.
func serviceCmd(use, short, defAddr string, setup func(cfg *app.Config, cmd *cobra.Command) error) *cobra.Command {
	var (
		nf     natsFlags
		hf     httpFlags
		suffix string
	)
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log := newLogger(cmd) // components add their own service or projection attribute
			cfg := app.Config{NATS: nf.conn("simtrail-" + use), Stream: nf.stream(), ConsumerSuffix: suffix, Logger: log}
			if err := hf.apply(&cfg); err != nil {
				return err
			}
			if err := setup(&cfg, cmd); err != nil {
				return err
			}
			a, err := app.Start(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			log.Info("listening", "http", a.Addr(), "nats", a.NATSURL())
			return a.Run(cmd.Context())
		},
	}
	fs := cmd.Flags()
	nf.register(fs, "nats://127.0.0.1:4222")
	hf.register(fs, defAddr)
	fs.StringVar(&suffix, "consumer-suffix", "", "suffix for the durable consumer name, unique per projector replica")
	return cmd
}

func newIngestCmd() *cobra.Command {
	var inf ingestFlags
	cmd := serviceCmd("ingest", "Run the webhook receiver alone (creates or updates the SIMTRAIL stream)", "127.0.0.1:8080",
		func(cfg *app.Config, cmd *cobra.Command) error {
			icfg, err := inf.config(false, newLogger(cmd))
			if err != nil {
				return err
			}
			cfg.Ingest = icfg
			cfg.ManageStream = true
			return nil
		})
	inf.register(cmd.Flags())
	return cmd
}

func newTimelineCmd() *cobra.Command {
	return serviceCmd("timeline", "Run the timeline projector and its query API alone", "127.0.0.1:8081",
		func(cfg *app.Config, _ *cobra.Command) error {
			cfg.Timeline = true
			return nil
		})
}

func newThresholdsCmd() *cobra.Command {
	var tf thresholdFlags
	cmd := serviceCmd("thresholds", "Run the thresholds projector, its alert publisher and query API alone", "127.0.0.1:8082",
		func(cfg *app.Config, _ *cobra.Command) error {
			opts, err := tf.options()
			cfg.Thresholds = opts
			return err
		})
	tf.register(cmd.Flags())
	return cmd
}
