-- +goose Up
-- usage_snapshot clustered by (iccid, at, event_id): the neighbours the
-- trigger below reads sit in the leaf page the insert writes, and a range
-- scan reads no separate table rows.
CREATE TABLE usage_snapshot_new (
	iccid      TEXT NOT NULL,
	at         INTEGER NOT NULL,
	event_id   TEXT NOT NULL,
	used_bytes INTEGER NOT NULL,
	period_id  TEXT NOT NULL,
	PRIMARY KEY (iccid, at, event_id)
) WITHOUT ROWID;
INSERT INTO usage_snapshot_new(iccid, at, event_id, used_bytes, period_id)
	SELECT iccid, at, event_id, used_bytes, period_id FROM usage_snapshot;
DROP TABLE usage_snapshot;
ALTER TABLE usage_snapshot_new RENAME TO usage_snapshot;

-- usage_day: snapshot-derived usage summed per SIM and UTC day (day =
-- floor(at / 86400 s) since the epoch), so that a day- or month-granularity
-- usage query reads one row per day instead of every snapshot of the
-- window. Hour granularity still reads usage_snapshot.
CREATE TABLE usage_day (
	iccid TEXT NOT NULL,
	day   INTEGER NOT NULL,
	bytes INTEGER NOT NULL,
	PRIMARY KEY (iccid, day)
) WITHOUT ROWID;

-- Backfill from the snapshots already stored. A snapshot's delta is taken
-- against its predecessor in (at, event_id) order with SnapshotDeltas'
-- rule: a drop, or a change between two known period ids, is a reset and
-- counts the new value in full.
INSERT INTO usage_day(iccid, day, bytes)
SELECT iccid, (at - CASE WHEN at < 0 THEN 86399999999999 ELSE 0 END) / 86400000000000 AS day,
	sum(CASE WHEN prev_used IS NOT NULL AND used_bytes >= prev_used
		AND NOT (prev_period <> '' AND period_id <> '' AND prev_period <> period_id)
		THEN used_bytes - prev_used ELSE used_bytes END)
FROM (SELECT iccid, at, used_bytes, period_id,
		lag(used_bytes) OVER w AS prev_used, lag(period_id) OVER w AS prev_period
	FROM usage_snapshot WINDOW w AS (PARTITION BY iccid ORDER BY at, event_id))
GROUP BY iccid, day;

-- Keep usage_day equal to the fold of the sorted snapshots whatever the
-- arrival order. A new snapshot adds its delta over its predecessor to its
-- day: its value minus the predecessor's, or in full after a reset (the
-- scalar subquery yields 0 then). If a later snapshot was stored before it
-- (it arrived late), that successor's delta is re-taken against the new
-- snapshot and the difference goes to the successor's day. Triggers rather
-- than Go code: the neighbour lookups then cost a B-tree step inside the
-- insert instead of a query round trip each (which tripled a snapshot's
-- apply cost); the successor trigger's WHEN keeps the in-order case (all
-- but the late few percent) to one extra seek.
-- +goose StatementBegin
CREATE TRIGGER usage_snapshot_day AFTER INSERT ON usage_snapshot BEGIN
	INSERT INTO usage_day(iccid, day, bytes)
	VALUES (NEW.iccid, (NEW.at - CASE WHEN NEW.at < 0 THEN 86399999999999 ELSE 0 END) / 86400000000000,
		NEW.used_bytes - coalesce((SELECT CASE WHEN NEW.used_bytes >= p.used_bytes
				AND NOT (p.period_id <> '' AND NEW.period_id <> '' AND p.period_id <> NEW.period_id)
				THEN p.used_bytes ELSE 0 END
			FROM usage_snapshot AS p
			WHERE p.iccid = NEW.iccid AND (p.at, p.event_id) < (NEW.at, NEW.event_id)
			ORDER BY p.at DESC, p.event_id DESC LIMIT 1), 0))
	ON CONFLICT(iccid, day) DO UPDATE SET bytes = bytes + excluded.bytes;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER usage_snapshot_late AFTER INSERT ON usage_snapshot
WHEN EXISTS (SELECT 1 FROM usage_snapshot
	WHERE iccid = NEW.iccid AND (at, event_id) > (NEW.at, NEW.event_id))
BEGIN
	INSERT INTO usage_day(iccid, day, bytes)
	SELECT NEW.iccid, (n.at - CASE WHEN n.at < 0 THEN 86399999999999 ELSE 0 END) / 86400000000000,
		(CASE WHEN n.used_bytes >= NEW.used_bytes
			AND NOT (NEW.period_id <> '' AND n.period_id <> '' AND NEW.period_id <> n.period_id)
			THEN n.used_bytes - NEW.used_bytes ELSE n.used_bytes END)
		- (CASE WHEN p.used_bytes IS NOT NULL AND n.used_bytes >= p.used_bytes
			AND NOT (p.period_id <> '' AND n.period_id <> '' AND p.period_id <> n.period_id)
			THEN n.used_bytes - p.used_bytes ELSE n.used_bytes END)
	FROM (SELECT at, used_bytes, period_id FROM usage_snapshot
			WHERE iccid = NEW.iccid AND (at, event_id) > (NEW.at, NEW.event_id)
			ORDER BY at, event_id LIMIT 1) AS n
		LEFT JOIN (SELECT used_bytes, period_id FROM usage_snapshot
			WHERE iccid = NEW.iccid AND (at, event_id) < (NEW.at, NEW.event_id)
			ORDER BY at DESC, event_id DESC LIMIT 1) AS p
	WHERE true
	ON CONFLICT(iccid, day) DO UPDATE SET bytes = bytes + excluded.bytes;
END;
-- +goose StatementEnd

-- The timeline query walks sim_event_iccid_at and skips rows without
-- detail; the partial copy of that index cost every insert a second
-- random-key B-tree write for a few skipped rows per page.
DROP INDEX sim_event_timeline;

-- +goose Down
CREATE INDEX sim_event_timeline ON sim_event(iccid, at, id) WHERE detail IS NOT NULL;
DROP TRIGGER usage_snapshot_late;
DROP TRIGGER usage_snapshot_day;
DROP TABLE usage_day;
CREATE TABLE usage_snapshot_old (
	event_id   TEXT NOT NULL,
	iccid      TEXT NOT NULL,
	at         INTEGER NOT NULL,
	used_bytes INTEGER NOT NULL,
	period_id  TEXT NOT NULL
);
INSERT INTO usage_snapshot_old SELECT event_id, iccid, at, used_bytes, period_id FROM usage_snapshot;
DROP TABLE usage_snapshot;
ALTER TABLE usage_snapshot_old RENAME TO usage_snapshot;
CREATE INDEX usage_snapshot_iccid_at ON usage_snapshot(iccid, at, event_id);
