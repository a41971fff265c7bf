#!/usr/bin/env bash
# Start a 3-node JetStream cluster and the simtrail services on loopback,
# using deployments/cluster/. Ctrl-C stops everything.
# nats-server is built from its Go module (no download of prebuilt binaries).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p bin .data/cluster
[ -x bin/nats-server ] || GOBIN="$PWD/bin" go install github.com/nats-io/nats-server/v2@v2.15.2
make build
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait' EXIT INT TERM
for i in 1 2 3; do
	bin/nats-server -c deployments/cluster/nats-$i.conf & pids+=($!)
done
set -a; . deployments/cluster/services.env; set +a
: "${SIMTRAIL_DROAM_SECRET:=dev-droam-secret}" "${SIMTRAIL_ROAMIFY_SECRET:=dev-roamify-secret}" "${SIMTRAIL_TRUPHONE_TOKEN:=dev-truphone-token}"
export SIMTRAIL_DROAM_SECRET SIMTRAIL_ROAMIFY_SECRET SIMTRAIL_TRUPHONE_TOKEN
bin/simtrail ingest --http-addr 127.0.0.1:8080 & pids+=($!)
bin/simtrail timeline --http-addr 127.0.0.1:8081 & pids+=($!)
bin/simtrail thresholds --http-addr 127.0.0.1:8082 & pids+=($!)
wait
