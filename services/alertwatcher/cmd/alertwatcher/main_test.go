package main

import "testing"

func TestParseFlagsEnvFallback(t *testing.T) {
	t.Setenv("SIMTRAIL_NATS_URL", "nats://10.0.0.1:4222")
	t.Setenv("SIMTRAIL_DURABLE", "from-env")
	t.Setenv("SIMTRAIL_NOTIFY_URL", "http://127.0.0.1:9/hook")
	c, err := parseFlags([]string{"--durable", "from-flag", "--start", "all"})
	if err != nil {
		t.Fatal(err)
	}
	if c.natsURL != "nats://10.0.0.1:4222" || c.durable != "from-flag" || c.notifyURL != "http://127.0.0.1:9/hook" || c.start != "all" {
		t.Fatalf("config = %+v; flags must win over the environment, which fills the rest", c)
	}
	if _, err := parseFlags([]string{"--start", "yesterday"}); err == nil {
		t.Fatal("bad --start accepted")
	}
	t.Setenv("SIMTRAIL_MAX_RETRIES", "many")
	if _, err := parseFlags(nil); err == nil {
		t.Fatal("bad SIMTRAIL_MAX_RETRIES accepted")
	}
}
