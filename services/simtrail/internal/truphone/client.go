// Package truphone registers per-SIM notification webhooks with the Truphone /
// 1GLOBAL Connect API (providers/truphone.md §1–§3).
//
// Registration is per ICCID and per notification type. Every request carries
// an OAuth2 bearer token obtained with the client-credentials grant from
// Truphone's Keycloak (cached and fetched again 30 s before it expires), a
// fresh X-Correlation-ID, and passes a shared rate limiter (the API allows
// 1 000 requests per minute per endpoint and credential).
//
// The package holds no CLI code; `simtrail truphone` wires flags to it.
package truphone

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
	"golang.org/x/time/rate"
)

// Documented endpoints (truphone.md §1, §2).
const (
	DefaultAPIBase  = "https://services.truphone.com/connect-api"
	DefaultTokenURL = "https://services.truphone.com/auth/realms/tru-staff/protocol/openid-connect/token"
)

// tokenEarlyExpiry: the access token lives 5 minutes; fetch a new one this
// long before it expires so a request never goes out with a token that dies
// on the way (truphone.md §2).
const tokenEarlyExpiry = 30 * time.Second

// maxBody bounds how much of a response we read; preferences and error
// bodies are tiny.
const maxBody = 1 << 20

// Limiter paces requests; *rate.Limiter implements it.
type Limiter interface {
	Wait(ctx context.Context) error
}

// Config configures a Client.
type Config struct {
	APIBase      string // default DefaultAPIBase
	TokenURL     string // default DefaultTokenURL
	ClientID     string
	ClientSecret string
	// Rate is the request rate in requests per second across all workers
	// (must be > 0 unless Limiter is set).
	Rate float64
	// Limiter overrides the limiter built from Rate.
	Limiter Limiter
	// HTTPClient carries both the token and the API requests; default: a
	// client with a 30 s timeout. Its Transport is wrapped, not replaced.
	HTTPClient *http.Client
	// DryRun builds every request and reports it without fetching a token or
	// sending anything.
	DryRun bool
	Log    *slog.Logger
}

// Client talks to the Connect preferences endpoints. It is safe for
// concurrent use.
type Client struct {
	base    *url.URL
	hc      *http.Client // adds the bearer token
	tokens  oauth2.TokenSource
	limiter Limiter
	dryRun  bool
	log     *slog.Logger
	newID   func() string

	// postOnly is set once a PUT answered 405 and the POST that followed
	// succeeded: this deployment speaks the v1.0 POST dialect, so later
	// registrations skip the PUT and use half the rate budget.
	postOnly atomic.Bool
}

