//! Printing: the one entry point every path that prints goes through
//! ([`Printing::print`]), and the delivery queue behind it.
//!
//! A message is rendered to its 1-bit page and stored (`queued`) before
//! anything is sent. Each printer has at most one delivery in flight (the
//! Zigbee link takes seconds per transfer); the next goes when the previous
//! is answered or timed out. Queued messages go out, oldest first, as soon as
//! the printer is online — any event that marks it alive. A delivery whose
//! connection closed before the answer goes back to the front of the queue
//! (at-least-once; the printer's did_print and the command id tell a
//! duplicate). One that got no answer within 60 s on a live connection is
//! `timed_out` and is not re-sent by itself: the bridge had it and the
//! printer may well have printed it; history offers reprint. Everything is
//! in the store, so all of it survives a restart, `kill -9` included.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;

use crate::bridge::hub::unix_now;
use crate::bridge::{Change, CommandFate, Hub, SendError};
use crate::compose::{Content, Envelope, RenderError, Renderer};
use crate::protocol::CommandKind;
use crate::protocol::commands::print_command;
use crate::raster::{Page, decode_image, page_to_png, raw_page_from_image};
use crate::store::{MessageRow, NewMessage, PrinterRow, Store, StoreError};

/// Settings of the delivery queue.
#[derive(Debug, Clone)]
pub struct PrintingConfig {
    /// Finished messages kept per printer (history); older ones are trimmed.
    pub history: usize,
    /// Queued messages older than this expire.
    pub hold_limit: Duration,
    /// How often expiry runs and every queue is looked at (messages queued
    /// by the command line are picked up then).
    pub expiry_interval: Duration,
    /// The time zone of the header line of messages.
    pub time_zone: jiff::tz::TimeZone,
}

impl Default for PrintingConfig {
    fn default() -> Self {
        PrintingConfig {
            history: 100,
            hold_limit: Duration::from_secs(7 * 24 * 3600),
            expiry_interval: Duration::from_secs(60),
            time_zone: jiff::tz::TimeZone::system(),
        }
    }
}

/// Where a printed message went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handed {
    /// Sent to the printer's bridge now.
    Sent,
    /// Held: the printer is offline, or another delivery is in flight.
    Queued,
}

impl Handed {
    pub fn as_str(self) -> &'static str {
        match self {
            Handed::Sent => "sent",
            Handed::Queued => "queued",
        }
    }
}

/// A message accepted for printing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Submitted {
    pub message_id: i64,
    pub handed: Handed,
}

