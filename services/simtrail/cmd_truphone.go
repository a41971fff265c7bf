package main

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/simtrail/simtrail/services/simtrail/internal/truphone"
	"github.com/spf13/cobra"
)

// truphoneFlags are shared by register, unregister and list.
type truphoneFlags struct {
	apiBase, tokenURL        string
	clientID                 string
	clientSecret, secretFile string
	rate                     float64
	concurrency              int
	timeout                  time.Duration
	dryRun                   bool
	iccids                   []string
	iccidsFile               string
	types                    []string
	webhookURL               string
	allowHTTP                bool
}

func newTruphoneCmd() *cobra.Command {
	f := &truphoneFlags{}
	cmd := &cobra.Command{
		Use:   "truphone",
		Short: "Register, unregister and list per-SIM notification webhooks with the Truphone Connect API",
		Long: `Truphone / 1GLOBAL Connect sends notifications only for SIMs registered one by
one, once per type. These commands call the Connect preferences endpoints with an
OAuth2 client-credentials token, a fresh X-Correlation-ID per request and a rate
limit (the API allows 1000 requests per minute per endpoint).

Every flag falls back to SIMTRAIL_<FLAG> (e.g. SIMTRAIL_CLIENT_SECRET). The
client secret and the webhook path token are never printed.`,
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&f.apiBase, "api-base", truphone.DefaultAPIBase, "Connect API base URL (pre-production: https://services.truphone.com/connect-api-preprod)")
	pf.StringVar(&f.tokenURL, "token-url", truphone.DefaultTokenURL, "OAuth2 token endpoint (Keycloak)")
	pf.StringVar(&f.clientID, "client-id", "", "OAuth2 client id issued by Truphone/1GLOBAL")
	pf.StringVar(&f.clientSecret, "client-secret", "", "OAuth2 client secret (prefer SIMTRAIL_CLIENT_SECRET or --client-secret-file)")
	pf.StringVar(&f.secretFile, "client-secret-file", "", "file holding the OAuth2 client secret")
	pf.Float64Var(&f.rate, "rate", 10, "requests per second over all workers (API limit: 1000/min per endpoint)")
	pf.IntVar(&f.concurrency, "concurrency", 4, "requests in flight (the rate limit still applies)")
	pf.DurationVar(&f.timeout, "timeout", 30*time.Second, "per-request timeout (token and API)")
	pf.BoolVar(&f.dryRun, "dry-run", false, "print the requests that would be sent; fetch no token, send nothing")
	pf.StringSliceVar(&f.iccids, "iccid", nil, "ICCID, repeatable or comma-separated")
	pf.StringVar(&f.iccidsFile, "iccids-file", "", "file with one ICCID per line (# comments allowed)")

	typeFlag := func(c *cobra.Command) {
		c.Flags().StringSliceVar(&f.types, "type", []string{string(truphone.UsageThreshold), string(truphone.SubscriptionEnd)},
			"notification types: USAGE_THRESHOLD, SUBSCRIPTION_END, DOWNLOAD_PROGRESS")
	}
	urlFlag := func(c *cobra.Command, usage string) {
		c.Flags().StringVar(&f.webhookURL, "webhook-url", "", usage)
		c.Flags().BoolVar(&f.allowHTTP, "allow-http", false, "accept a plain http webhook URL (local tests only)")
	}

	register := &cobra.Command{
		Use:   "register",
		Short: "Register the webhook URL for each ICCID and type (PUT, falling back to POST)",
		Example: `  simtrail truphone register --iccids-file sims.txt \
    --webhook-url https://hooks.example.com/webhooks/truphone/$TOKEN --client-id simtrail`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return f.run(cmd, truphone.ActionRegister)
		},
	}
	typeFlag(register)
	urlFlag(register, "URL Truphone posts notifications to: https://<host>/webhooks/truphone/<token> (required)")

	unregister := &cobra.Command{
		Use:   "unregister",
		Short: "Remove the webhook for each ICCID and type (DELETE)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return f.run(cmd, truphone.ActionUnregister)
		},
	}
	typeFlag(unregister)

	list := &cobra.Command{
		Use:   "list",
		Short: "Show the webhooks registered for each ICCID (GET preferences)",
		Long: `list prints one line per registered notification: ICCID, type, URL (path token
masked). With --webhook-url each line also says whether the URL matches it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return f.run(cmd, truphone.ActionList)
		},
	}
	urlFlag(list, "expected webhook URL; each line says match or differs")

	cmd.AddCommand(register, unregister, list)
	return cmd
}

func (f *truphoneFlags) run(cmd *cobra.Command, action truphone.Action) error {
	log := newLogger(cmd).With("cmd", cmd.CommandPath())
	iccids, err := f.iccidList()
	if err != nil {
		return err
	}
	var types []truphone.Type
	if action != truphone.ActionList {
		for _, s := range f.types {
			t, err := truphone.ParseType(s)
			if err != nil {
				return fmt.Errorf("--type: %w", err)
			}
			types = appendUnique(types, t)
		}
		if len(types) == 0 {
			return errors.New("--type: at least one type is required")
		}
	}
	if action == truphone.ActionRegister || f.webhookURL != "" {
		if err := truphone.ValidateWebhookURL(f.webhookURL, f.allowHTTP); err != nil {
			return fmt.Errorf("--webhook-url: %w", err)
		}
		if !strings.Contains(f.webhookURL, "/webhooks/truphone/") {
			log.Warn("webhook URL does not end in /webhooks/truphone/<token>, the route simtrail ingest serves",
				"webhook_url", truphone.RedactURL(f.webhookURL))
		}
	}
	secret := f.clientSecret
	if f.secretFile != "" {
		b, err := os.ReadFile(f.secretFile)
		if err != nil {
			return fmt.Errorf("--client-secret-file: %w", err)
		}
		secret = strings.TrimSpace(string(b))
	}
	if !f.dryRun && (f.clientID == "" || secret == "") {
		return errors.New("--client-id and --client-secret (or --client-secret-file) are required")
	}
	client, err := truphone.NewClient(truphone.Config{
		APIBase: f.apiBase, TokenURL: f.tokenURL, ClientID: f.clientID, ClientSecret: secret,
		Rate: f.rate, HTTPClient: &http.Client{Timeout: f.timeout}, DryRun: f.dryRun, Log: log,
	})
	if err != nil {
		return err
	}
	ops := truphone.Ops(action, iccids, types, f.webhookURL)
	log.Info("truphone config", "api_base", f.apiBase, "token_url", f.tokenURL, "client_id", f.clientID,
		"client_secret_set", secret != "", "rate", f.rate, "concurrency", f.concurrency, "dry_run", f.dryRun,
		"sims", len(iccids), "types", types, "requests", len(ops))
	if err := client.CheckAuth(); err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	sum := client.Run(cmd.Context(), ops, f.concurrency, func(r truphone.Result) {
		f.print(out, action, r)
	})
	if f.dryRun {
		fmt.Fprintf(out, "%s: dry run, %d requests not sent, %d invalid\n", cmd.CommandPath(), sum.OK, sum.Failed)
	} else {
		fmt.Fprintf(out, "%s: %d ok, %d failed\n", cmd.CommandPath(), sum.OK, sum.Failed)
	}
	if sum.Failed > 0 {
		return fmt.Errorf("%d of %d requests failed", sum.Failed, len(ops))
	}
	return nil
}

// print writes one tab-separated line per result (per notification for list).
func (f *truphoneFlags) print(w io.Writer, action truphone.Action, r truphone.Result) {
	switch {
	case r.Err != nil:
		fmt.Fprintf(w, "FAILED\t%s\t%s\t%v\n", r.ICCID, orDash(string(r.Type)), r.Err)
	case r.DryRun:
		line := fmt.Sprintf("dry-run\t%s\t%s\t%s %s\tcorrelation_id=%s", r.ICCID, orDash(string(r.Type)), r.Method, r.URL, r.CorrelationID)
		if action == truphone.ActionRegister {
			line += "\twebhook_url=" + truphone.RedactURL(f.webhookURL)
		}
		fmt.Fprintln(w, line)
	case action == truphone.ActionList:
		if len(r.Notifications) == 0 {
			fmt.Fprintf(w, "ok\t%s\t-\t(no notifications)\n", r.ICCID)
		}
		for _, n := range r.Notifications {
			line := fmt.Sprintf("ok\t%s\t%s\t%s", r.ICCID, n.Type, truphone.RedactURL(n.WebhookURL))
			if f.webhookURL != "" {
				if n.WebhookURL == f.webhookURL {
					line += "\tmatch"
				} else {
					line += "\tdiffers"
				}
			}
			fmt.Fprintln(w, line)
		}
	default:
		fmt.Fprintf(w, "ok\t%s\t%s\t%s %d\tcorrelation_id=%s\n", r.ICCID, r.Type, r.Method, r.Status, r.CorrelationID)
	}
}

// iccidList merges --iccid and --iccids-file, validated, duplicates dropped.
func (f *truphoneFlags) iccidList() ([]string, error) {
	var all []string
	for _, s := range f.iccids {
		s = strings.TrimSpace(s)
		if err := truphone.ValidateICCID(s); err != nil {
			return nil, fmt.Errorf("--iccid: %w", err)
		}
		all = append(all, s)
	}
	if f.iccidsFile != "" {
		fh, err := os.Open(f.iccidsFile)
		if err != nil {
			return nil, fmt.Errorf("--iccids-file: %w", err)
		}
		defer fh.Close()
		list, err := truphone.ReadICCIDs(fh)
		if err != nil {
			return nil, fmt.Errorf("--iccids-file %s: %w", f.iccidsFile, err)
		}
		all = append(all, list...)
	}
	if len(all) == 0 {
		return nil, errors.New("no ICCID given (--iccid or --iccids-file)")
	}
	return appendUnique(nil, all...), nil
}

func appendUnique[T comparable](dst []T, vs ...T) []T {
	seen := make(map[T]bool, len(dst)+len(vs))
	for _, v := range dst {
		seen[v] = true
	}
	for _, v := range vs {
		if !seen[v] {
			seen[v] = true
			dst = append(dst, v)
		}
	}
	return dst
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