// NewClient validates cfg and builds a Client. No request is made.
func NewClient(cfg Config) (*Client, error) {
	if cfg.APIBase == "" {
		cfg.APIBase = DefaultAPIBase
	}
	if cfg.TokenURL == "" {
		cfg.TokenURL = DefaultTokenURL
	}
	base, err := url.Parse(strings.TrimRight(cfg.APIBase, "/"))
	if err != nil || (base.Scheme != "https" && base.Scheme != "http") || base.Host == "" {
		return nil, fmt.Errorf("invalid API base URL %q", cfg.APIBase)
	}
	if u, err := url.Parse(cfg.TokenURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("invalid token URL %q", cfg.TokenURL)
	}
	if !cfg.DryRun && (cfg.ClientID == "" || cfg.ClientSecret == "") {
		return nil, errors.New("client id and client secret are required")
	}
	lim := cfg.Limiter
	if lim == nil {
		if !(cfg.Rate > 0) {
			return nil, fmt.Errorf("rate must be > 0 requests per second, got %v", cfg.Rate)
		}
		// Burst 1: an even pace, never a burst above the configured rate.
		lim = rate.NewLimiter(rate.Limit(cfg.Rate), 1)
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cc := &clientcredentials.Config{
		ClientID:     cfg.ClientID,
		ClientSecret: cfg.ClientSecret,
		TokenURL:     cfg.TokenURL,
		// The documented request puts the credentials in the form body.
		AuthStyle: oauth2.AuthStyleInParams,
	}
	// clientcredentials.Config.Token runs the grant every time; the reuse
	// source caches the result and refreshes early. The context only selects
	// the HTTP client; each token fetch is bounded by hc.Timeout.
	tokenCtx := context.WithValue(context.Background(), oauth2.HTTPClient, hc)
	ts := oauth2.ReuseTokenSourceWithExpiry(nil, grant{cc: cc, ctx: tokenCtx}, tokenEarlyExpiry)
	return &Client{
		base: base,
		hc: &http.Client{
			Transport:     &oauth2.Transport{Source: ts, Base: hc.Transport},
			CheckRedirect: hc.CheckRedirect,
			Jar:           hc.Jar,
			Timeout:       hc.Timeout,
		},
		tokens:  ts,
		limiter: lim,
		dryRun:  cfg.DryRun,
		log:     log,
		newID:   newCorrelationID,
	}, nil
}

type grant struct {
	cc  *clientcredentials.Config
	ctx context.Context
}

func (g grant) Token() (*oauth2.Token, error) { return g.cc.Token(g.ctx) }

// CheckAuth fetches (and caches) a token, so bad credentials fail once,
// before a batch, instead of once per SIM. It does nothing in dry-run mode.
func (c *Client) CheckAuth() error {
	if c.dryRun {
		return nil
	}
	if _, err := c.tokens.Token(); err != nil {
		return fmt.Errorf("fetch access token: %w", err)
	}
	return nil
}

// Notification is one registered webhook as the preferences endpoint reports it.
type Notification struct {
	Type       Type   `json:"type"` // normalised: SUBSCRITPION_END reads as SUBSCRIPTION_END
	WebhookURL string `json:"webhook_url"`
}

// Result reports one operation on one SIM. For a registration that fell back
// from PUT to POST, Method, Status and CorrelationID are those of the POST.
type Result struct {
	ICCID         string
	Type          Type // empty for Preferences
	Method        string
	URL           string
	Status        int    // 0 when nothing was received (dry run, network error)
	CorrelationID string // of the last request sent (or that would be sent)
	Body          []byte // the request body (dry run reporting)
	Notifications []Notification
	DryRun        bool
	Err           error
}

// OK reports whether the operation succeeded (or, in a dry run, would be sent).
func (r Result) OK() bool { return r.Err == nil }

type registerBody struct {
	WebhookURL string `json:"webhook_url"`
}

// Register asks Truphone to POST notifications of type typ for iccid to
// webhookURL. It sends PUT (newest docs) and falls back to POST (v1.0 docs) when
// the PUT is answered 404 or 405 (truphone.md §7 #1). The caller validates
// webhookURL (ValidateWebhookURL); iccid is validated here.
func (c *Client) Register(ctx context.Context, iccid string, typ Type, webhookURL string) Result {
	r := Result{ICCID: iccid, Type: typ}
	if err := c.checkOp(iccid, typ); err != nil {
		r.Err = err
		return r
	}
	body, err := json.Marshal(registerBody{WebhookURL: webhookURL})
	if err != nil {
		r.Err = fmt.Errorf("encode body: %w", err)
		return r
	}
	path := c.notificationPath(iccid, typ)
	if !c.postOnly.Load() {
		r = c.do(ctx, r, http.MethodPut, path, body, nil)
		if r.DryRun || (r.Status != http.StatusNotFound && r.Status != http.StatusMethodNotAllowed) {
			return r
		}
		c.log.Debug("PUT not accepted, falling back to POST", "iccid", iccid, "type", typ,
			"status", r.Status, "correlation_id", r.CorrelationID)
		putStatus := r.Status
		r = c.do(ctx, Result{ICCID: iccid, Type: typ}, http.MethodPost, path, body, nil)
		if putStatus == http.StatusMethodNotAllowed && r.OK() && !c.postOnly.Swap(true) {
			c.log.Info("Connect API refuses PUT; registering with POST from now on")
		}
		return r
	}
	return c.do(ctx, r, http.MethodPost, path, body, nil)
}

// Unregister removes the iccid's webhook for typ.
func (c *Client) Unregister(ctx context.Context, iccid string, typ Type) Result {
	r := Result{ICCID: iccid, Type: typ}
	if err := c.checkOp(iccid, typ); err != nil {
		r.Err = err
		return r
	}
	return c.do(ctx, r, http.MethodDelete, c.notificationPath(iccid, typ), nil, nil)
}

// Preferences reads the webhooks registered for iccid into r.Notifications.
func (c *Client) Preferences(ctx context.Context, iccid string) Result {
	r := Result{ICCID: iccid}
	if err := ValidateICCID(iccid); err != nil {
		r.Err = err
		return r
	}
	var prefs struct {
		Notifications []Notification `json:"notifications"`
	}
	r = c.do(ctx, r, http.MethodGet, "/v1/sim/"+iccid+"/preferences", nil, &prefs)
	for _, n := range prefs.Notifications {
		n.Type = normaliseType(string(n.Type))
		r.Notifications = append(r.Notifications, n)
	}
	return r
}

func (c *Client) checkOp(iccid string, typ Type) error {
	if err := ValidateICCID(iccid); err != nil {
		return err
	}
	if _, err := ParseType(string(typ)); err != nil || typ != normaliseType(string(typ)) {
		return fmt.Errorf("%w %q", ErrUnknownType, typ)
	}
	return nil
}

func (c *Client) notificationPath(iccid string, typ Type) string {
	return "/v1/sim/" + iccid + "/preferences/notifications/" + string(typ)
}

// do sends one request and fills r. A 2xx is success; anything else becomes
// an *APIError carrying the correlation id. When out is non-nil a 2xx body is
// decoded into it.
func (c *Client) do(ctx context.Context, r Result, method, path string, body []byte, out any) Result {
	r.Method, r.URL, r.Body = method, c.base.String()+path, body
	r.CorrelationID = c.newID()
	if c.dryRun {
		r.DryRun = true
		return r
	}
	if err := c.limiter.Wait(ctx); err != nil {
		r.Err = fmt.Errorf("%s %s: wait for rate limiter: %w", method, path, err)
		return r
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, r.URL, rd)
	if err != nil {
		r.Err = fmt.Errorf("%s %s: %w", method, path, err)
		return r
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Cache-Control", "no-cache")
	req.Header.Set("X-Correlation-ID", r.CorrelationID)
	resp, err := c.hc.Do(req)
	if err != nil {
		r.Err = fmt.Errorf("%s %s (correlation id %s): %w", method, path, r.CorrelationID, err)
		return r
	}
	defer resp.Body.Close()
	r.Status = resp.StatusCode
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if resp.StatusCode/100 != 2 {
		r.Err = newAPIError(method, path, resp.StatusCode, r.CorrelationID, data)
		return r
	}
	if err != nil {
		r.Err = fmt.Errorf("%s %s (correlation id %s): read response: %w", method, path, r.CorrelationID, err)
		return r
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			r.Err = fmt.Errorf("%s %s (correlation id %s): decode response: %w", method, path, r.CorrelationID, err)
		}
	}
	return r
}

// newCorrelationID returns a random UUID v4.
func newCorrelationID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand documents it)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
