-- Node schema v21: a drawer opening recorded apart from its receipt (pulse or
-- key) goes into the journal as a `SaleDrawerOpened`, so head office sees it;
-- `seq` is that event's journal seq, NULL until it is written.
ALTER TABLE drawer_openings ADD COLUMN seq INTEGER CHECK (seq IS NULL OR seq >= 1);
