// Package ingest is simtrail's webhook receiver: it authenticates each
// provider's request, normalises it into a canonical event and answers 2xx
// only after JetStream has durably stored it (SPEC §3).
package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/simtrail/simtrail/pkg/events"
	"github.com/simtrail/simtrail/pkg/httpx"
	simtrailv1 "github.com/simtrail/simtrail/proto/simtrail/v1"
	"github.com/simtrail/simtrail/services/ingest/providers"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// MaxBody is the largest webhook body accepted (SPEC §3: over 1 MiB → 413).
const MaxBody = 1 << 20

// DefaultDroamHashHeaders and DefaultDroamTimestampHeaders are looked up in
// order: droam's docs do not name its headers (droam.md §9 #1).
var (
	DefaultDroamHashHeaders      = []string{"X-Hash", "X-Signature", "X-Auth-Hash", "Hash", "Signature"}
	DefaultDroamTimestampHeaders = []string{"X-Timestamp", "Timestamp"}
)

// Config holds the ingest settings. A provider with no secret is disabled
// and answers 404.
type Config struct {
	DroamSecrets          []string
	DroamHashHeaders      []string
	DroamTimestampHeaders []string
	// DroamWindow is the accepted clock skew of X-Timestamp (default 300 s).
	DroamWindow    time.Duration
	RoamifySecrets []string
	TruphoneTokens []string
	// TruphoneBasicUser/Password enable the optional HTTP basic auth check.
	TruphoneBasicUser     string
	TruphoneBasicPassword string
	// PublishTimeout bounds the wait for JetStream's ack (default 5 s).
	PublishTimeout time.Duration
	// AllowedIPs, when a provider has an entry, admits only requests from
	// those ranges to its route (403 otherwise). The client address is the
	// socket peer unless the HTTP server trusts named proxies.
	AllowedIPs map[string][]netip.Prefix
	// Now is the clock (tests); time.Now by default.
	Now func() time.Time
}

// Service is the ingest HTTP handler set.
type Service struct {
	cfg Config
	nc  *nats.Conn
	js  jetstream.JetStream
	log *slog.Logger

	mRequests *prometheus.CounterVec
	mPublish  prometheus.Histogram
}

// New builds the ingest service over a NATS connection.
func New(cfg Config, nc *nats.Conn, js jetstream.JetStream, log *slog.Logger, reg prometheus.Registerer) (*Service, error) {
	if len(cfg.DroamHashHeaders) == 0 {
		cfg.DroamHashHeaders = DefaultDroamHashHeaders
	}
	if len(cfg.DroamTimestampHeaders) == 0 {
		cfg.DroamTimestampHeaders = DefaultDroamTimestampHeaders
	}
	if cfg.DroamWindow <= 0 {
		cfg.DroamWindow = 300 * time.Second
	}
	if cfg.PublishTimeout <= 0 {
		cfg.PublishTimeout = 5 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.DroamSecrets = nonEmpty(cfg.DroamSecrets)
	cfg.RoamifySecrets = nonEmpty(cfg.RoamifySecrets)
	cfg.TruphoneTokens = nonEmpty(cfg.TruphoneTokens)
	s := &Service{cfg: cfg, nc: nc, js: js, log: log,
		mRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "simtrail_ingest_requests_total", Help: "Webhook requests by provider and outcome.",
		}, []string{"provider", "outcome"}),
		mPublish: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "simtrail_ingest_publish_seconds", Help: "Time from publish to JetStream ack.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{s.mRequests, s.mPublish} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("register metrics: %w", err)
			}
		}
	}
	for name, on := range map[string]bool{"droam": len(cfg.DroamSecrets) > 0, "roamify": len(cfg.RoamifySecrets) > 0, "truphone": len(cfg.TruphoneTokens) > 0} {
		if !on {
			log.Warn("provider disabled: no secret configured; its route answers 404", "provider", name)
		}
	}
	return s, nil
}

