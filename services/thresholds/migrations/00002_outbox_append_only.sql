-- +goose Up
-- The outbox as a plain append-only table: no UNIQUE index on alert_id and
-- no AUTOINCREMENT. Each row is written right after its level row, in the
-- same transaction, only when that level row is new, and the level table's
-- primary key (subject_type, subject_key, period_key, level) refuses a
-- second one, so a second announcement cannot be written either way. The
-- alert_id index cost a random-position insert into a 64-character-key
-- B-tree per crossing (about 6 % of a rebuild), and AUTOINCREMENT an extra
-- sqlite_sequence write; rows are never deleted, so a plain INTEGER PRIMARY
-- KEY already grows monotonically and keeps the publishing order.
CREATE TABLE outbox_new (
	seq            INTEGER PRIMARY KEY,
	alert_id       TEXT NOT NULL,
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
INSERT INTO outbox_new SELECT seq, alert_id, subject_type, subject_key, provider, period_key, level, source,
	crossed_at, used, allowed, cause_seq, cause_event_id, published FROM outbox;
DROP TABLE outbox;
ALTER TABLE outbox_new RENAME TO outbox;
CREATE INDEX outbox_pending ON outbox(seq) WHERE published = 0;
CREATE INDEX outbox_cause ON outbox(cause_seq) WHERE published = 0;

-- +goose Down
CREATE TABLE outbox_old (
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
INSERT INTO outbox_old SELECT seq, alert_id, subject_type, subject_key, provider, period_key, level, source,
	crossed_at, used, allowed, cause_seq, cause_event_id, published FROM outbox;
DROP TABLE outbox;
ALTER TABLE outbox_old RENAME TO outbox;
CREATE INDEX outbox_pending ON outbox(seq) WHERE published = 0;
CREATE INDEX outbox_cause ON outbox(cause_seq) WHERE published = 0;
