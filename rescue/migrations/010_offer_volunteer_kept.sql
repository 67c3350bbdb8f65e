-- An offer's volunteer is kept by a rule on the volunteers instead of a foreign key.
--
-- The key's check locked the offered volunteer's row (FOR KEY SHARE) for every offer an alert or
-- a wave stores: a WAL record on a page of the volunteers table, and, the first time that page
-- is touched after a checkpoint, the whole 8 KiB page, since the offered volunteers of
-- successive alerts are spread over the table. Measured on the bench's province data, a million
-- volunteers (BENCHMARKS.md, session 18): in process, an alert wrote 47-68 KiB of WAL with the
-- key and 22-31 KiB without it, and its statement took 1.70-1.84 ms instead of 1.53-1.63
-- (median); over HTTP, a closed-loop alert wrote 64-83 KiB instead of 45-52 (Qingdao's data:
-- 40-49 instead of 37-38).
--
-- The key's two guarantees hold without it:
-- * no offer names an unknown volunteer: the two statements that store offers (an alert's,
--   dispatch.queries.INSERT_ALERT, and a wave's, ESCALATE_WAVE) store nothing unless every
--   offered volunteer is in the registry (their `known` CTE);
-- * a volunteer an offer names stays there: volunteers are never deleted nor renumbered (their
--   records carry what protects them: insurance cover, legal aid, debriefs), now a rule of the
--   database: the triggers below refuse it, as the key refused deleting one with offers.
ALTER TABLE offers DROP CONSTRAINT offers_volunteer_id_fkey;

CREATE FUNCTION volunteers_are_kept() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'volunteers are never deleted nor renumbered: offers and records name them'
        USING ERRCODE = 'restrict_violation';
END
$$;

CREATE TRIGGER volunteers_not_deleted BEFORE DELETE ON volunteers
    FOR EACH STATEMENT EXECUTE FUNCTION volunteers_are_kept();

CREATE TRIGGER volunteers_not_renumbered BEFORE UPDATE OF id ON volunteers
    FOR EACH ROW WHEN (OLD.id IS DISTINCT FROM NEW.id) EXECUTE FUNCTION volunteers_are_kept();
