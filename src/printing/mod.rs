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
use tokio::sync::mpsc;

use crate::bridge::hub::unix_now;
use crate::bridge::{Change, CommandFate, Hub, SendError};
use crate::compose::{Admission, Content, Envelope, RenderError, Renderer};
use crate::protocol::commands::print_command;
use crate::protocol::{CommandKind, DeviceAddress};
use crate::raster::{Page, decode_image, page_to_png, raw_page_from_image};
use crate::store::{Db, MessageRow, NewMessage, PrinterRow, StoreError};

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
    /// Messages waiting per printer at most; past it a print is refused
    /// (429 / "the queue is full"), and nothing queued is dropped.
    pub queue_limit: usize,
}

impl Default for PrintingConfig {
    fn default() -> Self {
        PrintingConfig {
            history: 100,
            hold_limit: Duration::from_secs(7 * 24 * 3600),
            expiry_interval: Duration::from_secs(60),
            time_zone: jiff::tz::TimeZone::system(),
            queue_limit: 100,
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
    #[error(
        "the printer's queue is full ({0} messages are waiting for it); try again once it has printed some"
    )]
    QueueFull(usize),
    #[error("the message could not be stored: {0}")]
    Store(StoreError),
    #[error("there is no such message")]
    NoSuchMessage,
}

impl From<StoreError> for PrintError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::QueueFull(n) => PrintError::QueueFull(n),
            other => PrintError::Store(other),
        }
    }
}

/// Who sent a message and how.
#[derive(Debug, Clone, Default)]
pub struct PrintOptions {
    /// The print key it came through, if any.
    pub print_key_id: Option<i64>,
    /// The signed-in user who sent it (web, API), if any.
    pub sender_user_id: Option<i64>,
    /// The header time (default: now).
    pub at: Option<jiff::Timestamp>,
    /// Print without the printer's face (`set_delivery_and_print_no_face`).
    pub no_face: bool,
    /// The body's typeface (text and HTML without their own fonts).
    pub font: crate::compose::MessageFont,
    /// Photo (dithered) or drawing (threshold); `None`: the server's
    /// default.
    pub dither: Option<crate::raster::convert::Dither>,
}

impl PrintOptions {
    fn command(&self) -> CommandKind {
        if self.no_face {
            CommandKind::SetDeliveryAndPrintNoFace
        } else {
            CommandKind::SetDeliveryAndPrint
        }
    }
}

pub struct Printing {
    hub: Arc<Hub>,
    db: Db,
    renderer: Arc<Renderer>,
    config: PrintingConfig,
    /// Printers (by id) with a delivery in flight.
    in_flight: Mutex<HashSet<i64>>,
}

