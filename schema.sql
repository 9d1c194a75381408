-- Sirius database schema.
--
-- This file is schema version 1, the base every database starts from. It is
-- embedded in the binary (src/store/mod.rs) and applied to a database whose
-- `PRAGMA user_version` is 0 (a new file). Later versions are the numbered
-- entries of `MIGRATIONS` in src/store/mod.rs, applied in order on top of
-- this file, to new and old databases alike; `user_version` records how far
-- a database has come. Never edit a shipped version here: add a migration.
--
-- Conventions: times are INTEGER unix seconds (UTC) unless said otherwise;
-- addresses are 16 lowercase hex digits (PROTOCOL §2); a hardware xor is the
-- 24-bit number of PROTOCOL §7 stored as an INTEGER.
--
-- Room is left for later migrations: messages (the life of a delivery),
-- print keys and web sessions.

-- People who use the web app. A user owns printers through claims.
CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    -- Letters, digits, '.', '_' and '-'; unique regardless of case.
    username      TEXT    NOT NULL UNIQUE COLLATE NOCASE,
    -- An argon2id PHC string ($argon2id$v=19$...); NULL: no password set,
    -- the user cannot log in with one.
    password_hash TEXT,
    created_at    INTEGER NOT NULL
);

-- Every bridge that ever connected. Written on power_on (the first message
-- of each connection), not on every message.
CREATE TABLE bridges (
    address          TEXT    PRIMARY KEY,
    -- What the bridge said in its last power_on (NULL when it did not say).
    model            TEXT,
    firmware_version TEXT,
    ncp_version      TEXT,
    local_ip_address TEXT,
    mac_address      TEXT,
    uptime           TEXT,
    -- The address the websocket came from, as the server saw it.
    remote_ip        TEXT,
    first_seen       INTEGER NOT NULL,
    last_power_on    INTEGER,
    last_seen        INTEGER NOT NULL
);

-- A user's claim of a printer with the code it printed after a reset
-- (PROTOCOL §7 "Who owns a printer"). Several claims may share a hardware
-- xor (the printer was reset and a new code printed): the newest claim
-- (highest id) wins.
CREATE TABLE claims (
    id           INTEGER PRIMARY KEY,
    user_id      INTEGER NOT NULL REFERENCES users(id),
    hardware_xor INTEGER NOT NULL,
    -- Canonical form: lowercase with dashes, like n5ry-p6x6-kth7-7hc4.
    -- It holds the secret the link key is derived from.
    code         TEXT    NOT NULL UNIQUE,
    -- The printer's name, as the user chose it.
    name         TEXT    NOT NULL,
    created_at   INTEGER NOT NULL
);
-- The newest claim for a xor: ensure_printer and claim.
CREATE INDEX claims_by_xor ON claims(hardware_xor, id);
-- The printers a user owns.
CREATE INDEX claims_by_user ON claims(user_id);

-- Every printer (device address) that called home. A reset printer gets a
-- new address, so one physical printer may have several rows sharing a
-- hardware xor; all of them follow the newest claim for that xor.
CREATE TABLE printers (
    id           INTEGER PRIMARY KEY,
    address      TEXT    NOT NULL UNIQUE,
    hardware_xor INTEGER NOT NULL,
    -- The claim that owns this printer; NULL while unclaimed.
    claim_id     INTEGER REFERENCES claims(id),
    first_seen   INTEGER NOT NULL,
    -- Written in batches from memory, not on every heartbeat.
    last_heard   INTEGER,
    last_bridge  TEXT
);
-- Linking printers to a new claim.
CREATE INDEX printers_by_xor ON printers(hardware_xor);
-- Printers owned through a claim (counts per user, ownership pages).
CREATE INDEX printers_by_claim ON printers(claim_id);

-- Commands sent to bridges, by command id (a u32, never 0, unique across
-- restarts; PROTOCOL §6). Ids may wrap after 4 billion, so a row may be
-- replaced by a newer command with the same id.
CREATE TABLE commands (
    id             INTEGER PRIMARY KEY,
    -- NULL for a BridgeCommand.
    device_address TEXT,
    bridge_address TEXT    NOT NULL,
    -- What was sent, e.g. add_device_encryption_key, set_delivery_and_print.
    kind           TEXT    NOT NULL,
    sent_at        INTEGER NOT NULL,
    answered_at    INTEGER,
    return_code    INTEGER
);

-- The bridges' own log (BridgeLog messages), the newest 500 rows per bridge.
CREATE TABLE bridge_log (
    id             INTEGER PRIMARY KEY,
    bridge_address TEXT    NOT NULL,
    -- The bridge's own timestamp, float seconds; NULL if it sent none.
    created        REAL,
    level          TEXT,
    levelno        INTEGER,
    logger         TEXT,
    message        TEXT,
    received_at    INTEGER NOT NULL
);
-- Newest rows of one bridge, and trimming to 500.
CREATE INDEX bridge_log_by_bridge ON bridge_log(bridge_address, id);

-- Small named values. Keys in use:
--   command_id_high_water  the largest command id handed out (decimal).
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
