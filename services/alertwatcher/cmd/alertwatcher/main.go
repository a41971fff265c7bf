// Command alertwatcher is the example simtrail subscriber: it follows
// simtrail.alerts.threshold.> and prints each alert as a JSON line, or
// posts it to --notify-url. Every flag --foo-bar falls back to the
// environment variable SIMTRAIL_FOO_BAR.
//
//	alertwatcher --nats-url nats://127.0.0.1:4222 --notify-url https://example.test/hook
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/simtrail/simtrail/pkg/natsx"
	"github.com/simtrail/simtrail/services/alertwatcher"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(ctx, os.Args[1:], log); err != nil {
		log.Error("alertwatcher stopped", "err", err)
		os.Exit(1)
	}
}

type config struct {
	natsURL, natsCreds string
	durable, start     string
	notifyURL, poison  string
	maxRetries         int
}

func parseFlags(args []string) (config, error) {
	var c config
	fs := flag.NewFlagSet("alertwatcher", flag.ContinueOnError)
	fs.StringVar(&c.natsURL, "nats-url", "nats://127.0.0.1:4222", "NATS URL list, comma-separated")
	fs.StringVar(&c.natsCreds, "nats-creds", "", "NATS credentials file")
	fs.StringVar(&c.durable, "durable", alertwatcher.DefaultDurable, "durable consumer name (replicas with the same name share the work)")
	fs.StringVar(&c.start, "start", "new", "where a newly created consumer starts: new (alerts from now on) or all (every alert in the log)")
	fs.StringVar(&c.notifyURL, "notify-url", "", "post each alert as JSON to this URL (default: print JSON lines on stdout)")
	fs.StringVar(&c.poison, "poison-subject", alertwatcher.DefaultPoisonTopic, "dead-letter subject (stored in SIMTRAIL)")
	fs.IntVar(&c.maxRetries, "max-retries", alertwatcher.DefaultMaxRetries, "in-process retries before dead-lettering")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		env := "SIMTRAIL_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(env); ok && !set[f.Name] && err == nil {
			if serr := f.Value.Set(v); serr != nil {
				err = fmt.Errorf("%s: %w", env, serr)
			}
		}
	})
	if err != nil {
		return c, err
	}
	if c.start != "new" && c.start != "all" {
		return c, fmt.Errorf("--start must be new or all, not %q", c.start)
	}
	return c, nil
}

func run(ctx context.Context, args []string, log *slog.Logger) error {
	c, err := parseFlags(args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	log.Info("starting alertwatcher", "nats_url", c.natsURL, "durable", c.durable, "start", c.start,
		"notify_url_set", c.notifyURL != "", "poison_subject", c.poison, "max_retries", c.maxRetries)

	subConn, err := natsx.Connect(natsx.ConnConfig{URLs: c.natsURL, Name: "alertwatcher-sub", CredsFile: c.natsCreds, Logger: log})
	if err != nil {
		return err
	}
	defer subConn.Close()
	pubConn, err := natsx.Connect(natsx.ConnConfig{URLs: c.natsURL, Name: "alertwatcher-pub", CredsFile: c.natsCreds, Logger: log})
	if err != nil {
		return err
	}
	defer pubConn.Close()

	var n alertwatcher.Notifier = alertwatcher.NewWriterNotifier(os.Stdout)
	if c.notifyURL != "" {
		n = alertwatcher.NewWebhookNotifier(c.notifyURL)
	}
	setupCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	svc, err := alertwatcher.New(setupCtx, subConn, pubConn, n, alertwatcher.Config{
		Durable:     c.durable,
		PoisonTopic: c.poison,
		DeliverNew:  c.start == "new",
		MaxRetries:  c.maxRetries,
		Logger:      log,
	})
	if err != nil {
		return err
	}
	return svc.Run(ctx)
}
