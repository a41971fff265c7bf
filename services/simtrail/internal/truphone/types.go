package truphone

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
)

// Type is a notification type of the Connect preferences API.
type Type string

// The notification types (truphone.md §1.1). DOWNLOAD_PROGRESS is only in the
// 1GLOBAL documentation.
const (
	UsageThreshold   Type = "USAGE_THRESHOLD"
	SubscriptionEnd  Type = "SUBSCRIPTION_END"
	DownloadProgress Type = "DOWNLOAD_PROGRESS"
)

// subscriptionEndMisspelt is how the docs' enumerations (and the GET
// preferences example) spell SUBSCRIPTION_END; accepted when reading, never sent.
const subscriptionEndMisspelt = "SUBSCRITPION_END"

// DefaultTypes are registered when no type is given: the two types every
// documentation generation has.
var DefaultTypes = []Type{UsageThreshold, SubscriptionEnd}

// ErrUnknownType is returned by ParseType for a name that is not a known type.
var ErrUnknownType = errors.New("unknown notification type")

// ParseType reads a type name case-insensitively and accepts the documented
// misspelling SUBSCRITPION_END, returning the spelling the API's URLs use.
func ParseType(s string) (Type, error) {
	switch t := strings.ToUpper(strings.TrimSpace(s)); t {
	case string(UsageThreshold), string(SubscriptionEnd), string(DownloadProgress):
		return Type(t), nil
	case subscriptionEndMisspelt:
		return SubscriptionEnd, nil
	default:
		return "", fmt.Errorf("%w %q (want USAGE_THRESHOLD, SUBSCRIPTION_END or DOWNLOAD_PROGRESS)", ErrUnknownType, s)
	}
}

// normaliseType is ParseType for data read from the API: an unknown type is
// kept as sent rather than dropped, so a new type shows up in listings.
func normaliseType(s string) Type {
	if t, err := ParseType(s); err == nil {
		return t
	}
	return Type(s)
}

// ValidateICCID checks that s is 10 to 22 ASCII digits (ITU-T E.118 ICCIDs are
// 19–20 digits; the range leaves room for short test SIMs and padded forms).
// The ICCID goes into the URL path, so nothing else may pass.
func ValidateICCID(s string) error {
	if len(s) < 10 || len(s) > 22 {
		return fmt.Errorf("invalid ICCID %q: want 10 to 22 digits", s)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return fmt.Errorf("invalid ICCID %q: want 10 to 22 digits", s)
		}
	}
	return nil
}

// ReadICCIDs reads one ICCID per line; blank lines and lines starting with #
// are skipped, surrounding space is trimmed. Every ICCID is validated and the
// first invalid one is reported with its line number.
func ReadICCIDs(r io.Reader) ([]string, error) {
	var out []string
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if err := ValidateICCID(line); err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		out = append(out, line)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read ICCIDs: %w", err)
	}
	return out, nil
}

// ValidateWebhookURL checks the URL we ask Truphone to call. It must be an
// absolute https URL (http only when allowHTTP: the docs' examples are http,
// but the path token would then travel in clear text) with a host and without
// user info (Basic auth is configured by 1GLOBAL, not through the URL, and a
// password in the URL would be printed and stored by the provider).
func ValidateWebhookURL(raw string, allowHTTP bool) error {
	if raw == "" {
		return errors.New("webhook URL is required")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("invalid webhook URL: %w", err)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !allowHTTP {
			return fmt.Errorf("webhook URL %s is not https (use --allow-http only for local tests)", RedactURL(raw))
		}
	default:
		return fmt.Errorf("webhook URL %s: scheme must be https", RedactURL(raw))
	}
	if u.Host == "" || u.Hostname() == "" {
		return fmt.Errorf("webhook URL %s has no host", RedactURL(raw))
	}
	if u.User != nil {
		return errors.New("webhook URL must not contain user info")
	}
	if u.Fragment != "" {
		return fmt.Errorf("webhook URL %s must not contain a fragment", RedactURL(raw))
	}
	return nil
}

// RedactURL hides the last path segment of a webhook URL — the path token that
// authenticates Truphone's deliveries to our ingest (SPEC §3) — and any user
// info, keeping the first four characters so a listing can still be told apart. The
// query is dropped too.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "<unparsable URL>"
	}
	dir, last := "", u.EscapedPath()
	if i := strings.LastIndexByte(dir+last, '/'); i >= 0 {
		dir, last = last[:i+1], last[i+1:]
	}
	if len(last) > 4 {
		last = last[:4] + "****"
	}
	return u.Scheme + "://" + u.Host + dir + last
}
