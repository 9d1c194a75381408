//! Messages: every message sent to a printer, stored before anything is
//! sent, and its delivery state. The `messages` table is the delivery queue
//! (state `queued`, oldest first) and the printer's history.

use rusqlite::{OptionalExtension, Row, params};

use super::{Store, StoreError};

/// Where a message is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageState {
    Queued,
    Sent,
    Delivered,
    Failed,
    TimedOut,
    Expired,
}

impl MessageState {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageState::Queued => "queued",
            MessageState::Sent => "sent",
            MessageState::Delivered => "delivered",
            MessageState::Failed => "failed",
            MessageState::TimedOut => "timed_out",
            MessageState::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Option<MessageState> {
        Some(match s {
            "queued" => MessageState::Queued,
            "sent" => MessageState::Sent,
            "delivered" => MessageState::Delivered,
            "failed" => MessageState::Failed,
            "timed_out" => MessageState::TimedOut,
            "expired" => MessageState::Expired,
            _ => return None,
        })
    }

    /// Whether the message will not change any more (history may trim it).
    pub fn is_final(self) -> bool {
        !matches!(self, MessageState::Queued | MessageState::Sent)
    }
}

/// A message to store.
#[derive(Debug, Clone)]
pub struct NewMessage<'a> {
    pub printer_id: i64,
    pub sender: &'a str,
    pub content_kind: &'a str,
    pub command_kind: &'a str,
    pub page_png: &'a [u8],
    pub page_width: u32,
    pub page_height: u32,
    pub truncated: bool,
    pub created_at: i64,
    pub print_key_id: Option<i64>,
    /// The signed-in user who sent it (web, API).
    pub sender_user_id: Option<i64>,
    pub reprint_of: Option<i64>,
}

/// A stored message (without its page; see [`Store::message_page`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRow {
    pub id: i64,
    pub printer_id: i64,
    pub sender: String,
    pub content_kind: String,
    pub command_kind: String,
    pub page_width: u32,
    pub page_height: u32,
    pub truncated: bool,
    pub created_at: i64,
    pub state: MessageState,
    pub command_id: Option<u32>,
    pub attempts: u32,
    pub sent_at: Option<i64>,
    pub answered_at: Option<i64>,
    pub return_code: Option<u32>,
    pub failure: Option<String>,
    pub printed_at: Option<i64>,
    pub print_key_id: Option<i64>,
    pub reprint_of: Option<i64>,
    /// The signed-in user who sent it (web, API); `None` for print keys,
    /// the command line, and users since deleted.
    pub sender_user_id: Option<i64>,
}

const MESSAGE_SELECT: &str = "SELECT id, printer_id, sender, content_kind, command_kind,
        page_width, page_height, truncated, created_at, state, command_id, attempts,
        sent_at, answered_at, return_code, failure, printed_at, print_key_id, reprint_of,
        sender_user_id
    FROM messages";

fn message_from_row(row: &Row<'_>) -> rusqlite::Result<MessageRow> {
    let state: String = row.get(9)?;
    Ok(MessageRow {
        id: row.get(0)?,
        printer_id: row.get(1)?,
        sender: row.get(2)?,
        content_kind: row.get(3)?,
        command_kind: row.get(4)?,
        page_width: row.get(5)?,
        page_height: row.get(6)?,
        truncated: row.get(7)?,
        created_at: row.get(8)?,
        state: MessageState::parse(&state).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                9,
                rusqlite::types::Type::Text,
                format!("unknown message state {state:?}").into(),
            )
        })?,
        command_id: row.get(10)?,
        attempts: row.get(11)?,
        sent_at: row.get(12)?,
        answered_at: row.get(13)?,
        return_code: row.get(14)?,
        failure: row.get(15)?,
        printed_at: row.get(16)?,
        print_key_id: row.get(17)?,
        reprint_of: row.get(18)?,
        sender_user_id: row.get(19)?,
    })
}

