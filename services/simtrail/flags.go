package main

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/simtrail/simtrail/pkg/httpx"
	"github.com/simtrail/simtrail/pkg/natsx"
	"github.com/simtrail/simtrail/services/ingest"
	"github.com/simtrail/simtrail/services/simtrail/internal/app"
	"github.com/simtrail/simtrail/services/thresholds"
	"github.com/spf13/pflag"
)

// Dev-mode secrets (SPEC §2), printed with a warning when used.
const (
	devDroamSecret   = "dev-droam-secret"
	devRoamifySecret = "dev-roamify-secret"
	devTruphoneToken = "dev-truphone-token"
)

type natsFlags struct {
	url, creds, nkey, user, password, token string
	tlsCert, tlsKey, tlsCA                  string
	replicas                                int
	duplicates                              time.Duration
}

func (f *natsFlags) register(fs *pflag.FlagSet, defURL string) {
	fs.StringVar(&f.url, "nats-url", defURL, "NATS server URL list, comma-separated")
	fs.StringVar(&f.creds, "nats-creds", "", "NATS credentials file (JWT + nkey)")
	fs.StringVar(&f.nkey, "nats-nkey", "", "NATS nkey seed file")
	fs.StringVar(&f.user, "nats-user", "", "NATS user")
	fs.StringVar(&f.password, "nats-password", "", "NATS password (prefer the environment)")
	fs.StringVar(&f.token, "nats-token", "", "NATS token (prefer the environment)")
	fs.StringVar(&f.tlsCert, "nats-tls-cert", "", "client certificate for NATS TLS")
	fs.StringVar(&f.tlsKey, "nats-tls-key", "", "client key for NATS TLS")
	fs.StringVar(&f.tlsCA, "nats-tls-ca", "", "CA bundle for NATS TLS")
	fs.IntVar(&f.replicas, "stream-replicas", 1, "replicas of the SIMTRAIL stream (3 on a cluster)")
	fs.DurationVar(&f.duplicates, "stream-duplicates", natsx.DefaultDuplicates, "JetStream de-duplication window")
}

func (f *natsFlags) conn(name string) natsx.ConnConfig {
	return natsx.ConnConfig{URLs: f.url, Name: name, CredsFile: f.creds, NKeyFile: f.nkey, User: f.user,
		Password: f.password, Token: f.token, TLSCert: f.tlsCert, TLSKey: f.tlsKey, TLSCA: f.tlsCA}
}

func (f *natsFlags) stream() natsx.StreamConfig {
	return natsx.StreamConfig{Replicas: f.replicas, Duplicates: f.duplicates}
}

type ingestFlags struct {
	droamSecret, droamSecretFile       string
	roamifySecret, roamifySecretFile   string
	truphoneToken, truphoneTokenFile   string
	truphoneBasicUser, truphoneBasicPw string
	droamHashHeaders, droamTSHeaders   []string
	droamWindow                        time.Duration
	allowIPs                           map[string]*[]string
}

func (f *ingestFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.droamSecret, "droam-secret", "", "droam API secret(s), comma-separated for rotation")
	fs.StringVar(&f.droamSecretFile, "droam-secret-file", "", "file holding the droam secret(s)")
	fs.StringVar(&f.roamifySecret, "roamify-secret", "", "Roamify webhook secret(s), comma-separated")
	fs.StringVar(&f.roamifySecretFile, "roamify-secret-file", "", "file holding the Roamify secret(s)")
	fs.StringVar(&f.truphoneToken, "truphone-token", "", "Truphone path token(s), comma-separated")
	fs.StringVar(&f.truphoneTokenFile, "truphone-token-file", "", "file holding the Truphone token(s)")
	fs.StringVar(&f.truphoneBasicUser, "truphone-basic-user", "", "expected HTTP basic auth user on Truphone webhooks (optional)")
	fs.StringVar(&f.truphoneBasicPw, "truphone-basic-password", "", "expected HTTP basic auth password (optional)")
	fs.StringSliceVar(&f.droamHashHeaders, "droam-hash-header", ingest.DefaultDroamHashHeaders, "droam hash header names, tried in order")
	fs.StringSliceVar(&f.droamTSHeaders, "droam-timestamp-header", ingest.DefaultDroamTimestampHeaders, "droam timestamp header names, tried in order")
	fs.DurationVar(&f.droamWindow, "droam-window", 300*time.Second, "accepted droam timestamp skew")
	f.allowIPs = map[string]*[]string{}
	for _, p := range []string{"droam", "roamify", "truphone"} {
		f.allowIPs[p] = fs.StringSlice(p+"-allow-ips", nil, "CIDR ranges allowed to post "+p+" webhooks (default: any)")
	}
}

// secretList reads a comma-separated value or, when given, a file.
func secretList(val, file string) ([]string, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("read secret file: %w", err)
		}
		val = string(b)
	}
	var out []string
	for _, s := range strings.FieldsFunc(val, func(r rune) bool { return r == ',' || r == '\n' }) {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out, nil
}

