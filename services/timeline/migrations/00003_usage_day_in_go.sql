-- +goose Up
-- usage_day is kept by the projector itself from now on (held.go): at each
-- commit it folds the batch's new snapshots that follow a SIM's newest
-- stored one in Go, from a cache of that newest snapshot, and runs the
-- statements these triggers ran only for the few that arrive late. A
-- trigger fired for every snapshot, in-order ones included, and its
-- neighbour seeks were a fifth of a rebuild. The rows already in usage_day
-- stay as they are: both ways compute the same sums.
DROP TRIGGER usage_snapshot_late;
DROP TRIGGER usage_snapshot_day;

-- +goose Down
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
