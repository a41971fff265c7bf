package truphone

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestParseType(t *testing.T) {
	tests := []struct {
		in      string
		want    Type
		wantErr bool
	}{
		{"USAGE_THRESHOLD", UsageThreshold, false},
		{"usage_threshold", UsageThreshold, false},
		{" SUBSCRIPTION_END ", SubscriptionEnd, false},
		{"SUBSCRITPION_END", SubscriptionEnd, false},
		{"DOWNLOAD_PROGRESS", DownloadProgress, false},
		{"", "", true},
		{"SIM_SWAP", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseType(tt.in)
			if got != tt.want || (err != nil) != tt.wantErr || (err != nil && !errors.Is(err, ErrUnknownType)) {
				t.Errorf("ParseType(%q) = %q, %v", tt.in, got, err)
			}
		})
	}
}

func TestValidateICCID(t *testing.T) {
	tests := []struct {
		in string
		ok bool
	}{
		{"8944474600001234567", true},
		{"89444746000012345678", true},
		{"1234567890", true},
		{"1234567890123456789012", true},
		{"123456789", false},
		{"12345678901234567890123", false},
		{"8944474600001234567F", false},
		{"894447460000123456/", false},
		{" 8944474600001234567", false},
		{"８９４４４７４６００００１２３４５６７", false}, // full-width digits
		{"", false},
	}
	for _, tt := range tests {
		if err := ValidateICCID(tt.in); (err == nil) != tt.ok {
			t.Errorf("ValidateICCID(%q) = %v", tt.in, err)
		}
	}
}

func TestReadICCIDs(t *testing.T) {
	got, err := ReadICCIDs(strings.NewReader("# fleet A\n8944474600001234567\n\n  8944474600001234568  \r\n"))
	if err != nil || !slices.Equal(got, []string{"8944474600001234567", "8944474600001234568"}) {
		t.Errorf("got %v, %v", got, err)
	}
	if _, err := ReadICCIDs(strings.NewReader("8944474600001234567\nabc\n")); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("bad line: %v", err)
	}
}

func TestValidateWebhookURL(t *testing.T) {
	tests := []struct {
		name      string
		url       string
		allowHTTP bool
		ok        bool
	}{
		{"https", "https://hooks.example.com/webhooks/truphone/6f1c2e9a4b7d", false, true},
		{"https port", "https://hooks.example.com:8443/webhooks/truphone/t", false, true},
		{"http refused", "http://hooks.example.com/webhooks/truphone/6f1c2e9a4b7d", false, false},
		{"http allowed", "http://127.0.0.1:8080/webhooks/truphone/dev-truphone-token", true, true},
		{"uppercase scheme", "HTTPS://hooks.example.com/webhooks/truphone/t", false, true},
		{"other scheme", "ftp://hooks.example.com/x", true, false},
		{"relative", "/webhooks/truphone/t", false, false},
		{"no host", "https:///webhooks/truphone/t", false, false},
		{"user info", "https://u:p@hooks.example.com/webhooks/truphone/t", false, false},
		{"fragment", "https://hooks.example.com/webhooks/truphone/t#x", false, false},
		{"empty", "", false, false},
		{"garbage", "https://[::1", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateWebhookURL(tt.url, tt.allowHTTP)
			if (err == nil) != tt.ok {
				t.Fatalf("ValidateWebhookURL(%q, %v) = %v", tt.url, tt.allowHTTP, err)
			}
			if err != nil && strings.Contains(err.Error(), "6f1c2e9a4b7d") {
				t.Errorf("error reveals the path token: %v", err)
			}
		})
	}
}

func TestRedactURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"https://hooks.example.com/webhooks/truphone/6f1c2e9a4b7d", "https://hooks.example.com/webhooks/truphone/6f1c****"},
		{"https://u:p@h.example/webhooks/truphone/abc?k=secret", "https://h.example/webhooks/truphone/abc"},
		{"https://h.example", "https://h.example"},
		{"https://h.example/", "https://h.example/"},
		{"https://h.example/a%2Fb/tokentoken", "https://h.example/a%2Fb/toke****"},
	}
	for _, tt := range tests {
		if got := RedactURL(tt.in); got != tt.want {
			t.Errorf("RedactURL(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestOps(t *testing.T) {
	ops := Ops(ActionRegister, []string{"1111111111", "2222222222"}, []Type{UsageThreshold, SubscriptionEnd}, "https://h/x")
	if len(ops) != 4 || ops[1] != (Op{ActionRegister, "1111111111", SubscriptionEnd, "https://h/x"}) || ops[2].ICCID != "2222222222" {
		t.Errorf("ops %+v", ops)
	}
	if ops := Ops(ActionList, []string{"1111111111"}, DefaultTypes, ""); len(ops) != 1 || ops[0].Type != "" {
		t.Errorf("list ops %+v", ops)
	}
}
