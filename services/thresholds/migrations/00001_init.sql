-- +goose Up
-- Thresholds read model. Times are UTC unix nanoseconds (INTEGER) so that
-- comparisons are exact and order-independent; the API formats them.

-- One row per (subject, period). subject_type is 'sim' or 'pool'.
-- as_of/as_of_event: the newest observation of the period (it decides the
-- current period). The volume columns hold the newest observation that
-- stated volumes, by (snap_at, snap_event).
CREATE TABLE period (
	subject_type TEXT NOT NULL,
	subject_key  TEXT NOT NULL,
	period_key   TEXT NOT NULL,
	provider     TEXT NOT NULL,
	start_at     INTEGER,
	end_at       INTEGER,
	as_of        INTEGER NOT NULL,
	as_of_event  TEXT NOT NULL,
	snap_at      INTEGER,
	snap_event   TEXT,
	used         INTEGER,
	allowed      INTEGER,
	remaining    INTEGER,
	unlimited    INTEGER NOT NULL DEFAULT 0,
	percent      REAL,
	max_reported INTEGER,
	ended        INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (subject_type, subject_key, period_key)
) WITHOUT ROWID;

-- Usage points of a period, for the forecast.
CREATE TABLE snapshot (
	subject_type TEXT NOT NULL,
	subject_key  TEXT NOT NULL,
	period_key   TEXT NOT NULL,
	at           INTEGER NOT NULL,
	event_id     TEXT NOT NULL,
	used         INTEGER NOT NULL,
	PRIMARY KEY (subject_type, subject_key, period_key, at, event_id)
) WITHOUT ROWID;

-- One row per crossed (subject, period, level): the earliest showing wins,
-- ties broken by source (provider first) and event id.
CREATE TABLE level (
	subject_type TEXT NOT NULL,
	subject_key  TEXT NOT NULL,
	period_key   TEXT NOT NULL,
	level        INTEGER NOT NULL,
	crossed_at   INTEGER NOT NULL,
	source_rank  INTEGER NOT NULL, -- 0 provider, 1 computed
	event_id     TEXT NOT NULL,
	PRIMARY KEY (subject_type, subject_key, period_key, level)
) WITHOUT ROWID;

-- Provider rule alerts without a percentage (droam rules).
CREATE TABLE alert (
	subject_type TEXT NOT NULL,
	subject_key  TEXT NOT NULL,
	event_id     TEXT NOT NULL,
	at           INTEGER NOT NULL,
	rule_id      TEXT NOT NULL,
	rule_name    TEXT NOT NULL,
	description  TEXT NOT NULL,
	direction    TEXT NOT NULL,
	PRIMARY KEY (subject_type, subject_key, at, event_id)
) WITHOUT ROWID;

-- Denormalised current state per SIM: the fleet view reads only this table.
CREATE TABLE sim_state (
	iccid        TEXT PRIMARY KEY,
	provider     TEXT NOT NULL,
	status       TEXT,
	status_at    INTEGER,
	status_event TEXT,
	imei         TEXT,
	imei_at      INTEGER,
	imei_event   TEXT,
	period_key   TEXT,
	period_start INTEGER,
	period_end   INTEGER,
	as_of        INTEGER,
	as_of_event  TEXT,
	used         INTEGER,
	allowed      INTEGER,
	remaining    INTEGER,
	unlimited    INTEGER NOT NULL DEFAULT 0,
	percent      REAL,
	-- percent, or -1 when unknown: NOT NULL so one index orders the fleet.
	sort_pct     REAL NOT NULL DEFAULT -1,
	ended        INTEGER NOT NULL DEFAULT 0,
	last_level   INTEGER,
	levels_json  TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX sim_state_fleet ON sim_state(sort_pct DESC, iccid);
CREATE INDEX sim_state_provider ON sim_state(provider, sort_pct DESC, iccid);
CREATE INDEX sim_state_status ON sim_state(status, sort_pct DESC, iccid) WHERE status IS NOT NULL;

CREATE TABLE pool_state (
	pool_id     TEXT PRIMARY KEY,
	provider    TEXT NOT NULL,
	name        TEXT,
	name_at     INTEGER,
	name_event  TEXT,
	period_key  TEXT,
	as_of       INTEGER,
	as_of_event TEXT,
	used        INTEGER,
	allowed     INTEGER,
	percent     REAL,
	levels_json TEXT NOT NULL DEFAULT '[]'
) WITHOUT ROWID;

-- Transactional outbox of derived ThresholdCrossed events: one row per
-- (subject, period, level), inserted in the same transaction as the level.
CREATE TABLE outbox (
	seq            INTEGER PRIMARY KEY AUTOINCREMENT,
	alert_id       TEXT NOT NULL UNIQUE,
	subject_type   TEXT NOT NULL,
	subject_key    TEXT NOT NULL,
	provider       TEXT NOT NULL,
	period_key     TEXT NOT NULL,
	level          INTEGER NOT NULL,
	source         TEXT NOT NULL,
	crossed_at     INTEGER NOT NULL,
	used           INTEGER,
	allowed        INTEGER,
	cause_seq      INTEGER NOT NULL,
	cause_event_id TEXT NOT NULL,
	published      INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX outbox_pending ON outbox(seq) WHERE published = 0;
CREATE INDEX outbox_cause ON outbox(cause_seq) WHERE published = 0;

-- +goose Down
DROP TABLE outbox;
DROP TABLE pool_state;
DROP TABLE sim_state;
DROP TABLE alert;
DROP TABLE level;
DROP TABLE snapshot;
DROP TABLE period;
