-- Schema version 3: print keys stored as hashes, and indexes for the limits
-- on what bridges can make the server keep.
--
-- sirius: foreign_keys off
-- (The runner turns foreign keys off around this version, as SQLite's
-- "making other kinds of table schema changes" procedure asks, and checks
-- them before committing: print_keys is rebuilt and other tables refer to
-- it by name.)

-- Print keys: only a SHA-256 of the secret is kept (hex, `sirius_sha256`,
-- a function the store registers on every connection); the first 4
-- characters stay for lists. Existing keys keep working: their hash is
-- computed here from the stored secret, which is then gone.
CREATE TABLE print_keys_v3 (
    id           INTEGER PRIMARY KEY,
    printer_id   INTEGER NOT NULL REFERENCES printers(id),
    -- Lowercase hex SHA-256 of the secret.
    secret_hash  TEXT    NOT NULL UNIQUE,
    -- The secret's first 4 characters, to tell keys apart in lists.
    prefix       TEXT    NOT NULL,
    -- What the owner called it ("Phone app", "IFTTT"); NULL: none.
    label        TEXT,
    -- Who made it (NULL: the command line).
    created_by   INTEGER REFERENCES users(id),
    created_at   INTEGER NOT NULL,
    -- NULL while the key works.
    revoked_at   INTEGER,
    uses         INTEGER NOT NULL DEFAULT 0,
    last_used_at INTEGER
);
INSERT INTO print_keys_v3 (id, printer_id, secret_hash, prefix, created_at, revoked_at, uses, last_used_at)
    SELECT id, printer_id, sirius_sha256(secret), substr(secret, 1, 4), created_at, revoked_at, uses, last_used_at
    FROM print_keys;
DROP TABLE print_keys;
ALTER TABLE print_keys_v3 RENAME TO print_keys;
CREATE INDEX print_keys_by_printer ON print_keys(printer_id);

-- Unclaimed printers per bridge, oldest first: at most 64 are remembered
-- per bridge, and one not heard from for 30 days is forgotten.
CREATE INDEX printers_unclaimed ON printers(last_bridge, coalesce(last_heard, first_seen))
    WHERE claim_id IS NULL;

-- Bridges by when they were last seen (logs of bridges gone 30 days are
-- deleted).
CREATE INDEX bridges_by_last_seen ON bridges(last_seen);
