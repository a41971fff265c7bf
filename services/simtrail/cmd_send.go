package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/simtrail/simtrail/services/ingest/providers"
	"github.com/spf13/cobra"
)

func newSendCmd() *cobra.Command {
	var (
		provider, baseURL                 string
		droamSecret, roamifySecret        string
		truphoneToken                     string
		basicUser, basicPassword          string
		droamHashHeader, droamStampHeader string
		timeout                           time.Duration
	)
	cmd := &cobra.Command{
		Use:   "send [flags] FILE...",
		Short: "Sign webhook files as the provider would and post them (integration testing)",
		Long: `send posts each file's exact bytes to the provider's webhook route, signed the
way the provider signs: droam X-Hash/X-Timestamp, Roamify X-Roamify-Signature,
Truphone path token (and basic auth when set). The provider is taken from
--provider or from the file's parent directory name. Secrets default to the
dev-mode values that 'simtrail dev' uses.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, files []string) error {
			client := &http.Client{Timeout: timeout}
			failed := 0
			for _, f := range files {
				p := provider
				if p == "" {
					p = filepath.Base(filepath.Dir(f))
				}
				body, err := os.ReadFile(f)
				if err != nil {
					return err
				}
				req, err := signedRequest(cmd.Context(), p, strings.TrimRight(baseURL, "/"), body, signConfig{
					droamSecret: droamSecret, roamifySecret: roamifySecret, truphoneToken: truphoneToken,
					basicUser: basicUser, basicPassword: basicPassword,
					droamHashHeader: droamHashHeader, droamStampHeader: droamStampHeader,
				})
				if err != nil {
					return fmt.Errorf("%s: %w", f, err)
				}
				resp, err := client.Do(req)
				if err != nil {
					return fmt.Errorf("%s: %w", f, err)
				}
				answer, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
				resp.Body.Close()
				fmt.Fprintf(cmd.OutOrStdout(), "%s\t%s\t%d\tposition=%s\t%s\n", p, f, resp.StatusCode,
					resp.Header.Get("X-Event-Position"), bytes.TrimSpace(answer))
				if resp.StatusCode/100 != 2 {
					failed++
				}
			}
			if failed > 0 {
				return fmt.Errorf("%d of %d requests were not accepted", failed, len(files))
			}
			return nil
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&provider, "provider", "", "droam, roamify or truphone (default: the file's directory name)")
	fs.StringVar(&baseURL, "url", "http://127.0.0.1:8080", "simtrail base URL")
	fs.StringVar(&droamSecret, "droam-secret", devDroamSecret, "droam secret to sign with")
	fs.StringVar(&roamifySecret, "roamify-secret", devRoamifySecret, "Roamify secret to sign with")
	fs.StringVar(&truphoneToken, "truphone-token", devTruphoneToken, "Truphone path token")
	fs.StringVar(&basicUser, "truphone-basic-user", "", "HTTP basic auth user for Truphone")
	fs.StringVar(&basicPassword, "truphone-basic-password", "", "HTTP basic auth password for Truphone")
	fs.StringVar(&droamHashHeader, "droam-hash-header", "X-Hash", "droam hash header name")
	fs.StringVar(&droamStampHeader, "droam-timestamp-header", "X-Timestamp", "droam timestamp header name")
	fs.DurationVar(&timeout, "timeout", 10*time.Second, "per-request timeout")
	return cmd
}

type signConfig struct {
	droamSecret, roamifySecret, truphoneToken string
	basicUser, basicPassword                  string
	droamHashHeader, droamStampHeader         string
}

// signedRequest builds the POST a provider would send for body.
func signedRequest(ctx context.Context, provider, baseURL string, body []byte, sc signConfig) (*http.Request, error) {
	var url string
	switch provider {
	case "droam":
		url = baseURL + "/webhooks/droam"
	case "roamify":
		url = baseURL + "/webhooks/roamify"
	case "truphone":
		url = baseURL + "/webhooks/truphone/" + sc.truphoneToken
	default:
		return nil, errors.New("unknown provider " + provider + " (want droam, roamify or truphone)")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	switch provider {
	case "droam":
		hash, stamp := providers.SignDroam(sc.droamSecret, time.Now())
		req.Header.Set(sc.droamHashHeader, hash)
		req.Header.Set(sc.droamStampHeader, stamp)
	case "roamify":
		req.Header.Set("X-Roamify-Signature", providers.SignRoamify(sc.roamifySecret, body))
	case "truphone":
		if sc.basicUser != "" {
			req.SetBasicAuth(sc.basicUser, sc.basicPassword)
		}
	}
	return req, nil
}
