// Package app assembles simtrail's components into one process: the
// embedded or external NATS connection, the ingest service, the projectors
// and the single HTTP listener. `simtrail dev` (what `make run` starts) and
// the per-service commands are all built from it, and the black-box tests
// start exactly this wiring.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/simtrail/simtrail/pkg/httpx"
	"github.com/simtrail/simtrail/pkg/natsx"
	"github.com/simtrail/simtrail/pkg/projection"
	"github.com/simtrail/simtrail/services/ingest"
	"github.com/simtrail/simtrail/services/thresholds"
	"github.com/simtrail/simtrail/services/timeline"
)

// Config is everything a simtrail process can run.
type Config struct {
	// Embedded starts an in-process nats-server (dev mode) instead of
	// dialling NATS.URLs.
	Embedded     bool
	EmbeddedHost string
	EmbeddedPort int // 4222 in dev; -1 for a random port
	NATS         natsx.ConnConfig
	Stream       natsx.StreamConfig
	// ManageStream creates or updates the SIMTRAIL stream at start-up.
	ManageStream bool

	HTTPAddr string
	DataDir  string
	// SyncAlways makes the embedded JetStream fsync every write before it
	// acknowledges (see docs/reliability.md).
	SyncAlways bool
	// APIKeys protect /v1/*; none means open (dev mode).
	APIKeys []httpx.APIKey
	// TrustedProxies may set X-Forwarded-For.
	TrustedProxies []*net.IPNet

	Ingest     *ingest.Config      // nil: no ingest in this process
	Timeline   bool                // run the timeline projector
	Thresholds *thresholds.Options // nil: no thresholds projector
	// ConsumerSuffix makes consumer names unique per replica.
	ConsumerSuffix string

	Logger *slog.Logger
}

// App is a running process.
type App struct {
	cfg    Config
	log    *slog.Logger
	reg    *prometheus.Registry
	e      *echo.Echo
	ns     *server.Server
	nc     *nats.Conn
	js     jetstream.JetStream
	ln     net.Listener
	srv    *http.Server
	dbs    []*projection.DB
	bg     []func(context.Context) error
	checks map[string]httpx.Check

	Runners []*projection.Runner
}

// Start builds and starts everything; Wait blocks until ctx ends and shuts
// down in order.
func Start(ctx context.Context, cfg Config) (a *App, err error) {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	a = &App{cfg: cfg, log: log, reg: prometheus.NewRegistry(), checks: map[string]httpx.Check{}}
	defer func() {
		if err != nil {
			a.close()
		}
	}()
	a.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	natsCfg := cfg.NATS
	natsCfg.Logger = log
	if cfg.Embedded {
		a.ns, err = natsx.StartEmbedded(natsx.EmbeddedConfig{
			Host: cfg.EmbeddedHost, Port: cfg.EmbeddedPort,
			StoreDir:   filepath.Join(cfg.DataDir, "jetstream"),
			SyncAlways: cfg.SyncAlways,
		})
		if err != nil {
			return nil, err
		}
		natsCfg.URLs = a.ns.ClientURL()
		log.Info("embedded NATS JetStream started", "url", natsCfg.URLs, "store", filepath.Join(cfg.DataDir, "jetstream"))
	}
	a.nc, err = natsx.Connect(natsCfg)
	if err != nil {
		return nil, err
	}
	a.js, err = jetstream.New(a.nc)
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	if cfg.ManageStream {
		if err := a.ensureStream(ctx); err != nil {
			return nil, err
		}
	}
	a.checks["nats"] = func(context.Context) error {
		if !a.nc.IsConnected() {
			return errors.New("nats " + a.nc.Status().String())
		}
		return nil
	}

	a.e = httpx.NewEcho(log)
	httpx.TrustProxies(a.e, cfg.TrustedProxies)
	queryAuth := httpx.BearerAuth(cfg.APIKeys)
	a.e.Use(func(next echo.HandlerFunc) echo.HandlerFunc {
		protected := queryAuth(next)
		return func(c echo.Context) error {
			if strings.HasPrefix(c.Request().URL.Path, "/v1/") {
				return protected(c)
			}
			return next(c)
		}
	})
	if cfg.Ingest != nil {
		svc, err := ingest.New(*cfg.Ingest, a.nc, a.js, log.With("service", "ingest"), a.reg)
		if err != nil {
			return nil, err
		}
		svc.Routes(a.e)
	}
	if cfg.Timeline {
		p := timeline.NewProjector()
		r, err := a.runner(ctx, p, nil)
		if err != nil {
			return nil, err
		}
		timeline.Routes(a.e, r)
	}
	if cfg.Thresholds != nil {
		p, err := thresholds.NewProjector(*cfg.Thresholds)
		if err != nil {
			return nil, err
		}
		var pub *thresholds.Publisher
		r, err := a.runner(ctx, p, func(uint64) {
			if pub != nil {
				pub.Notify()
			}
		})
		if err != nil {
			return nil, err
		}
		pub = thresholds.NewPublisher(r, a.js, log.With("service", "thresholds-alerts"))
		a.bg = append(a.bg, pub.Run)
		thresholds.Routes(a.e, r)
	}
	if len(a.Runners) > 0 {
		projection.ProjectionsRoutes(a.e, a.Runners...)
	}
	httpx.Health(a.e, a.reg, a.checks)

	a.ln, err = net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", cfg.HTTPAddr, err)
	}
	a.srv = &http.Server{
		Handler:           a.e,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	return a, nil
}

