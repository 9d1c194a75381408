-- Schema version 2: messages (the life of every delivery) and print keys.

-- A secret URL that prints to one printer (the phone app, scripts).
CREATE TABLE print_keys (
    id           INTEGER PRIMARY KEY,
    printer_id   INTEGER NOT NULL REFERENCES printers(id),
    -- At least 20 characters of [a-z0-9] from the OS random generator.
    secret       TEXT    NOT NULL UNIQUE,
    created_at   INTEGER NOT NULL,
    -- NULL while the key works.
    revoked_at   INTEGER,
    uses         INTEGER NOT NULL DEFAULT 0,
    last_used_at INTEGER
);
CREATE INDEX print_keys_by_printer ON print_keys(printer_id);

-- The distinct sender names a key was used with, and how often.
CREATE TABLE print_key_senders (
    key_id INTEGER NOT NULL REFERENCES print_keys(id),
    sender TEXT    NOT NULL,
    uses   INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (key_id, sender)
);

-- Every message, stored before anything is sent. States:
--   queued     waiting (printer offline, or another delivery in flight)
--   sent       handed to the bridge as command `command_id`
--   delivered  the bridge answered 0
--   failed     the bridge answered another code (`failure` says what)
--   timed_out  no answer within 60 s on a connection that stayed up
--   expired    held longer than the limit without being delivered
CREATE TABLE messages (
    id           INTEGER PRIMARY KEY,
    printer_id   INTEGER NOT NULL REFERENCES printers(id),
    sender       TEXT    NOT NULL,
    -- html, text, image (or reprint).
    content_kind TEXT    NOT NULL,
    -- The print command, e.g. set_delivery_and_print.
    command_kind TEXT    NOT NULL,
    -- The 1-bit page exactly as it prints, as PNG.
    page_png     BLOB    NOT NULL,
    page_width   INTEGER NOT NULL,
    page_height  INTEGER NOT NULL,
    -- 1 when the page was cut at 10,000 rows.
    truncated    INTEGER NOT NULL DEFAULT 0,
    created_at   INTEGER NOT NULL,
    state        TEXT    NOT NULL,
    -- The last command that carried it (also the printer's print id).
    command_id   INTEGER,
    attempts     INTEGER NOT NULL DEFAULT 0,
    sent_at      INTEGER,
    answered_at  INTEGER,
    return_code  INTEGER,
    failure      TEXT,
    -- When the printer reported did_print for it.
    printed_at   INTEGER,
    print_key_id INTEGER REFERENCES print_keys(id),
    reprint_of   INTEGER
);
-- The queue of a printer, and its history.
CREATE INDEX messages_by_printer ON messages(printer_id, state, id);
-- did_print and answers name the command id.
CREATE INDEX messages_by_command ON messages(command_id);