impl Printing {
    pub fn new(hub: Arc<Hub>, renderer: Arc<Renderer>, config: PrintingConfig) -> Arc<Printing> {
        Arc::new(Printing {
            db: hub.db.clone(),
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
        let admission = self.renderer.admit().await?;
        self.print_admitted(admission, printer, content, sender, options)
            .await
    }

    /// [`Printing::print`] with a render slot already taken (take it
    /// before reading a big request body: [`Renderer::admit`]).
    pub async fn print_admitted(
        self: &Arc<Self>,
        admission: Admission,
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
            font: options.font.clone(),
            dither: options.dither,
        };
        let kind = match content {
            Content::Html(_) => "html",
            Content::Text(_) => "text",
            Content::Image(_) => "image",
        };
        let rendered = self
            .renderer
            .render_message_admitted(admission, content, envelope)
            .await?;
        self.submit(
            printer,
            rendered.page,
            rendered.truncated,
            sender,
            kind,
            at.as_second(),
            &options,
            None,
        )
        .await
    }

    /// Stores a rendered page as a new message and hands it on. The PNG is
    /// made off the runtime; the queue limit is checked in the same
    /// transaction as the insert.
    #[allow(clippy::too_many_arguments)]
    pub async fn submit(
        self: &Arc<Self>,
        printer: &PrinterRow,
        page: Page,
        truncated: bool,
        sender: &str,
        content_kind: &str,
        created_at: i64,
        options: &PrintOptions,
        reprint_of: Option<i64>,
    ) -> Result<Submitted, PrintError> {
        let (png, width, height) =
            tokio::task::spawn_blocking(move || (page_to_png(&page), page.width(), page.height()))
                .await
                .map_err(|e| {
                    PrintError::Render(RenderError::Html(format!(
                        "the page could not be stored: {e}"
                    )))
                })?;
        let printer_id = printer.id;
        let sender_owned = sender.to_string();
        let content_kind = content_kind.to_string();
        let command_kind = options.command().name();
        let print_key_id = options.print_key_id;
        let sender_user_id = options.sender_user_id;
        let history = self.config.history;
        let queue_limit = self.config.queue_limit;
        let id = self
            .db
            .write(move |s| {
                s.insert_message(
                    &NewMessage {
                        printer_id,
                        sender: &sender_owned,
                        content_kind: &content_kind,
                        command_kind,
                        page_png: &png,
                        page_width: width,
                        page_height: height,
                        truncated,
                        created_at,
                        print_key_id,
                        sender_user_id,
                        reprint_of,
                    },
                    history,
                    queue_limit,
                )
            })
            .await?;
        tracing::info!(message_id = id, printer = %printer.address, sender, "message accepted");
        Ok(self.hand_on(printer.id, printer.address, id).await)
    }

    /// A freshly stored message: sent now if its printer is online and idle,
    /// queued otherwise.
    async fn hand_on(
        self: &Arc<Self>,
        printer_id: i64,
        device: DeviceAddress,
        id: i64,
    ) -> Submitted {
        let handed = if self.pump(printer_id, device).await == Some(id) {
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
    pub async fn reprint(
        self: &Arc<Self>,
        message_id: i64,
        sender: &str,
        sender_user_id: Option<i64>,
    ) -> Result<Submitted, PrintError> {
        let (history, limit) = (self.config.history, self.config.queue_limit);
        let who = sender.to_string();
        let (id, printer_id) = self
            .db
            .write(move |s| {
                s.reprint_message(message_id, &who, sender_user_id, unix_now(), history, limit)
            })
            .await?
            .ok_or(PrintError::NoSuchMessage)?;
        let printer = self
            .db
            .read(move |s| s.printer_by_id(printer_id))
            .await?
            .ok_or(PrintError::NoSuchMessage)?;
        tracing::info!(message_id = id, reprint_of = message_id, printer = %printer.address, sender, "reprint accepted");
        Ok(self.hand_on(printer.id, printer.address, id).await)
    }

    /// Sends the printer's next queued message if it is online and has
    /// nothing in flight. Returns the id of the message sent, if any.
    pub async fn pump(self: &Arc<Self>, printer_id: i64, device: DeviceAddress) -> Option<i64> {
        if !self.hub.is_online(device) {
            return None;
        }
        if !self
            .in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(printer_id)
        {
            return None;
        }
        let sent = self.send_next(printer_id, device).await;
        if sent.is_none() {
            self.in_flight
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&printer_id);
        }
        sent
    }

    /// With the printer marked in flight: sends its oldest queued message.
    /// The page is decoded and the command encoded off the runtime.
    async fn send_next(self: &Arc<Self>, printer_id: i64, device: DeviceAddress) -> Option<i64> {
        let found = self
            .db
            .read(move |s| {
                let Some(m) = s.next_queued(printer_id)? else {
                    return Ok(None);
                };
                let png = s.message_page(m.id)?.unwrap_or_default();
                Ok::<_, StoreError>(Some((m, png)))
            })
            .await;
        let (message, png) = match found {
            Ok(Some(found)) => found,
            Ok(None) => return None,
            Err(e) => {
                tracing::error!(printer = %device, "could not read the queue: {e}");
                return None;
            }
        };
        let route = match self.hub.route_command(device) {
            Ok(r) => r,
            Err(SendError::Offline(_)) => return None,
            Err(e) => {
                tracing::warn!(message_id = message.id, "{e}; it stays queued");
                return None;
            }
        };
        let kind = CommandKind::from_name(&message.command_kind)
            .unwrap_or(CommandKind::SetDeliveryAndPrint);
        let (bridge, command_id) = (route.bridge, route.command_id);
        let built = tokio::task::spawn_blocking(move || {
            let page = load_page(&png)?;
            Ok::<_, PrintError>(
                print_command(
                    &bridge.to_string(),
                    &device.to_string(),
                    command_id,
                    kind,
                    std::slice::from_ref(&page),
                )
                .expect("one page for a delivery"),
            )
        })
        .await;
        let text = match built {
            Ok(Ok(text)) => text,
            Ok(Err(e)) => {
                tracing::error!(
                    message_id = message.id,
                    "the stored page can't be read: {e}"
                );
                let id = message.id;
                self.db
                    .write_detached(format!("mark message {id} failed"), move |s| {
                        s.mark_answered(
                            id,
                            0xff,
                            Some("the stored page could not be read"),
                            unix_now(),
                        )
                    });
                return None;
            }
            Err(e) => {
                tracing::error!(message_id = message.id, "encoding the delivery failed: {e}");
                return None;
            }
        };
        let dispatched = match self.hub.dispatch(route, kind.name(), text) {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(message_id = message.id, "{e}; it stays queued");
                return None;
            }
        };
        let id = message.id;
        let marked = self
            .db
            .write(move |s| s.mark_sent(id, command_id, unix_now()))
            .await;
        if let Err(e) = marked {
            tracing::error!(message_id = id, "could not record the delivery: {e}");
        }
        tracing::info!(
            message_id = id,
            printer = %device,
            command_id,
            attempt = message.attempts + 1,
            "delivery sent"
        );
        let this = Arc::clone(self);
        tokio::spawn(async move {
            let fate = dispatched
                .fate
                .await
                .unwrap_or(CommandFate::ConnectionClosed);
            this.settle(&message, fate).await;
            this.in_flight
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&printer_id);
            Printing::pump_again(this, printer_id, device).await;
        });
        Some(id)
    }

