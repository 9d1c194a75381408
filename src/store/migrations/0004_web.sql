-- Schema version 4: the web app — administrators, disabled accounts, API
-- keys, sessions, invites, sharing, Twitter sign-in, and who sent a message.

-- 1: may manage users, invites and see every bridge and printer.
ALTER TABLE users ADD COLUMN is_admin INTEGER NOT NULL DEFAULT 0;
-- Set when an admin disabled the account: it can't sign in, its sessions
-- and API key stop working; its printers keep printing.
ALTER TABLE users ADD COLUMN disabled_at INTEGER;
-- The user's API key for /ext_api/v1/…: lowercase hex SHA-256, and the
-- first 4 characters for the account page. NULL: none made yet.
ALTER TABLE users ADD COLUMN api_key_hash TEXT;
ALTER TABLE users ADD COLUMN api_key_prefix TEXT;
CREATE UNIQUE INDEX users_by_api_key ON users(api_key_hash) WHERE api_key_hash IS NOT NULL;

-- Signed-in browsers. The cookie holds a random id (128 bits or more from
-- the OS); only its SHA-256 is stored. Rolling: each use pushes
-- expires_at 30 days on (written at most once an hour).
CREATE TABLE sessions (
    id_hash      TEXT    PRIMARY KEY,
    user_id      INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    -- The per-session token every state-changing form carries.
    csrf_token   TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    -- For the account page's list of sessions.
    user_agent   TEXT,
    ip           TEXT
);
CREATE INDEX sessions_by_user ON sessions(user_id);
CREATE INDEX sessions_by_expiry ON sessions(expires_at);

-- One-time invite links (/invite/TOKEN), valid 7 days.
CREATE TABLE invites (
    id          INTEGER PRIMARY KEY,
    -- Lowercase hex SHA-256 of the token in the link.
    token_hash  TEXT    NOT NULL UNIQUE,
    -- NULL: made from the command line.
    created_by  INTEGER REFERENCES users(id) ON DELETE SET NULL,
    -- 1: whoever signs up with it is an administrator.
    make_admin  INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    used_at     INTEGER,
    used_by     INTEGER REFERENCES users(id) ON DELETE SET NULL
);

-- Sharing: the owner of a printer lets another user print to it. Keyed by
-- the printer's hardware xor, so a reset by the same owner keeps its shares;
-- a claim by someone else deletes them (with the print keys).
CREATE TABLE shares (
    id           INTEGER PRIMARY KEY,
    hardware_xor INTEGER NOT NULL,
    user_id      INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_by   INTEGER REFERENCES users(id) ON DELETE SET NULL,
    created_at   INTEGER NOT NULL,
    UNIQUE (hardware_xor, user_id)
);
CREATE INDEX shares_by_user ON shares(user_id);

-- Twitter accounts linked to local users ("Sign in with Twitter").
CREATE TABLE twitter_identities (
    -- Twitter's numeric user id, as text (ids exceed 2^53).
    twitter_id  TEXT    PRIMARY KEY,
    user_id     INTEGER NOT NULL UNIQUE REFERENCES users(id) ON DELETE CASCADE,
    screen_name TEXT    NOT NULL,
    linked_at   INTEGER NOT NULL
);

-- The signed-in user who sent a message (web or API); NULL for print keys
-- and the command line. A user a printer is shared with sees their own.
ALTER TABLE messages ADD COLUMN sender_user_id INTEGER REFERENCES users(id) ON DELETE SET NULL;
CREATE INDEX messages_by_sender ON messages(sender_user_id) WHERE sender_user_id IS NOT NULL;