// config builds the ingest config; in dev mode missing secrets take the
// documented dev values, loudly.
func (f *ingestFlags) config(dev bool, log *slog.Logger) (*ingest.Config, error) {
	droam, err := secretList(f.droamSecret, f.droamSecretFile)
	if err != nil {
		return nil, err
	}
	roamify, err := secretList(f.roamifySecret, f.roamifySecretFile)
	if err != nil {
		return nil, err
	}
	truphone, err := secretList(f.truphoneToken, f.truphoneTokenFile)
	if err != nil {
		return nil, err
	}
	if dev {
		if len(droam) == 0 {
			droam = []string{devDroamSecret}
			log.Warn("DEV MODE: droam secret is the public dev value", "secret", devDroamSecret)
		}
		if len(roamify) == 0 {
			roamify = []string{devRoamifySecret}
			log.Warn("DEV MODE: Roamify secret is the public dev value", "secret", devRoamifySecret)
		}
		if len(truphone) == 0 {
			truphone = []string{devTruphoneToken}
			log.Warn("DEV MODE: Truphone path token is the public dev value", "token", devTruphoneToken)
		}
	}
	log.Info("ingest config", "droam_secrets", len(droam), "roamify_secrets", len(roamify), "truphone_tokens", len(truphone),
		"truphone_basic_auth", f.truphoneBasicUser != "", "droam_hash_headers", f.droamHashHeaders,
		"droam_timestamp_headers", f.droamTSHeaders, "droam_window", f.droamWindow)
	allowed := map[string][]netip.Prefix{}
	for p, list := range f.allowIPs {
		for _, c := range *list {
			pre, err := netip.ParsePrefix(strings.TrimSpace(c))
			if err != nil {
				return nil, fmt.Errorf("--%s-allow-ips: %w", p, err)
			}
			allowed[p] = append(allowed[p], pre)
		}
	}
	return &ingest.Config{
		AllowedIPs:   allowed,
		DroamSecrets: droam, DroamHashHeaders: f.droamHashHeaders, DroamTimestampHeaders: f.droamTSHeaders,
		DroamWindow: f.droamWindow, RoamifySecrets: roamify, TruphoneTokens: truphone,
		TruphoneBasicUser: f.truphoneBasicUser, TruphoneBasicPassword: f.truphoneBasicPw,
	}, nil
}

type thresholdFlags struct {
	levels []int
	pools  []string
}

func (f *thresholdFlags) register(fs *pflag.FlagSet) {
	fs.IntSliceVar(&f.levels, "threshold-levels", []int{25, 50, 75, 80, 90, 100}, "threshold levels in percent")
	fs.StringSliceVar(&f.pools, "pool-allowance", nil, "operator allowance of a pool: <pool-id>=<bytes>, repeatable")
}

func (f *thresholdFlags) options() (*thresholds.Options, error) {
	opts := &thresholds.Options{Levels: f.levels, PoolAllowances: map[string]int64{}}
	for _, p := range f.pools {
		id, val, ok := strings.Cut(p, "=")
		n, err := strconv.ParseInt(strings.TrimSpace(val), 10, 64)
		if !ok || err != nil || n <= 0 || strings.TrimSpace(id) == "" {
			return nil, fmt.Errorf("--pool-allowance %q: want <pool-id>=<bytes>", p)
		}
		opts.PoolAllowances[strings.TrimSpace(id)] = n
	}
	return opts, nil
}

// httpFlags are the HTTP settings every serving command shares.
type httpFlags struct {
	addr, dataDir        string
	apiKeys, apiKeysFile string
	trustedProxies       []string
}

func (f *httpFlags) register(fs *pflag.FlagSet, defAddr string) {
	fs.StringVar(&f.addr, "http-addr", defAddr, "HTTP listen address")
	fs.StringVar(&f.dataDir, "data-dir", "./.data", "directory for the JetStream store (dev) and the SQLite read models")
	fs.StringVar(&f.apiKeys, "api-keys", "", "query API bearer keys, comma-separated key[:read|admin] (prefer the environment or a file); none = open")
	fs.StringVar(&f.apiKeysFile, "api-keys-file", "", "file with query API keys, one key[:scope] per line")
	fs.StringSliceVar(&f.trustedProxies, "trusted-proxies", nil, "CIDR ranges of proxies whose X-Forwarded-For is trusted")
}

func (f *httpFlags) apply(cfg *app.Config) error {
	cfg.HTTPAddr, cfg.DataDir = f.addr, f.dataDir
	list, err := secretList(f.apiKeys, f.apiKeysFile)
	if err != nil {
		return err
	}
	if cfg.APIKeys, err = httpx.ParseAPIKeys(list); err != nil {
		return err
	}
	for _, c := range f.trustedProxies {
		_, n, err := net.ParseCIDR(strings.TrimSpace(c))
		if err != nil {
			return fmt.Errorf("--trusted-proxies: %w", err)
		}
		cfg.TrustedProxies = append(cfg.TrustedProxies, n)
	}
	return nil
}