func nonEmpty(in []string) []string {
	var out []string
	for _, s := range in {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// Routes registers the webhook routes.
func (s *Service) Routes(e *echo.Echo) {
	e.POST("/webhooks/droam", s.droam, s.allowIPs("droam"))
	e.POST("/webhooks/roamify", s.roamify, s.allowIPs("roamify"))
	e.POST("/webhooks/truphone/:token", s.truphone, s.allowIPs("truphone"))
}

// allowIPs enforces a provider's optional source allow-list before any
// other work is done for the request.
func (s *Service) allowIPs(provider string) echo.MiddlewareFunc {
	ranges := s.cfg.AllowedIPs[provider]
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		if len(ranges) == 0 {
			return next
		}
		return func(c echo.Context) error {
			addr, err := netip.ParseAddr(c.RealIP())
			if err == nil {
				addr = addr.Unmap()
				for _, r := range ranges {
					if r.Contains(addr) {
						return next(c)
					}
				}
			}
			s.count(provider, "forbidden_ip")
			s.log.Warn("webhook from an address outside the allow-list", "provider", provider, "remote", c.RealIP())
			return httpx.NewError(http.StatusForbidden, "forbidden", "source address not allowed for this provider")
		}
	}
}

// ReadyCheck passes when NATS is connected.
func (s *Service) ReadyCheck(ctx context.Context) error {
	if !s.nc.IsConnected() {
		return errors.New("nats not connected: " + s.nc.Status().String())
	}
	if _, err := s.js.Stream(ctx, events.StreamName); err != nil {
		return fmt.Errorf("stream %s: %w", events.StreamName, err)
	}
	return nil
}

var (
	errUnauthorized = httpx.NewError(http.StatusUnauthorized, "unauthorized", "request authentication failed")
	errTooLarge     = httpx.NewError(http.StatusRequestEntityTooLarge, "body_too_large", "request body larger than 1 MiB")
)

func disabled(provider string) error {
	return httpx.NotFound("provider_disabled", provider+" webhooks are not enabled on this server (no secret configured)")
}

// bodyPool holds request body buffers; bodies up to maxPooledBody are
// returned to it once the handler is done with them.
var bodyPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

const maxPooledBody = 64 << 10

// putBody returns a buffer from readBody to the pool.
func putBody(bp *[]byte) {
	if bp != nil && cap(*bp) <= maxPooledBody {
		*bp = (*bp)[:0]
		bodyPool.Put(bp)
	}
}

// readBody reads at most MaxBody bytes; larger bodies are refused whole.
// The body is read into a pooled buffer sized from Content-Length; the
// caller must not keep the bytes after putBody(bp) (parsers copy what they
// keep, and publish encodes before it returns).
func readBody(c echo.Context) (body []byte, bp *[]byte, err error) {
	req := c.Request()
	if req.ContentLength > MaxBody {
		return nil, nil, errTooLarge
	}
	bp = bodyPool.Get().(*[]byte)
	buf := (*bp)[:0]
	if n := min(req.ContentLength+1, maxPooledBody); n > 1 && int64(cap(buf)) < n {
		// One byte more than announced, so the final read sees EOF
		// without growing the buffer. A claimed length is only trusted up
		// to maxPooledBody; beyond that the buffer grows as bytes arrive.
		buf = make([]byte, 0, n)
	}
	r := http.MaxBytesReader(c.Response(), req.Body, MaxBody)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, rerr := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			*bp = buf
			putBody(bp)
			var mbe *http.MaxBytesError
			if errors.As(rerr, &mbe) {
				return nil, nil, errTooLarge
			}
			return nil, nil, httpx.BadRequest("bad_body", "could not read request body")
		}
	}
	*bp = buf
	return buf, bp, nil
}

func (s *Service) count(provider, outcome string) {
	s.mRequests.WithLabelValues(provider, outcome).Inc()
}

func (s *Service) droam(c echo.Context) error {
	const name = "droam"
	if len(s.cfg.DroamSecrets) == 0 {
		s.count(name, "disabled")
		return disabled(name)
	}
	body, bp, err := readBody(c)
	if err != nil {
		s.count(name, "bad_body")
		return err
	}
	defer putBody(bp)
	h := c.Request().Header
	hash := firstHeader(h, s.cfg.DroamHashHeaders)
	stamp := firstHeader(h, s.cfg.DroamTimestampHeaders)
	now := s.cfg.Now()
	if hash == "" && stamp == "" {
		// droam's endpoint validation may come without auth headers
		// (droam.md §9 #4): answer a well-formed echo, refuse anything else.
		p, err := providers.ParseDroam(body, now)
		if err == nil && p.Echo {
			s.count(name, "echo")
			return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, body)
		}
		s.count(name, "unauthorized")
		return errUnauthorized
	}
	if err := providers.VerifyDroam(s.cfg.DroamSecrets, hash, stamp, now, s.cfg.DroamWindow); err != nil {
		s.count(name, "unauthorized")
		s.log.Info("droam request rejected", "reason", err, "remote", c.RealIP())
		return errUnauthorized
	}
	return s.accept(c, simtrailv1.Provider_PROVIDER_DROAM, body, now, providers.ParseDroam, false)
}