    /// [`Printing::pump`] as a boxed future: the delivery task calls it,
    /// and a plain `async` call would make the future's type recursive.
    fn pump_again(
        this: Arc<Self>,
        printer_id: i64,
        device: DeviceAddress,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        Box::pin(async move {
            this.pump(printer_id, device).await;
        })
    }

    /// Records what became of a delivery.
    async fn settle(&self, message: &MessageRow, fate: CommandFate) {
        let now = unix_now();
        let id = message.id;
        let result = match fate {
            CommandFate::Answered(code) if code.is_success() => {
                tracing::info!(message_id = id, "delivered");
                self.db
                    .write(move |s| s.mark_answered(id, 0, None, now))
                    .await
            }
            CommandFate::Answered(code) => {
                tracing::warn!(message_id = id, return_code = %code, "delivery failed: {}", code.description());
                self.db
                    .write(move |s| {
                        s.mark_answered(id, code.value(), Some(code.description()), now)
                    })
                    .await
            }
            CommandFate::TimedOut => {
                tracing::warn!(
                    message_id = id,
                    "no answer within 60 s: timed out (not re-sent; reprint if it did not print)"
                );
                self.db.write(move |s| s.mark_timed_out(id, now)).await
            }
            CommandFate::ConnectionClosed => {
                tracing::info!(
                    message_id = id,
                    "the bridge went away before answering: back to the queue"
                );
                self.db.write(move |s| s.requeue(id)).await
            }
        };
        if let Err(e) = result {
            tracing::error!(message_id = id, "could not record the delivery's fate: {e}");
        }
    }

    /// Tries every printer that has queued messages.
    pub async fn pump_all(self: &Arc<Self>) {
        match self.queued_printers(None).await {
            Ok(printers) => {
                for (id, address) in printers {
                    self.pump(id, address).await;
                }
            }
            Err(e) => tracing::error!("could not read the queues: {e}"),
        }
    }

