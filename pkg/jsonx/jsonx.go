// Package jsonx appends JSON text exactly as encoding/json writes it, for
// answers and stored documents that are rendered by hand on hot paths
// (per request, per event) instead of through reflection.
package jsonx

import "encoding/json"

// AppendString appends s as a JSON string. Printable ASCII other than the
// characters encoding/json escapes is copied as is; anything else
// (provider text may hold any byte) goes through encoding/json, so its
// escaping (HTML-safe, invalid UTF-8 as U+FFFD, U+2028/2029) is kept.
func AppendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always marshals
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// AppendOptString appends *s as a JSON string, or null when s is nil.
func AppendOptString(b []byte, s *string) []byte {
	if s == nil {
		return append(b, "null"...)
	}
	return AppendString(b, *s)
}