func (s *Service) roamify(c echo.Context) error {
	const name = "roamify"
	if len(s.cfg.RoamifySecrets) == 0 {
		s.count(name, "disabled")
		return disabled(name)
	}
	body, bp, err := readBody(c)
	if err != nil {
		s.count(name, "bad_body")
		return err
	}
	defer putBody(bp)
	if err := providers.VerifyRoamify(s.cfg.RoamifySecrets, body, c.Request().Header.Get("X-Roamify-Signature")); err != nil {
		s.count(name, "unauthorized")
		s.log.Info("roamify request rejected", "reason", err, "remote", c.RealIP())
		return errUnauthorized
	}
	return s.accept(c, simtrailv1.Provider_PROVIDER_ROAMIFY, body, s.cfg.Now(), providers.ParseRoamify, true)
}

func (s *Service) truphone(c echo.Context) error {
	const name = "truphone"
	if len(s.cfg.TruphoneTokens) == 0 {
		s.count(name, "disabled")
		return disabled(name)
	}
	// Authenticate before reading the body: the token is in the path.
	if err := providers.VerifyTruphone(s.cfg.TruphoneTokens, c.Param("token"), s.cfg.TruphoneBasicUser, s.cfg.TruphoneBasicPassword, c.Request().Header.Get("Authorization")); err != nil {
		s.count(name, "unauthorized")
		s.log.Info("truphone request rejected", "reason", err, "remote", c.RealIP())
		return errUnauthorized
	}
	body, bp, err := readBody(c)
	if err != nil {
		s.count(name, "bad_body")
		return err
	}
	defer putBody(bp)
	return s.accept(c, simtrailv1.Provider_PROVIDER_TRUPHONE, body, s.cfg.Now(), providers.ParseTruphone, false)
}

func firstHeader(h http.Header, names []string) string {
	for _, n := range names {
		if v := h.Get(n); v != "" {
			return v
		}
	}
	return ""
}

type parseFunc func([]byte, time.Time) (providers.Parsed, error)

// accepted is the answer to droam and Truphone.
type accepted struct {
	Status string          `json:"status"`
	Events []acceptedEvent `json:"events"`
}

type acceptedEvent struct {
	ID       string `json:"id"`
	Position uint64 `json:"position"`
}

// roamifyAck is the body Roamify's docs show on every event page.
type roamifyAck struct {
	Code   int    `json:"code"`
	Status string `json:"status"`
}

// accept parses an authenticated body, stores it and answers.
func (s *Service) accept(c echo.Context, p simtrailv1.Provider, body []byte, now time.Time, parse parseFunc, roamifyStyle bool) error {
	name := events.ProviderName(p)
	parsed, err := parse(body, now)
	if errors.Is(err, providers.ErrNotJSON) {
		return s.quarantine(c, p, body, now, err)
	}
	if err != nil {
		// Parsers only fail on non-JSON; anything else is a bug, but the
		// body is authenticated and must not be lost: keep it as other.
		s.log.Error("parser failed", "provider", name, "err", err)
		return s.quarantine(c, p, body, now, err)
	}
	if parsed.Echo {
		s.count(name, "echo")
		return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, body)
	}
	ev := parsed.Event
	ack, err := s.publish(events.Subject(ev), ev)
	if err != nil {
		s.count(name, "unavailable")
		return err
	}
	outcome := "stored"
	if ack.Duplicate {
		outcome = "duplicate"
	}
	s.count(name, outcome)
	c.Response().Header().Set("X-Event-Position", strconv.FormatUint(ack.Sequence, 10))
	c.Response().Header().Set("X-Event-Id", ev.GetId())
	if roamifyStyle {
		return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, roamifyAckBody)
	}
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, acceptedBody(ev.GetId(), ack.Sequence))
}

// roamifyAckBody is roamifyAck{200, "success"} as encoding/json writes it.
var roamifyAckBody = []byte(`{"code":200,"status":"success"}` + "\n")

