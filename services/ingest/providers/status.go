package providers

import "strings"

// normStatus is the normalised status name of a provider's raw status:
// lower case, trimmed, runs of spaces, dashes and underscores folded to one
// '_' ("Not Available" → "not_available"). Status is an open enum: unknown
// values pass through normalised, never rejected.
func normStatus(raw string) string {
	var b strings.Builder
	sep := false
	for _, r := range strings.ToLower(strings.TrimSpace(raw)) {
		switch r {
		case ' ', '-', '_', '\t':
			sep = true
			continue
		}
		if sep && b.Len() > 0 {
			b.WriteByte('_')
		}
		sep = false
		b.WriteRune(r)
	}
	return b.String()
}

// roamifyStatus normalises a Roamify eSIM status. Roamify says ACTIVATED
// where droam says active; both mean "in use", so they share one name and
// the read model needs no per-provider table. Every other value (NEW,
// INSTALLED, INACTIVE, DELETED, REVOKED, EXPIRED, UNKNOWN, …) is just
// lower-cased.
func roamifyStatus(raw string) string {
	s := normStatus(raw)
	if s == "activated" {
		return "active"
	}
	return s
}