/// Why a message was not accepted. Written for the sender.
#[derive(Debug, thiserror::Error)]
pub enum PrintError {
    #[error("{0}")]
    Render(#[from] RenderError),
    #[error("the message could not be stored: {0}")]
    Store(#[from] StoreError),
    #[error("there is no such message")]
    NoSuchMessage,
}

/// Who sent a message and how.
#[derive(Debug, Clone, Default)]
pub struct PrintOptions {
    /// The print key it came through, if any.
    pub print_key_id: Option<i64>,
    /// The header time (default: now).
    pub at: Option<jiff::Timestamp>,
}

pub struct Printing {
    hub: Arc<Hub>,
    store: Arc<Store>,
    renderer: Arc<Renderer>,
    config: PrintingConfig,
    /// Printers (by id) with a delivery in flight.
    in_flight: Mutex<HashSet<i64>>,
}

impl Printing {
    pub fn new(hub: Arc<Hub>, renderer: Arc<Renderer>, config: PrintingConfig) -> Arc<Printing> {
        Arc::new(Printing {
            store: Arc::clone(&hub.store),
            hub,
            renderer,
            config,
            in_flight: Mutex::new(HashSet::new()),
        })
    }

    pub fn renderer(&self) -> &Arc<Renderer> {
        &self.renderer
    }

    pub fn config(&self) -> &PrintingConfig {
        &self.config
    }

    /// Prints `content` on `printer`: renders it through the message
    /// template, stores it, and sends it now or queues it.
    pub async fn print(
        self: &Arc<Self>,
        printer: &PrinterRow,
        content: Content,
        sender: &str,
        options: PrintOptions,
    ) -> Result<Submitted, PrintError> {
        let at = options.at.unwrap_or_else(jiff::Timestamp::now);
        let envelope = Envelope {
            sender: sender.to_string(),
            at,
            time_zone: self.config.time_zone.clone(),
            font: Default::default(),
        };
        let kind = match content {
            Content::Html(_) => "html",
            Content::Text(_) => "text",
            Content::Image(_) => "image",
        };
        let rendered = self.renderer.render_message(content, envelope).await?;
        self.submit(
            printer,
            &rendered.page,
            rendered.truncated,
            sender,
            kind,
            at.as_second(),
            options.print_key_id,
            None,
        )
    }

    /// Stores a rendered page as a new message and hands it on.
    #[allow(clippy::too_many_arguments)]
    pub fn submit(
        self: &Arc<Self>,
        printer: &PrinterRow,
        page: &Page,
        truncated: bool,
        sender: &str,
        content_kind: &str,
        created_at: i64,
        print_key_id: Option<i64>,
        reprint_of: Option<i64>,
    ) -> Result<Submitted, PrintError> {
        let png = page_to_png(page);
        let id = self.store.insert_message(
            &NewMessage {
                printer_id: printer.id,
                sender,
                content_kind,
                command_kind: CommandKind::SetDeliveryAndPrint.name(),
                page_png: &png,
                page_width: page.width(),
                page_height: page.height(),
                truncated,
                created_at,
                print_key_id,
                reprint_of,
            },
            self.config.history,
        )?;
        tracing::info!(message_id = id, printer = %printer.address, sender, "message accepted");
        Ok(self.hand_on(printer, id))
    }

    /// A freshly stored message: sent now if its printer is online and idle,
    /// queued otherwise.
    fn hand_on(self: &Arc<Self>, printer: &PrinterRow, id: i64) -> Submitted {
        let handed = if self.pump(printer.id, printer.address) == Some(id) {
            Handed::Sent
        } else {
            Handed::Queued
        };
        Submitted {
            message_id: id,
            handed,
        }
    }

    /// Sends a stored page again, as a new message.
    pub fn reprint(
        self: &Arc<Self>,
        message_id: i64,
        sender: &str,
    ) -> Result<Submitted, PrintError> {
        let (id, printer_id) = self
            .store
            .reprint_message(message_id, sender, unix_now(), self.config.history)?
            .ok_or(PrintError::NoSuchMessage)?;
        let printer = self
            .store
            .printer_by_id(printer_id)?
            .ok_or(PrintError::NoSuchMessage)?;
        tracing::info!(message_id = id, reprint_of = message_id, printer = %printer.address, sender, "reprint accepted");
        Ok(self.hand_on(&printer, id))
    }

    /// Sends the printer's next queued message if it is online and has
    /// nothing in flight. Returns the id of the message sent, if any.
    pub fn pump(
        self: &Arc<Self>,
        printer_id: i64,
        device: crate::protocol::DeviceAddress,
    ) -> Option<i64> {
        if !self.hub.is_online(device) {
            return None;
        }
        {
            let mut busy = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
            if !busy.insert(printer_id) {
                return None;
            }
        }
        let sent = self.send_next(printer_id, device);
        if sent.is_none() {
            self.in_flight
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&printer_id);
        }
        sent
    }

    /// With the printer marked in flight: sends its oldest queued message.
    fn send_next(
        self: &Arc<Self>,
        printer_id: i64,
        device: crate::protocol::DeviceAddress,
    ) -> Option<i64> {
        let message = match self.store.next_queued(printer_id) {
            Ok(Some(m)) => m,
            Ok(None) => return None,
            Err(e) => {
                tracing::error!(printer = %device, "could not read the queue: {e}");
                return None;
            }
        };
        let page = match self
            .store
            .message_page(message.id)
            .map_err(PrintError::from)
            .and_then(|png| load_page(&png.unwrap_or_default()))
        {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(
                    message_id = message.id,
                    "the stored page can't be read: {e}"
                );
                let _ = self.store.mark_answered(
                    message.id,
                    0xff,
                    Some("the stored page could not be read"),
                    unix_now(),
                );
                return None;
            }
        };
        let kind = CommandKind::from_name(&message.command_kind)
            .unwrap_or(CommandKind::SetDeliveryAndPrint);
        let device_text = device.to_string();
        let dispatched = self.hub.send_to_device(device, kind.name(), |bridge, id| {
            print_command(bridge, &device_text, id, kind, std::slice::from_ref(&page))
                .expect("one page for a delivery")
        });
        let dispatched = match dispatched {
            Ok(d) => d,
            Err(SendError::Offline(_)) => return None,
            Err(e @ SendError::BridgeBusy(_)) => {
                tracing::warn!(message_id = message.id, "{e}; it stays queued");
                return None;
            }
        };
        if let Err(e) = self
            .store
            .mark_sent(message.id, dispatched.command_id, unix_now())
        {
            tracing::error!(
                message_id = message.id,
                "could not record the delivery: {e}"
            );
        }
        tracing::info!(
            message_id = message.id,
            printer = %device,
            command_id = dispatched.command_id,
            attempt = message.attempts + 1,
            "delivery sent"
        );
        let this = Arc::clone(self);
        let id = message.id;
        tokio::spawn(async move {
            let fate = dispatched
                .fate
                .await
                .unwrap_or(CommandFate::ConnectionClosed);
            this.settle(&message, fate);
            this.in_flight
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&printer_id);
            this.pump(printer_id, device);
        });
        Some(id)
    }

    /// Records what became of a delivery.
    fn settle(&self, message: &MessageRow, fate: CommandFate) {
        let now = unix_now();
        let result = match fate {
            CommandFate::Answered(code) if code.is_success() => {
                tracing::info!(message_id = message.id, "delivered");
                self.store.mark_answered(message.id, 0, None, now)
            }
            CommandFate::Answered(code) => {
                tracing::warn!(message_id = message.id, return_code = %code, "delivery failed: {}", code.description());
                self.store
                    .mark_answered(message.id, code.value(), Some(code.description()), now)
            }
            CommandFate::TimedOut => {
                tracing::warn!(
                    message_id = message.id,
                    "no answer within 60 s: timed out (not re-sent; reprint if it did not print)"
                );
                self.store.mark_timed_out(message.id, now)
            }
            CommandFate::ConnectionClosed => {
                tracing::info!(
                    message_id = message.id,
                    "the bridge went away before answering: back to the queue"
                );
                self.store.requeue(message.id)
            }
        };
        if let Err(e) = result {
            tracing::error!(
                message_id = message.id,
                "could not record the delivery's fate: {e}"
            );
        }
    }

    /// Tries every printer that has queued messages.
    pub fn pump_all(self: &Arc<Self>) {
        let ids = match self.store.printers_with_queued() {
            Ok(ids) => ids,
            Err(e) => {
                tracing::error!("could not read the queues: {e}");
                return;
            }
        };
        for id in ids {
            if let Ok(Some(p)) = self.store.printer_by_id(id) {
                self.pump(p.id, p.address);
            }
        }
    }

    fn on_change(self: &Arc<Self>, change: Change) {
        match change {
            Change::Online(device) => {
                if let Ok(Some(p)) = self.store.printer_by_address(device) {
                    self.pump(p.id, device);
                }
            }
            Change::Printed { device, print_id } => {
                match self.store.message_printed(print_id, unix_now()) {
                    Ok(true) => tracing::debug!(%device, print_id, "printed"),
                    Ok(false) => {}
                    Err(e) => tracing::error!("could not record did_print: {e}"),
                }
            }
            Change::Offline(_) => {}
        }
    }

    /// Starts the queue: messages that were in flight when the server
    /// stopped go back to the queue; printers coming online get their
    /// queues; held messages expire. Runs until `shutdown` turns true.
    pub fn start(
        self: &Arc<Self>,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        match self.store.requeue_all_sent() {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                count = n,
                "messages that were in flight when the server stopped are queued again"
            ),
            Err(e) => tracing::error!("could not requeue messages in flight: {e}"),
        }
        let this = Arc::clone(self);
        let mut changes = self.hub.subscribe();
        tokio::spawn(async move {
            let mut expiry = tokio::time::interval(this.config.expiry_interval);
            loop {
                tokio::select! {
                    change = changes.recv() => match change {
                        Ok(c) => this.on_change(c),
                        Err(RecvError::Lagged(n)) => {
                            tracing::debug!(missed = n, "missed presence changes; checking every queue");
                            this.pump_all();
                        }
                        Err(RecvError::Closed) => break,
                    },
                    _ = expiry.tick() => {
                        // Also picks up messages queued by another process
                        // (`sirius message reprint`) for printers online now.
                        this.pump_all();
                        let now = unix_now();
                        let cutoff = now - this.config.hold_limit.as_secs() as i64;
                        match this.store.expire_queued(cutoff, now) {
                            Ok(0) => {}
                            Ok(n) => tracing::info!(count = n, "messages held too long expired"),
                            Err(e) => tracing::error!("could not expire messages: {e}"),
                        }
                    }
                    _ = shutdown.changed() => break,
                }
            }
        })
    }
}

/// A stored page PNG back to a page.
pub fn load_page(png: &[u8]) -> Result<Page, PrintError> {
    decode_image(png)
        .ok()
        .and_then(|img| raw_page_from_image(&img).ok())
        .ok_or_else(|| {
            PrintError::Store(StoreError::Corrupt(
                "a stored page is not a 1-bit PNG".into(),
            ))
        })
}