    /// Printers with queued messages, as (id, address); only those among
    /// `among` when given.
    async fn queued_printers(
        &self,
        among: Option<HashSet<DeviceAddress>>,
    ) -> Result<Vec<(i64, DeviceAddress)>, StoreError> {
        self.db
            .read(move |s| {
                let mut out = Vec::new();
                for id in s.printers_with_queued()? {
                    if let Some(p) = s.printer_by_id(id)?
                        && among.as_ref().is_none_or(|a| a.contains(&p.address))
                    {
                        out.push((p.id, p.address));
                    }
                }
                Ok(out)
            })
            .await
    }

    /// Printers coming online get their queues. They are taken in
    /// batches: one read finds which of the printers that came online since
    /// the last look have messages waiting, and only those get a task (each
    /// its own, so a printer whose queue waits for the disk holds up no
    /// other). 10,000 printers coming online at once (a server restart, a
    /// network back) are a few reads, not 10,000 tasks.
    async fn pump_online(self: Arc<Self>, mut online: mpsc::UnboundedReceiver<DeviceAddress>) {
        while let Some(first) = online.recv().await {
            let mut batch = HashSet::from([first]);
            while let Ok(device) = online.try_recv() {
                batch.insert(device);
            }
            match self.queued_printers(Some(batch)).await {
                Ok(printers) => {
                    for (id, address) in printers {
                        let this = Arc::clone(&self);
                        tokio::spawn(async move { this.pump(id, address).await });
                    }
                }
                Err(e) => {
                    tracing::error!("could not read the queues of printers that came online: {e}")
                }
            }
        }
    }

    fn record_printed(&self, device: DeviceAddress, print_id: u32) {
        let now = unix_now();
        self.db.write_detached(
            format!("record did_print {print_id} of {device}"),
            move |s| s.message_printed(print_id, now).map(|_| ()),
        );
    }

    /// Starts the queue: messages that were in flight when the server
    /// stopped go back to the queue; printers coming online get their
    /// queues; held messages expire. Runs until `shutdown` turns true.
    pub fn start(
        self: &Arc<Self>,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        let this = Arc::clone(self);
        let mut changes = self.hub.subscribe();
        tokio::spawn(async move {
            match this.db.write(|s| s.requeue_all_sent()).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(
                    count = n,
                    "messages that were in flight when the server stopped are queued again"
                ),
                Err(e) => tracing::error!("could not requeue messages in flight: {e}"),
            }
            let (online_tx, online) = mpsc::unbounded_channel();
            tokio::spawn(Arc::clone(&this).pump_online(online));
            let mut expiry = tokio::time::interval(this.config.expiry_interval);
            loop {
                tokio::select! {
                    change = changes.recv() => match change {
                        Ok(Change::Online(device)) => {
                            let _ = online_tx.send(device);
                        }
                        Ok(Change::Printed { device, print_id }) => this.record_printed(device, print_id),
                        Ok(Change::Offline(_)) => {}
                        Err(RecvError::Lagged(n)) => {
                            tracing::debug!(missed = n, "missed presence changes; checking every queue");
                            let this = Arc::clone(&this);
                            tokio::spawn(async move { this.pump_all().await });
                        }
                        Err(RecvError::Closed) => break,
                    },
                    _ = expiry.tick() => {
                        // Also picks up messages queued by another process
                        // (`sirius message reprint`) for printers online now.
                        let this = Arc::clone(&this);
                        tokio::spawn(async move {
                            this.pump_all().await;
                            let now = unix_now();
                            let cutoff = now - this.config.hold_limit.as_secs() as i64;
                            match this.db.write(move |s| s.expire_queued(cutoff, now)).await {
                                Ok(0) => {}
                                Ok(n) => tracing::info!(count = n, "messages held too long expired"),
                                Err(e) => tracing::error!("could not expire messages: {e}"),
                            }
                        });
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
