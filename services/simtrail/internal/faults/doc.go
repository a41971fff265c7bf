// Package faults is simtrail's fault-injection suite. It holds no production
// code: its tests build the real `simtrail` binary and the real nats-server
// from the workspace's module version, run them as separate processes on
// 127.0.0.1 with random ports, and then kill, starve and attack them:
//
//   - the NATS server SIGKILLed and restarted under steady ingest (single
//     server with and without sync-always, and a 3-node cluster with a
//     3-replica stream), counting every webhook by event id in the stream;
//   - each projector SIGKILLed repeatedly under load, its read model compared
//     with a clean rebuild, SIM by SIM;
//   - full and read-only data directories (tmpfs) for JetStream and SQLite;
//   - slowloris, oversized headers and bodies, hostile JSON, with the
//     ingest process's RSS sampled and a well-behaved client measured.
//
// The suite is slow, so it runs only with FAULTS=1 (`make faults`);
// FAULTS_SHORT=1 is the CI form. Without FAULTS the tests skip and the
// package still compiles under `go vet` in `make test`. Results are printed
// as the fault table of docs/reliability.md (and written to FAULTS_REPORT
// when set).
package faults