// acceptedBody renders accepted{Status: "accepted", Events: [{id, pos}]}
// by appending, not through encoding/json's reflection: it is on every
// request's path. The id is lower hex, so it needs no escaping.
func acceptedBody(id string, pos uint64) []byte {
	b := make([]byte, 0, 64+len(id))
	b = append(b, `{"status":"accepted","events":[{"id":"`...)
	b = append(b, id...)
	b = append(b, `","position":`...)
	b = strconv.AppendUint(b, pos, 10)
	b = append(b, "}]}\n"...)
	return b
}

// quarantine keeps an authenticated non-JSON body under
// simtrail.quarantine.<provider> and answers 400. If it cannot be stored the
// answer is 503, so the provider retries and nothing is lost.
func (s *Service) quarantine(c echo.Context, p simtrailv1.Provider, body []byte, now time.Time, cause error) error {
	ev := &simtrailv1.Event{
		Id:                  events.ID(p, body),
		Provider:            p,
		Kind:                simtrailv1.Kind_KIND_OTHER,
		OccurredAt:          timestamppb.New(now),
		ReceivedAt:          timestamppb.New(now),
		OccurredAtIsReceipt: true,
		RawBody:             body,
		Body:                &simtrailv1.Event_Other{Other: &simtrailv1.OtherReceived{Reason: "quarantined: " + cause.Error()}},
	}
	if _, err := s.publish(events.QuarantineSubject(p), ev); err != nil {
		s.count(events.ProviderName(p), "unavailable")
		return err
	}
	s.count(events.ProviderName(p), "quarantined")
	return httpx.BadRequest("not_json", "request body is not JSON; it was kept in quarantine for inspection")
}

// encodePool holds event encoding buffers for publish.
var encodePool = sync.Pool{New: func() any { b := make([]byte, 0, 8192); return &b }}

const maxPooledEncoding = 128 << 10

// publish stores ev and waits for JetStream's ack. Any failure is a 503:
// nothing was claimed, the provider should retry.
//
// It is a plain NATS request to the stream's subject, as jetstream's
// PublishMsg makes it (same Nats-Expected-Stream check, same retries when
// no stream answers yet), without its per-call context and timer and with
// the ack read by parseAck: on the path of every webhook, those were a
// fifth of the publish cost. The wait is bounded by PublishTimeout.
func (s *Service) publish(subject string, ev *simtrailv1.Event) (ack pubAck, err error) {
	if !s.nc.IsConnected() {
		return ack, httpx.Unavailable("store_unavailable", "event store is not reachable; retry later", 5, nil)
	}
	// The encoding buffer is pooled: the request has copied the data into
	// the connection's buffers by the time it returns.
	dp := encodePool.Get().(*[]byte)
	defer func() {
		if cap(*dp) <= maxPooledEncoding {
			*dp = (*dp)[:0]
			encodePool.Put(dp)
		}
	}()
	data, err := events.AppendEncode((*dp)[:0], ev)
	if err != nil {
		return ack, fmt.Errorf("encode event: %w", err)
	}
	*dp = data
	msg := &nats.Msg{Subject: subject, Data: data, Header: make(nats.Header, 10)}
	events.SetHeaders(msg.Header, ev)
	msg.Header[jetstream.ExpectedStreamHeader] = expectStream
	start := time.Now()
	resp, err := s.nc.RequestMsg(msg, s.cfg.PublishTimeout)
	for r := 0; errors.Is(err, nats.ErrNoResponders) && r < jetstream.DefaultPubRetryAttempts; r++ {
		// No stream answered (a leader election, a restart): as jetstream
		// does, wait a moment and try again before giving up.
		time.Sleep(jetstream.DefaultPubRetryWait)
		resp, err = s.nc.RequestMsg(msg, s.cfg.PublishTimeout)
	}
	if err == nil {
		ack.Sequence, ack.Duplicate, err = parseAck(resp.Data, events.StreamName)
	}
	if err != nil {
		s.log.Warn("publish failed", "subject", subject, "err", err)
		return ack, httpx.Unavailable("store_unavailable", "event store did not acknowledge; retry later", 5, err)
	}
	s.mPublish.Observe(time.Since(start).Seconds())
	return ack, nil
}

// pubAck is what an answer needs of JetStream's ack.
type pubAck struct {
	Sequence  uint64
	Duplicate bool
}

// expectStream is the Nats-Expected-Stream header value of every publish
// (read-only, shared by all messages).
var expectStream = []string{events.StreamName}
