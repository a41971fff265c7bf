-- +goose Up
-- sim_event holds one row per distinct event id about a SIM: the facts the
-- summary and the timeline are derived from at query time, so the order in
-- which events arrive never matters.
CREATE TABLE sim_event (
	id              TEXT PRIMARY KEY,
	iccid           TEXT NOT NULL,
	kind            TEXT NOT NULL,
	provider        TEXT NOT NULL,
	provider_type   TEXT NOT NULL,
	at              INTEGER NOT NULL, -- occurred_at, UNIX nanoseconds UTC
	status          TEXT,
	status_raw      TEXT,
	imei            TEXT,
	msisdn          TEXT,
	sim_type        TEXT,
	plan            TEXT, -- JSON object or NULL
	period          TEXT, -- JSON object or NULL
	has_usage       INTEGER NOT NULL DEFAULT 0,
	used_bytes      INTEGER,
	remaining_bytes INTEGER,
	allowed_bytes   INTEGER,
	unlimited       INTEGER NOT NULL DEFAULT 0,
	detail          TEXT  -- JSON of the timeline entry's kind fields; NULL = not in the timeline
);
CREATE INDEX sim_event_iccid_at ON sim_event(iccid, at, id);
CREATE INDEX sim_event_timeline ON sim_event(iccid, at, id) WHERE detail IS NOT NULL;

-- usage_snapshot: cumulative used-bytes counters by provider time; deltas
-- between successive snapshots are computed at query time. A row is only
-- written when its sim_event row was new, so event_id needs no unique
-- index of its own (a random-key index is the costliest part of a write).
CREATE TABLE usage_snapshot (
	event_id   TEXT NOT NULL,
	iccid      TEXT NOT NULL,
	at         INTEGER NOT NULL,
	used_bytes INTEGER NOT NULL,
	period_id  TEXT NOT NULL
);
CREATE INDEX usage_snapshot_iccid_at ON usage_snapshot(iccid, at, event_id);

-- daily_usage: provider per-day rows (Roamify usage_list), upserted per
-- (iccid, day, location); the newest snapshot (provider time, then event id)
-- wins.
CREATE TABLE daily_usage (
	iccid      TEXT NOT NULL,
	day        TEXT NOT NULL, -- YYYY-MM-DD UTC
	location   TEXT NOT NULL,
	data_bytes INTEGER NOT NULL,
	snap_at    INTEGER NOT NULL,
	snap_id    TEXT NOT NULL,
	PRIMARY KEY (iccid, day, location)
) WITHOUT ROWID;

-- +goose Down
DROP TABLE daily_usage;
DROP TABLE usage_snapshot;
DROP TABLE sim_event;