impl Store {
    /// Stores a new message as `queued`, and trims the printer's history to
    /// the newest `keep` finished messages, in one transaction. Refused
    /// with [`StoreError::QueueFull`] when the printer already has
    /// `queue_limit` messages waiting (what is queued stays).
    pub fn insert_message(
        &self,
        m: &NewMessage<'_>,
        keep: usize,
        queue_limit: usize,
    ) -> Result<i64, StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        check_queue(&tx, m.printer_id, queue_limit)?;
        tx.prepare_cached(
            "INSERT INTO messages (printer_id, sender, content_kind, command_kind, page_png,
                page_width, page_height, truncated, created_at, state, print_key_id, reprint_of,
                sender_user_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 'queued', ?10, ?11, ?12)",
        )?
        .execute(params![
            m.printer_id,
            m.sender,
            m.content_kind,
            m.command_kind,
            m.page_png,
            m.page_width,
            m.page_height,
            m.truncated,
            m.created_at,
            m.print_key_id,
            m.reprint_of,
            m.sender_user_id,
        ])?;
        let id = tx.last_insert_rowid();
        trim_history(&tx, m.printer_id, keep)?;
        tx.commit()?;
        self.wrote();
        Ok(id)
    }

    /// A stored page sent again, as a new queued message from `sender`.
    /// Returns the new message's id and its printer, or `None` when there is
    /// no message `id` (it may have been trimmed from the history).
    pub fn reprint_message(
        &self,
        id: i64,
        sender: &str,
        sender_user_id: Option<i64>,
        now: i64,
        keep: usize,
        queue_limit: usize,
    ) -> Result<Option<(i64, i64)>, StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        let printer: Option<i64> = tx
            .prepare_cached("SELECT printer_id FROM messages WHERE id = ?1")?
            .query_row([id], |r| r.get(0))
            .optional()?;
        let Some(printer) = printer else {
            return Ok(None);
        };
        check_queue(&tx, printer, queue_limit)?;
        let inserted = tx
            .prepare_cached(
                "INSERT INTO messages (printer_id, sender, content_kind, command_kind, page_png,
                    page_width, page_height, truncated, created_at, state, reprint_of,
                    sender_user_id)
                 SELECT printer_id, ?2, 'reprint', command_kind, page_png,
                    page_width, page_height, truncated, ?3, 'queued', id, ?4
                 FROM messages WHERE id = ?1",
            )?
            .execute(params![id, sender, now, sender_user_id])?;
        if inserted == 0 {
            return Ok(None);
        }
        let new_id = tx.last_insert_rowid();
        let printer_id: i64 = tx.query_row(
            "SELECT printer_id FROM messages WHERE id = ?1",
            [new_id],
            |r| r.get(0),
        )?;
        trim_history(&tx, printer_id, keep)?;
        tx.commit()?;
        self.wrote();
        Ok(Some((new_id, printer_id)))
    }

    pub fn message(&self, id: i64) -> Result<Option<MessageRow>, StoreError> {
        Ok(self
            .reader()
            .prepare_cached(&format!("{MESSAGE_SELECT} WHERE id = ?1"))?
            .query_row([id], message_from_row)
            .optional()?)
    }

    /// The 1-bit page of a message, as PNG.
    pub fn message_page(&self, id: i64) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .reader()
            .prepare_cached("SELECT page_png FROM messages WHERE id = ?1")?
            .query_row([id], |r| r.get(0))
            .optional()?)
    }

    /// The oldest queued message of a printer: the next to deliver.
    pub fn next_queued(&self, printer_id: i64) -> Result<Option<MessageRow>, StoreError> {
        Ok(self
            .reader()
            .prepare_cached(&format!(
                "{MESSAGE_SELECT} WHERE printer_id = ?1 AND state = 'queued' ORDER BY id LIMIT 1"
            ))?
            .query_row([printer_id], message_from_row)
            .optional()?)
    }

    /// How many messages are in each state, and how many printers have
    /// messages waiting (for `/metrics`).
    pub fn message_counts(&self) -> Result<(Vec<(String, i64)>, i64), StoreError> {
        let conn = self.reader();
        let by_state = conn
            .prepare_cached("SELECT state, count(*) FROM messages GROUP BY state ORDER BY state")?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        let printers: i64 = conn
            .prepare_cached(
                "SELECT count(DISTINCT printer_id) FROM messages WHERE state = 'queued'",
            )?
            .query_row([], |r| r.get(0))?;
        Ok((by_state, printers))
    }

    /// Printers that have queued messages.
    pub fn printers_with_queued(&self) -> Result<Vec<i64>, StoreError> {
        let conn = self.reader();
        let mut stmt =
            conn.prepare_cached("SELECT DISTINCT printer_id FROM messages WHERE state = 'queued'")?;
        let ids = stmt
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(ids)
    }

    /// The newest messages of a printer, newest first.
    pub fn recent_messages(
        &self,
        printer_id: i64,
        limit: usize,
    ) -> Result<Vec<MessageRow>, StoreError> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(&format!(
            "{MESSAGE_SELECT} WHERE printer_id = ?1 ORDER BY id DESC LIMIT ?2"
        ))?;
        let rows = stmt
            .query_map(params![printer_id, limit as i64], message_from_row)?
            .collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    }

    /// The newest messages `user_id` sent to a printer, newest first: what
    /// a user the printer is shared with sees of its history.
    pub fn recent_messages_from(
        &self,
        printer_id: i64,
        user_id: i64,
        limit: usize,
    ) -> Result<Vec<MessageRow>, StoreError> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(&format!(
            "{MESSAGE_SELECT} WHERE printer_id = ?1 AND sender_user_id = ?2 ORDER BY id DESC LIMIT ?3"
        ))?;
        let rows = stmt
            .query_map(params![printer_id, user_id, limit as i64], message_from_row)?
            .collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    }

    /// The message handed to the bridge as `command_id`.
    pub fn mark_sent(&self, id: i64, command_id: u32, now: i64) -> Result<(), StoreError> {
        self.lock()
            .prepare_cached(
                "UPDATE messages SET state = 'sent', command_id = ?2, sent_at = ?3,
                    attempts = attempts + 1, answered_at = NULL, return_code = NULL, failure = NULL
                 WHERE id = ?1",
            )?
            .execute(params![id, command_id, now])?;
        self.wrote();
        Ok(())
    }

    /// The bridge answered: delivered (0) or failed (anything else, with
    /// `failure` saying what it means).
    pub fn mark_answered(
        &self,
        id: i64,
        return_code: u32,
        failure: Option<&str>,
        now: i64,
    ) -> Result<(), StoreError> {
        let state = if return_code == 0 {
            "delivered"
        } else {
            "failed"
        };
        self.lock()
            .prepare_cached(
                "UPDATE messages SET state = ?2, return_code = ?3, failure = ?4, answered_at = ?5
                 WHERE id = ?1",
            )?
            .execute(params![id, state, return_code, failure, now])?;
        self.wrote();
        Ok(())
    }

    /// No answer in time on a connection that stayed up.
    pub fn mark_timed_out(&self, id: i64, now: i64) -> Result<(), StoreError> {
        self.lock()
            .prepare_cached(
                "UPDATE messages SET state = 'timed_out', answered_at = ?2,
                    failure = 'no answer from the bridge within 60 s; the printer may have printed it'
                 WHERE id = ?1",
            )?
            .execute(params![id, now])?;
        self.wrote();
        Ok(())
    }

    /// Back to the queue (the connection it was sent on closed). It keeps
    /// its id, so it is at the front of its printer's queue.
    pub fn requeue(&self, id: i64) -> Result<(), StoreError> {
        self.lock()
            .prepare_cached(
                "UPDATE messages SET state = 'queued' WHERE id = ?1 AND state = 'sent'",
            )?
            .execute([id])?;
        self.wrote();
        Ok(())
    }

    /// At start: messages that were `sent` when the server stopped can never
    /// be answered on their connection; they go back to the queue. Returns
    /// how many.
    pub fn requeue_all_sent(&self) -> Result<usize, StoreError> {
        let n = self.lock().execute(
            "UPDATE messages SET state = 'queued' WHERE state = 'sent'",
            [],
        )?;
        if n > 0 {
            self.wrote();
        }
        Ok(n)
    }

    /// Queued messages created before `cutoff` become `expired`. Returns how
    /// many.
    pub fn expire_queued(&self, cutoff: i64, now: i64) -> Result<usize, StoreError> {
        let n = self.lock().execute(
            "UPDATE messages SET state = 'expired', answered_at = ?2,
                failure = 'held too long while the printer was offline'
             WHERE state = 'queued' AND created_at < ?1",
            params![cutoff, now],
        )?;
        if n > 0 {
            self.wrote();
        }
        Ok(n)
    }

    /// The printer reported did_print for `print_id` (a command id). Returns
    /// whether a message matched.
    pub fn message_printed(&self, print_id: u32, now: i64) -> Result<bool, StoreError> {
        let n = self
            .lock()
            .prepare_cached(
                "UPDATE messages SET printed_at = ?2
                 WHERE id = (SELECT id FROM messages WHERE command_id = ?1 ORDER BY id DESC LIMIT 1)",
            )?
            .execute(params![print_id, now])?;
        if n > 0 {
            self.wrote();
        }
        Ok(n > 0)
    }
}

