-- How a change is carried out, beside what it changes (source_spec -> target_spec): the upgrade
-- strategy (inPlace, downtime) and the brokers a reboot restarts, as JSON. NULL for operations
-- that need none (create, delete, heal) and for operations stored before this column existed.
ALTER TABLE operations ADD COLUMN parameters TEXT;
