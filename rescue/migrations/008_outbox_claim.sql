-- The relays claim outbox rows with a lease instead of holding row locks in a transaction
-- across the XADD: one UPDATE ... RETURNING claims a batch, one UPDATE stamps it published
-- (two round trips instead of BEGIN, SELECT ... FOR UPDATE, UPDATE, COMMIT). A relay that dies
-- between the two leaves its claim to expire; another relay then publishes the rows again
-- (delivery is at least once; consumers recognise an event by its id).
ALTER TABLE outbox ADD COLUMN claimed_until timestamptz;