/// [`StoreError::QueueFull`] when the printer has `limit` messages waiting.
fn check_queue(
    tx: &rusqlite::Transaction<'_>,
    printer_id: i64,
    limit: usize,
) -> Result<(), StoreError> {
    let waiting: i64 = tx
        .prepare_cached(
            "SELECT count(*) FROM messages WHERE printer_id = ?1 AND state IN ('queued', 'sent')",
        )?
        .query_row([printer_id], |r| r.get(0))?;
    if waiting as usize >= limit.max(1) {
        return Err(StoreError::QueueFull(waiting as usize));
    }
    Ok(())
}

/// Deletes a printer's finished messages beyond the newest `keep`.
fn trim_history(
    tx: &rusqlite::Transaction<'_>,
    printer_id: i64,
    keep: usize,
) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "DELETE FROM messages WHERE printer_id = ?1
            AND state NOT IN ('queued', 'sent')
            AND id NOT IN (SELECT id FROM messages WHERE printer_id = ?1 ORDER BY id DESC LIMIT ?2)",
    )?
    .execute(params![printer_id, keep as i64])?;
    Ok(())
}

/// A small text message to `printer_id` from `sender`, for tests.
#[cfg(test)]
pub(crate) fn test_message(printer_id: i64, sender: &str) -> NewMessage<'_> {
    NewMessage {
        printer_id,
        sender,
        content_kind: "text",
        command_kind: "set_delivery_and_print",
        page_png: b"png",
        page_width: 384,
        page_height: 10,
        truncated: false,
        created_at: 100,
        print_key_id: None,
        sender_user_id: None,
        reprint_of: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::DeviceAddress;

    fn store_with_printer() -> (Store, i64) {
        let s = Store::open_in_memory().unwrap();
        let p = s
            .ensure_printer(DeviceAddress::parse("000d6f000273ce0b").unwrap(), 1)
            .unwrap();
        (s, p.id)
    }

    use super::test_message as new;

    #[test]
    fn a_full_queue_refuses_new_messages_and_keeps_the_old() {
        let (s, p) = store_with_printer();
        let a = s.insert_message(&new(p, "a"), 100, 2).unwrap();
        s.insert_message(&new(p, "b"), 100, 2).unwrap();
        assert!(matches!(
            s.insert_message(&new(p, "c"), 100, 2),
            Err(StoreError::QueueFull(2))
        ));
        assert!(matches!(
            s.reprint_message(a, "again", None, 101, 100, 2),
            Err(StoreError::QueueFull(2))
        ));
        assert_eq!(s.next_queued(p).unwrap().unwrap().id, a);
        s.mark_sent(a, 7, 102).unwrap();
        s.mark_answered(a, 0, None, 103).unwrap();
        // Room again once one is delivered.
        s.insert_message(&new(p, "c"), 100, 2).unwrap();
    }

    #[test]
    fn queue_order_and_states() {
        let (s, p) = store_with_printer();
        let a = s.insert_message(&new(p, "a"), 100, 1000).unwrap();
        let b = s.insert_message(&new(p, "b"), 100, 1000).unwrap();
        assert_eq!(s.next_queued(p).unwrap().unwrap().id, a);
        s.mark_sent(a, 7, 101).unwrap();
        assert_eq!(s.next_queued(p).unwrap().unwrap().id, b);
        // The connection closed: a goes back to the front.
        s.requeue(a).unwrap();
        assert_eq!(s.next_queued(p).unwrap().unwrap().id, a);
        s.mark_sent(a, 8, 102).unwrap();
        s.mark_answered(a, 0, None, 103).unwrap();
        let row = s.message(a).unwrap().unwrap();
        assert_eq!(row.state, MessageState::Delivered);
        assert_eq!(row.attempts, 2);
        assert_eq!(row.command_id, Some(8));
        assert!(s.message_printed(8, 104).unwrap());
        assert_eq!(s.message(a).unwrap().unwrap().printed_at, Some(104));
        s.mark_sent(b, 9, 105).unwrap();
        s.mark_answered(b, 0x90, Some("refused"), 106).unwrap();
        let row = s.message(b).unwrap().unwrap();
        assert_eq!(row.state, MessageState::Failed);
        assert_eq!(row.failure.as_deref(), Some("refused"));
        assert_eq!(s.message_page(b).unwrap().unwrap(), b"png");
    }

    #[test]
    fn restart_requeues_sent_and_expiry() {
        let (s, p) = store_with_printer();
        let a = s.insert_message(&new(p, "a"), 100, 1000).unwrap();
        s.mark_sent(a, 1, 1).unwrap();
        assert_eq!(s.requeue_all_sent().unwrap(), 1);
        assert_eq!(s.message(a).unwrap().unwrap().state, MessageState::Queued);
        assert_eq!(s.printers_with_queued().unwrap(), vec![p]);
        assert_eq!(s.expire_queued(101, 200).unwrap(), 1);
        assert_eq!(s.message(a).unwrap().unwrap().state, MessageState::Expired);
    }

    #[test]
    fn history_keeps_the_newest_finished() {
        let (s, p) = store_with_printer();
        let mut ids = Vec::new();
        for i in 0..6 {
            let id = s.insert_message(&new(p, "x"), 3, 1000).unwrap();
            if i < 5 {
                s.mark_sent(id, i + 1, 1).unwrap();
                s.mark_answered(id, 0, None, 2).unwrap();
            }
            ids.push(id);
        }
        s.insert_message(&new(p, "y"), 3, 1000).unwrap();
        let left: Vec<i64> = s
            .recent_messages(p, 100)
            .unwrap()
            .iter()
            .map(|m| m.id)
            .collect();
        assert_eq!(left.len(), 3, "{left:?}");
        assert!(left.contains(&ids[5]), "queued ones are never trimmed");
    }
}
