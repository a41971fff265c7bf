package alertwatcher

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/simtrail/simtrail/pkg/events"
	simtrailv1 "github.com/simtrail/simtrail/proto/simtrail/v1"
)

// Alert is the JSON form of a ThresholdCrossed alert handed to notifiers.
// ID is the deterministic alert id: receivers should de-duplicate by it,
// since delivery is at least once.
type Alert struct {
	ID            string    `json:"id"`
	Provider      string    `json:"provider"`
	ICCID         string    `json:"iccid,omitempty"`
	PoolID        string    `json:"pool_id,omitempty"`
	PeriodID      string    `json:"period_id,omitempty"`
	LevelPercent  int32     `json:"level_percent"`
	Source        string    `json:"source"`
	CrossedAt     time.Time `json:"crossed_at"`
	UsedBytes     *int64    `json:"used_bytes,omitempty"`
	AllowedBytes  *int64    `json:"allowed_bytes,omitempty"`
	CauseSequence uint64    `json:"cause_sequence,omitempty"`
	CauseEventID  string    `json:"cause_event_id,omitempty"`
	// Subject and StreamSequence say where the alert is in the log.
	Subject        string `json:"subject"`
	StreamSequence uint64 `json:"stream_sequence,omitempty"`
}

// AlertFromProto converts the protobuf alert.
func AlertFromProto(a *simtrailv1.ThresholdCrossed, subject string, seq uint64) Alert {
	out := Alert{
		ID:             a.GetId(),
		Provider:       events.ProviderName(a.GetProvider()),
		ICCID:          a.GetIccid(),
		PoolID:         a.GetPoolId(),
		PeriodID:       a.GetPeriodId(),
		LevelPercent:   a.GetLevelPercent(),
		Source:         a.GetSource(),
		CauseSequence:  a.GetCauseSequence(),
		CauseEventID:   a.GetCauseEventId(),
		Subject:        subject,
		StreamSequence: seq,
		UsedBytes:      a.UsedBytes,
		AllowedBytes:   a.AllowedBytes,
	}
	if a.GetCrossedAt() != nil {
		out.CrossedAt = a.GetCrossedAt().AsTime().UTC()
	}
	return out
}

// Notifier is told about every alert. An error makes the service retry the
// alert (with backoff), then send it to the dead-letter subject; wrap it
// with Permanent to skip the retries.
type Notifier interface {
	Notify(ctx context.Context, a Alert) error
}

// NotifierFunc adapts a function to Notifier.
type NotifierFunc func(ctx context.Context, a Alert) error

// Notify calls f.
func (f NotifierFunc) Notify(ctx context.Context, a Alert) error { return f(ctx, a) }

// WriterNotifier writes each alert as one JSON line.
type WriterNotifier struct {
	mu sync.Mutex
	w  io.Writer
}

// NewWriterNotifier writes to w (os.Stdout in the command).
func NewWriterNotifier(w io.Writer) *WriterNotifier { return &WriterNotifier{w: w} }

// Notify writes a as a JSON line.
func (n *WriterNotifier) Notify(_ context.Context, a Alert) error {
	b, err := json.Marshal(a)
	if err != nil {
		return Permanent(fmt.Errorf("encode alert: %w", err))
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, err := n.w.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("write alert: %w", err)
	}
	return nil
}

// WebhookNotifier posts each alert as JSON to a URL. 2xx is success; 408,
// 429, 5xx and transport errors are retried; any other status is permanent.
type WebhookNotifier struct {
	URL    string
	Client *http.Client
}

// NewWebhookNotifier posts to url with a 10 s timeout per request.
func NewWebhookNotifier(url string) *WebhookNotifier {
	return &WebhookNotifier{URL: url, Client: &http.Client{Timeout: 10 * time.Second}}
}

// Notify posts a. The alert id is also sent as Idempotency-Key.
func (n *WebhookNotifier) Notify(ctx context.Context, a Alert) error {
	b, err := json.Marshal(a)
	if err != nil {
		return Permanent(fmt.Errorf("encode alert: %w", err))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, n.URL, bytes.NewReader(b))
	if err != nil {
		return Permanent(fmt.Errorf("build webhook request: %w", err))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", a.ID)
	resp, err := n.Client.Do(req)
	if err != nil {
		return fmt.Errorf("post webhook: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return nil
	case resp.StatusCode == http.StatusRequestTimeout, resp.StatusCode == http.StatusTooManyRequests, resp.StatusCode >= 500:
		return fmt.Errorf("webhook answered %s", resp.Status)
	default:
		return Permanent(fmt.Errorf("webhook answered %s", resp.Status))
	}
}
