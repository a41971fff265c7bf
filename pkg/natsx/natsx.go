// Package natsx connects to NATS, runs the embedded server of the default
// setup, and creates or updates the SIMTRAIL stream.
package natsx

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/simtrail/simtrail/pkg/events"
)

// EmbeddedConfig configures the in-process server of `simtrail dev`.
type EmbeddedConfig struct {
	Host     string // 127.0.0.1 unless told otherwise
	Port     int    // 4222 in dev, -1 (random) in tests
	StoreDir string // JetStream file store
	// SyncAlways makes JetStream fsync every write before acknowledging it
	// (see docs/reliability.md); the default flushes on JetStream's interval.
	SyncAlways bool
	Logger     *slog.Logger
}

// StartEmbedded starts a JetStream-enabled nats-server in this process and
// waits until it accepts connections.
func StartEmbedded(cfg EmbeddedConfig) (*server.Server, error) {
	if cfg.Host == "" {
		cfg.Host = "127.0.0.1"
	}
	opts := &server.Options{
		ServerName: "simtrail-embedded",
		Host:       cfg.Host,
		Port:       cfg.Port,
		JetStream:  true,
		StoreDir:   cfg.StoreDir,
		NoSigs:     true,
		NoLog:      cfg.Logger == nil,
		SyncAlways: cfg.SyncAlways,
		// Webhook bodies are capped at 1 MiB; the event adds the parsed
		// fields on top of the raw body, so allow some headroom.
		MaxPayload: 4 << 20,
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("create nats server: %w", err)
	}
	if cfg.Logger != nil {
		s.SetLoggerV2(&slogAdapter{l: cfg.Logger.With("component", "nats-server")}, false, false, false)
	}
	s.Start()
	if !s.ReadyForConnections(15 * time.Second) {
		s.Shutdown()
		return nil, errors.New("nats server not ready within 15s")
	}
	return s, nil
}

// ConnConfig says how to reach an external NATS server or cluster.
type ConnConfig struct {
	URLs      string // comma-separated
	Name      string // client name, shown in server monitoring
	CredsFile string // JWT + nkey credentials file
	NKeyFile  string // nkey seed file
	User      string
	Password  string
	Token     string
	TLSCert   string
	TLSKey    string
	TLSCA     string
	Logger    *slog.Logger
}

// Connect dials NATS with reconnects forever: a service outlives NATS
// restarts, and ingest answers 503 while the connection is down.
func Connect(cfg ConnConfig) (*nats.Conn, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	opts := []nats.Option{
		nats.Name(cfg.Name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.RetryOnFailedConnect(true),
		nats.ReconnectBufSize(-1), // never buffer publishes while down: fail fast, answer 503
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			log.Warn("nats disconnected", "err", err)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("nats reconnected", "url", nc.ConnectedUrlRedacted())
		}),
	}
	if cfg.CredsFile != "" {
		opts = append(opts, nats.UserCredentials(cfg.CredsFile))
	}
	if cfg.NKeyFile != "" {
		o, err := nats.NkeyOptionFromSeed(cfg.NKeyFile)
		if err != nil {
			return nil, fmt.Errorf("load nkey seed: %w", err)
		}
		opts = append(opts, o)
	}
	if cfg.User != "" {
		opts = append(opts, nats.UserInfo(cfg.User, cfg.Password))
	}
	if cfg.Token != "" {
		opts = append(opts, nats.Token(cfg.Token))
	}
	if cfg.TLSCert != "" || cfg.TLSKey != "" {
		opts = append(opts, nats.ClientCert(cfg.TLSCert, cfg.TLSKey))
	}
	if cfg.TLSCA != "" {
		opts = append(opts, nats.RootCAs(cfg.TLSCA))
	}
	url := strings.TrimSpace(cfg.URLs)
	if url == "" {
		url = nats.DefaultURL
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect nats %s: %w", url, err)
	}
	return nc, nil
}

// StreamConfig holds the tunables of the SIMTRAIL stream.
type StreamConfig struct {
	Replicas int
	// Duplicates is JetStream's de-duplication window for Nats-Msg-Id.
	Duplicates time.Duration
}

// DefaultDuplicates is long enough for every provider's documented retries
// (Roamify: 3 retries minutes apart) with margin; older duplicates are caught
// by the projections, which are idempotent by event id.
const DefaultDuplicates = 2 * time.Hour

// EnsureStream creates the SIMTRAIL stream or updates it to cfg.
func EnsureStream(ctx context.Context, js jetstream.JetStream, cfg StreamConfig) (jetstream.Stream, error) {
	if cfg.Replicas < 1 {
		cfg.Replicas = 1
	}
	if cfg.Duplicates <= 0 {
		cfg.Duplicates = DefaultDuplicates
	}
	s, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        events.StreamName,
		Description: "simtrail event log: canonical provider events, derived alerts, quarantine",
		Subjects:    []string{events.StreamSubjects},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Replicas:    cfg.Replicas,
		Duplicates:  cfg.Duplicates,
		// The log is the source of truth: never age events out by default.
		MaxAge:     0,
		MaxMsgSize: 4 << 20,
	})
	if err != nil {
		return nil, fmt.Errorf("create or update stream %s: %w", events.StreamName, err)
	}
	return s, nil
}

// slogAdapter feeds nats-server's logger interface into slog.
type slogAdapter struct{ l *slog.Logger }

func (a *slogAdapter) Noticef(f string, v ...any) { a.l.Info(fmt.Sprintf(f, v...)) }
func (a *slogAdapter) Warnf(f string, v ...any)   { a.l.Warn(fmt.Sprintf(f, v...)) }
func (a *slogAdapter) Fatalf(f string, v ...any)  { a.l.Error(fmt.Sprintf(f, v...)) }
func (a *slogAdapter) Errorf(f string, v ...any)  { a.l.Error(fmt.Sprintf(f, v...)) }
func (a *slogAdapter) Debugf(f string, v ...any)  { a.l.Debug(fmt.Sprintf(f, v...)) }
func (a *slogAdapter) Tracef(f string, v ...any)  {}
