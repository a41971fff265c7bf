package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/simtrail/simtrail/services/simtrail/internal/loadgen"
	"github.com/spf13/cobra"
)

func newLoadgenCmd() *cobra.Command {
	var (
		rc      loadgen.RunConfig
		noBar   bool
		seed    uint64
		sec     loadgen.Secrets
		dupRate float64
		oooRate float64
	)
	cmd := &cobra.Command{
		Use:   "loadgen",
		Short: "Send realistic, signed webhook traffic for N SIMs (load and soak testing)",
		Long: `loadgen simulates a fleet of SIMs spread over the three providers and posts
their webhooks, signed as each provider signs: Roamify usage snapshots whose
daily usage_list grows per (date, country) and status changes; droam rule
events with current/remaining usage in KB, status and IMEI changes; Truphone
USAGE_THRESHOLD and SUBSCRIPTION_END. Each SIM keeps its own state, so usage
grows monotonically within a package and days roll over. A share of the
requests are retries of bytes already sent (--duplicates) and a share arrive
after a newer event of the same SIM (--out-of-order).

It runs at --rate requests/s (0 = as fast as the server answers) over
--concurrency keep-alive connections until --duration or --requests is
spent, then prints a summary: sent, 2xx, non-2xx by status, duplicates sent,
latency percentiles. Secrets default to the dev-mode values.`,
		Example: `  simtrail loadgen --sims 10000 --rate 1000 --duration 30s
  simtrail loadgen --rate 0 --concurrency 64 --requests 200000`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if rc.Duration <= 0 && rc.Requests <= 0 {
				return errors.New("set --duration or --requests")
			}
			rc.Gen.Seed, rc.Gen.Secrets = seed, sec
			rc.Gen.DuplicateRate, rc.Gen.OutOfOrderRate = orOff(dupRate), orOff(oooRate)
			w := cmd.ErrOrStderr()
			if !noBar {
				total := rc.Requests
				if total <= 0 {
					total = -1 // unknown: a spinner with counts and rate
				}
				bar := progressbar.NewOptions64(total,
					progressbar.OptionSetWriter(w),
					progressbar.OptionSetDescription("webhooks"),
					progressbar.OptionShowCount(),
					progressbar.OptionShowIts(),
					progressbar.OptionSetItsString("req"),
					progressbar.OptionThrottle(200*time.Millisecond),
					progressbar.OptionFullWidth(),
					progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }),
				)
				rc.Progress = func(n int64) { _ = bar.Set64(n) }
				defer func() { _ = bar.Finish() }()
			}
			fmt.Fprintf(w, "loadgen: %d SIMs → %s, %d connections, rate %s\n", rc.Gen.Sims, rc.URL, rc.Concurrency, rateText(rc.Rate))
			sum, err := loadgen.Run(cmd.Context(), rc)
			if err != nil {
				return err
			}
			if rc.Progress != nil {
				rc.Progress(sum.Sent)
			}
			fmt.Fprintln(w)
			fmt.Fprint(cmd.OutOrStdout(), sum.String())
			if sum.OK < sum.Sent {
				return fmt.Errorf("%d of %d requests were not answered 2xx", sum.Sent-sum.OK, sum.Sent)
			}
			return nil
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&rc.URL, "url", "http://127.0.0.1:8080", "simtrail base URL")
	fs.IntVar(&rc.Gen.Sims, "sims", 1000, "number of simulated SIMs (a third per provider)")
	fs.Float64Var(&rc.Rate, "rate", 100, "target requests per second over all connections; 0 = flat out")
	fs.IntVar(&rc.Concurrency, "concurrency", 64, "concurrent keep-alive connections")
	fs.DurationVar(&rc.Duration, "duration", 0, "how long to send (e.g. 30s)")
	fs.Int64Var(&rc.Requests, "requests", 0, "how many requests to send")
	fs.Uint64Var(&seed, "seed", 1, "seed of the simulated fleet and traffic (same seed, same bodies)")
	fs.Float64Var(&dupRate, "duplicates", 0.03, "share of requests that retry bytes already sent")
	fs.Float64Var(&oooRate, "out-of-order", 0.05, "share of requests delivered after a newer event of the same SIM (≤ 0.5)")
	fs.StringVar(&sec.Droam, "droam-secret", devDroamSecret, "droam secret to sign with")
	fs.StringVar(&sec.Roamify, "roamify-secret", devRoamifySecret, "Roamify secret to sign with")
	fs.StringVar(&sec.TruphoneToken, "truphone-token", devTruphoneToken, "Truphone path token")
	fs.BoolVar(&noBar, "no-progress", false, "no progress bar")
	return cmd
}

// orOff maps a user's 0 ("none") to the generator's "disabled".
func orOff(v float64) float64 {
	if v == 0 {
		return -1
	}
	return v
}

func rateText(r float64) string {
	if r <= 0 {
		return "flat out"
	}
	return fmt.Sprintf("%.0f/s", r)
}
