package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/simtrail/simtrail/services/ingest"
	"github.com/simtrail/simtrail/services/simtrail/internal/app"
	"github.com/simtrail/simtrail/services/simtrail/internal/loadgen"
)

// IngestResult compares durable ingest with a bare echo handler.
type IngestResult struct {
	Echo   *loadgen.Summary
	Ingest *loadgen.Summary
}

// Ratio is durable 2xx/s over the echo handler's 2xx/s.
func (r *IngestResult) Ratio() float64 {
	if r.Echo.OKRate() == 0 {
		return 0
	}
	return r.Ingest.OKRate() / r.Echo.OKRate()
}

// serveLocal serves h on a random 127.0.0.1 port until stop is called.
func serveLocal(h http.Handler) (addr string, stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 120 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return ln.Addr().String(), func() { _ = srv.Close() }, nil
}

func benchIngest(ctx context.Context, o Options, dir string, sampler *phaseSampler) (*IngestResult, error) {
	gen := loadgen.Config{Sims: o.Sims, Seed: o.Seed}
	run := func(url, label string) (*loadgen.Summary, error) {
		client := loadgen.NewClient(o.Concurrency)
		defer client.CloseIdleConnections()
		fmt.Fprintf(o.Log, "ingest: %s, %d connections, %s flat out\n", label, o.Concurrency, o.IngestDuration)
		return loadgen.Run(ctx, loadgen.RunConfig{
			URL: url, Concurrency: o.Concurrency, Duration: o.IngestDuration, Gen: gen, Client: client,
		})
	}

	// The baseline: echo with one POST route that only answers 200.
	sampler.phase("ingest echo baseline")
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.POST("/*", func(c echo.Context) error { return c.NoContent(http.StatusOK) })
	addr, stopEcho, err := serveLocal(e)
	if err != nil {
		return nil, err
	}
	echoSum, err := run("http://"+addr, "bare echo handler")
	stopEcho()
	if err != nil {
		return nil, err
	}

	// The real path: app wiring with ingest only, embedded JetStream.
	sampler.phase("ingest simtrail")
	a, stop, err := startSystem(ctx, app.Config{
		DataDir: dirJoin(dir, "ingest"),
		Ingest: &ingest.Config{
			DroamSecrets:   []string{loadgen.DevSecrets.Droam},
			RoamifySecrets: []string{loadgen.DevSecrets.Roamify},
			TruphoneTokens: []string{loadgen.DevSecrets.TruphoneToken},
		},
		Logger: o.Logger,
	})
	if err != nil {
		return nil, err
	}
	ingSum, err := run("http://"+a.Addr(), "simtrail ingest (durable ack)")
	if e := stop(); e != nil && err == nil {
		err = e
	}
	if err != nil {
		return nil, err
	}
	if ingSum.OK == 0 {
		return nil, errors.New("ingest answered no 2xx:\n" + ingSum.String())
	}
	return &IngestResult{Echo: echoSum, Ingest: ingSum}, nil
}