func (a *App) ensureStream(ctx context.Context) error {
	// With an external cluster the first attempt may race its start-up.
	deadline := time.Now().Add(30 * time.Second)
	for {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := natsx.EnsureStream(cctx, a.js, a.cfg.Stream)
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		a.log.Warn("stream not ready yet; retrying", "err", err)
		time.Sleep(time.Second)
	}
}

func (a *App) runner(ctx context.Context, p projection.Projector, after func(uint64)) (*projection.Runner, error) {
	// A finished online rebuild may have switched to a newer file.
	path := projection.CurrentPath(a.cfg.DataDir, p.Name())
	db, err := projection.Open(ctx, path, p.Migrations())
	if err != nil {
		return nil, err
	}
	a.dbs = append(a.dbs, db)
	durable := p.Name()
	if a.cfg.ConsumerSuffix != "" {
		durable += "-" + a.cfg.ConsumerSuffix
	}
	r, err := projection.NewRunner(ctx, p, db, a.js, projection.Config{
		Durable: durable, AfterCommit: after, Logger: a.log, Registerer: a.reg,
	})
	if err != nil {
		return nil, err
	}
	a.Runners = append(a.Runners, r)
	a.bg = append(a.bg, r.Run)
	a.checks[p.Name()] = r.ReadyCheck
	a.log.Info("projection ready", "name", p.Name(), "db", path, "position", r.Position())
	return r, nil
}

// Addr is the HTTP listener's address.
func (a *App) Addr() string { return a.ln.Addr().String() }

// NATSURL is the URL clients can use to reach this process's NATS.
func (a *App) NATSURL() string { return a.nc.ConnectedUrl() }

// Run serves until ctx ends, then shuts down: HTTP first (in-flight webhooks
// finish their publish and get their answer), then the projectors (the batch
// in progress commits or rolls back as a whole), then the databases, NATS
// and the embedded server.
func (a *App) Run(ctx context.Context) error {
	bgCtx, stopBG := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, f := range a.bg {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(bgCtx); err != nil {
				a.log.Error("background task stopped", "err", err)
			}
		}()
	}
	srvErr := make(chan error, 1)
	go func() { srvErr <- a.srv.Serve(a.ln) }()

	var err error
	select {
	case <-ctx.Done():
	case err = <-srvErr:
	}
	sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if e := a.srv.Shutdown(sctx); e != nil && !errors.Is(e, http.ErrServerClosed) {
		a.log.Warn("http shutdown", "err", e)
	}
	stopBG()
	wg.Wait()
	a.close()
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

func (a *App) close() {
	for _, db := range a.dbs {
		if err := db.Close(); err != nil {
			a.log.Warn("close database", "path", db.Path, "err", err)
		}
	}
	a.dbs = nil
	if a.nc != nil {
		// Projectors are stopped by now; flush their last acks, then close.
		_ = a.nc.FlushTimeout(2 * time.Second)
		a.nc.Close()
	}
	if a.ns != nil {
		a.ns.Shutdown()
		a.ns.WaitForShutdown()
		a.ns = nil
	}
}
