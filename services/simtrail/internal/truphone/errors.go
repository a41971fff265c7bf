package truphone

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"
)

// APIError is a non-2xx answer of the Connect API. Type and Messages come from
// the documented error body {"type": "...", "messages": ["..."]}
// (truphone.md §3); when the body is not in that shape, Body holds the start
// of it. Quote CorrelationID when reporting a problem to Truphone.
type APIError struct {
	Method        string
	Path          string
	Status        int
	Type          string
	Messages      []string
	Body          string
	CorrelationID string
}

func newAPIError(method, path string, status int, correlationID string, body []byte) *APIError {
	e := &APIError{Method: method, Path: path, Status: status, CorrelationID: correlationID}
	var eb struct {
		Type     string   `json:"type"`
		Messages []string `json:"messages"`
	}
	if json.Unmarshal(body, &eb) == nil && (eb.Type != "" || len(eb.Messages) > 0) {
		e.Type, e.Messages = eb.Type, eb.Messages
		return e
	}
	s := strings.TrimSpace(string(body))
	if len(s) > 200 {
		s = s[:200]
		for !utf8.ValidString(s) {
			s = s[:len(s)-1]
		}
		s += "…"
	}
	e.Body = s
	return e
}

// Error renders e on one line.
func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s: HTTP %d", e.Method, e.Path, e.Status)
	if e.Type != "" {
		b.WriteString(" " + e.Type)
	}
	if len(e.Messages) > 0 {
		b.WriteString(": " + strings.Join(e.Messages, "; "))
	} else if e.Body != "" {
		fmt.Fprintf(&b, ": %q", e.Body)
	}
	fmt.Fprintf(&b, " (correlation id %s)", e.CorrelationID)
	return b.String()
}
