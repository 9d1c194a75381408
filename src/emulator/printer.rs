//! One emulated bridge with one emulated printer, behaving as the real pair
//! does: `power_on` on every connection; `encryption_key_required` until
//! the server sends the link key of the printer's own secret (a wrong key is
//! refused, loudly); then `device_connect` and a heartbeat every ~10 s;
//! every DeviceCommand decoded, its pages written as PNG files, answered and
//! followed by `did_print`; reconnection with exponential back-off when the
//! server goes away. Commands naming another bridge drop the connection, as
//! real bridges do.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use futures_util::{SinkExt as _, StreamExt as _};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tracing::{error, info, warn};

use super::EmulatorEvent;
use super::identity::PrinterIdentity;
use super::wire::{self, Incoming, Socket};
use crate::protocol::commands::decode_device_command;
use crate::protocol::device;
use crate::protocol::{BridgeAddress, CommandKind};
use crate::raster::{PRINTER_WIDTH, page_to_png};

/// How long opening a connection may take before it counts as refused.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a clean close may take when stopping.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Return codes the emulated bridge answers with (PROTOCOL §6).
const EUI64_NOT_FOUND: u32 = 0x01;
const INVALID_SIZE: u32 = 0x80;
const FILESYSTEM_WRITE_ERROR: u32 = 0x92;
const BRIDGE_ERROR: u32 = 0xff;

/// The print type of did_print for a delivery.
const PRINT_TYPE_DELIVERY: u8 = 0x01;

/// How an emulated printer behaves.
#[derive(Debug, Clone)]
pub struct PrinterOptions {
    /// The server's bridge endpoint, e.g. `ws://127.0.0.1:5002/api/v1/connection`.
    pub url: String,
    /// Where printed pages go, as `{command_id}-{n}.png`. Created if missing.
    pub out_dir: PathBuf,
    /// The bridge's address; `None` picks a random one, once per process.
    pub bridge_address: Option<BridgeAddress>,
    /// Between two `encryption_key_required` (real printers: about 30 s).
    pub key_interval: Duration,
    /// Between two heartbeats (real printers: about 10 s).
    pub heartbeat_interval: Duration,
    /// The first wait before reconnecting; doubled on each failure.
    pub backoff_min: Duration,
    /// The longest wait before reconnecting.
    pub backoff_max: Duration,
    /// Answer every decodable DeviceCommand with this return code instead of
    /// 0 (success). No did_print follows a non-zero code.
    pub answer_code: Option<u32>,
    /// Never answer a DeviceCommand: no DeviceCommandResponse and no
    /// did_print (the pages are still written), to test delivery timeouts.
    pub never_answer: bool,
}

impl PrinterOptions {
    /// The defaults of a real printer: key requests every 30 s, heartbeats
    /// every 10 s, back-off from 0.5 s to 30 s, success answers.
    pub fn new(url: impl Into<String>, out_dir: impl Into<PathBuf>) -> PrinterOptions {
        PrinterOptions {
            url: url.into(),
            out_dir: out_dir.into(),
            bridge_address: None,
            key_interval: Duration::from_secs(30),
            heartbeat_interval: Duration::from_secs(10),
            backoff_min: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            answer_code: None,
            never_answer: false,
        }
    }
}

/// Runs the bridge and its printer until `shutdown` becomes true (a
/// dropped sender never stops it). Fails only on a bad URL or an output
/// folder that cannot be created; connection trouble is retried forever,
/// logged and reported as [`EmulatorEvent::Disconnected`].
pub async fn run_printer(
    identity: PrinterIdentity,
    opts: PrinterOptions,
    events: Option<mpsc::UnboundedSender<EmulatorEvent>>,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let request = wire::bridge_request(&opts.url)?;
    std::fs::create_dir_all(&opts.out_dir).with_context(|| {
        format!(
            "could not create the output folder {} for printed pages",
            opts.out_dir.display()
        )
    })?;
    let bridge = opts
        .bridge_address
        .unwrap_or_else(wire::process_bridge_address);
    info!(
        bridge = %bridge,
        device = %identity.address,
        claim_code = %identity.claim_code(),
        url = %opts.url,
        "emulated printer starting"
    );
    let mut printer = Printer {
        link_key: identity.secret.link_key().to_base64(),
        identity,
        bridge,
        opts,
        events,
        powered_on: Instant::now(),
        has_key: false,
    };
    let mut backoff = printer.opts.backoff_min;
    loop {
        if *shutdown.borrow() {
            return Ok(());
        }
        let connected = tokio::select! {
            r = wire::connect(request.clone(), None, CONNECT_TIMEOUT) => r,
            () = wait_for_shutdown(&mut shutdown) => return Ok(()),
        };
        let reason = match connected {
            Ok(socket) => {
                backoff = printer.opts.backoff_min;
                info!(bridge = %bridge, "connected to {}", printer.opts.url);
                printer.emit(EmulatorEvent::Connected);
                match printer.session(socket, &mut shutdown).await {
                    Ok(()) => return Ok(()),
                    Err(reason) => reason,
                }
            }
            Err(e) => format!("{e:#}"),
        };
        warn!(
            bridge = %bridge,
            "{reason}; reconnecting in {:.1} s (is the server running at {}?)",
            backoff.as_secs_f64(),
            printer.opts.url
        );
        printer.emit(EmulatorEvent::Disconnected { reason });
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = wait_for_shutdown(&mut shutdown) => return Ok(()),
        }
        backoff = (backoff * 2).min(printer.opts.backoff_max);
    }
}

/// Resolves once `shutdown` is true; never if its sender is gone.
async fn wait_for_shutdown(shutdown: &mut watch::Receiver<bool>) {
    if shutdown.wait_for(|stop| *stop).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Resolves at `deadline`, or never when there is none.
async fn at(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Sends a close frame and waits (briefly) for the server's answer.
pub(crate) async fn close(socket: &mut Socket, grace: Duration) {
    let _ = tokio::time::timeout(grace, async {
        if socket.close(None).await.is_ok() {
            while let Some(Ok(_)) = socket.next().await {}
        }
    })
    .await;
}

struct Printer {
    identity: PrinterIdentity,
    link_key: String,
    bridge: BridgeAddress,
    opts: PrinterOptions,
    events: Option<mpsc::UnboundedSender<EmulatorEvent>>,
    /// When the emulated printer "powered on"; heartbeat uptime counts
    /// from here, across reconnections.
    powered_on: Instant,
    /// Whether the printer holds its link key (it keeps it across
    /// reconnections, as a real printer does).
    has_key: bool,
}

/// When the session's timers fire next.
struct Timers {
    key: Option<Instant>,
    heartbeat: Option<Instant>,
}

/// What came of a DeviceCommand once decoded and written.
enum PrintOutcome {
    Printed {
        command_id: u32,
        kind: CommandKind,
        pages: Vec<PathBuf>,
    },
    Invalid(String),
    WriteFailed(String),
}

impl Printer {
    fn emit(&self, event: EmulatorEvent) {
        if let Some(tx) = &self.events {
            let _ = tx.send(event);
        }
    }

    async fn send(socket: &mut Socket, text: String) -> Result<(), String> {
        socket
            .send(Message::text(text))
            .await
            .map_err(|e| format!("sending to the server failed: {e}"))
    }

    fn uptime(&self) -> u32 {
        u32::try_from(self.powered_on.elapsed().as_secs()).unwrap_or(u32::MAX)
    }

    async fn request_key(&self, socket: &mut Socket) -> Result<(), String> {
        let text = wire::device_bridge_event(
            self.bridge,
            self.identity.address,
            "encryption_key_required",
        );
        Self::send(socket, text).await?;
        self.emit(EmulatorEvent::KeyRequested);
        Ok(())
    }

    async fn device_connect(&self, socket: &mut Socket) -> Result<(), String> {
        let text = wire::device_bridge_event(self.bridge, self.identity.address, "device_connect");
        Self::send(socket, text).await
    }

    /// One connection, from `power_on` until it is lost (`Err` with the
    /// reason) or shutdown is asked for (`Ok`).
    async fn session(
        &mut self,
        mut socket: Socket,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), String> {
        let local = wire::local_addr(&socket);
        Self::send(&mut socket, wire::power_on(self.bridge, local)).await?;
        let mut timers = Timers {
            key: None,
            heartbeat: None,
        };
        if self.has_key {
            self.device_connect(&mut socket).await?;
            timers.heartbeat = Some(Instant::now() + self.opts.heartbeat_interval);
        } else {
            self.request_key(&mut socket).await?;
            timers.key = Some(Instant::now() + self.opts.key_interval);
        }
        loop {
            tokio::select! {
                () = wait_for_shutdown(shutdown) => {
                    info!(bridge = %self.bridge, "stopping: closing the connection");
                    close(&mut socket, CLOSE_GRACE).await;
                    return Ok(());
                }
                () = at(timers.key) => {
                    self.request_key(&mut socket).await?;
                    timers.key = Some(Instant::now() + self.opts.key_interval);
                }
                () = at(timers.heartbeat) => {
                    let binary = device::heartbeat(self.uptime());
                    let text = wire::device_event(self.bridge, self.identity.address, &binary);
                    Self::send(&mut socket, text).await?;
                    timers.heartbeat = Some(Instant::now() + self.opts.heartbeat_interval);
                }
                frame = socket.next() => match frame {
                    None => return Err("the server closed the connection".into()),
                    Some(Err(e)) => return Err(format!("the connection failed: {e}")),
                    Some(Ok(Message::Text(text))) => {
                        self.handle(&mut socket, text.as_str(), &mut timers).await?;
                    }
                    Some(Ok(Message::Close(frame))) => {
                        let why = frame
                            .map(|f| format!(" (code {}, {:?})", u16::from(f.code), f.reason.as_str()))
                            .unwrap_or_default();
                        return Err(format!("the server closed the connection{why}"));
                    }
                    Some(Ok(Message::Binary(bytes))) => warn!(
                        bridge = %self.bridge,
                        "ignoring a {}-byte binary frame: the server should send JSON text frames",
                        bytes.len()
                    ),
                    // Pings are answered by the websocket layer.
                    Some(Ok(_)) => {}
                },
            }
        }
    }

    /// Handles one text frame from the server.
    async fn handle(
        &mut self,
        socket: &mut Socket,
        text: &str,
        timers: &mut Timers,
    ) -> Result<(), String> {
        let incoming = Incoming::read(text);
        if let Some(named) = incoming.bridge()
            && !wire::names_bridge(named, self.bridge)
        {
            let reason = format!(
                "the server sent a command for bridge {named:?}, but this bridge is {}: dropping the connection, as real bridges do (the server must send back the bridge_address the bridge announced)",
                self.bridge
            );
            error!(bridge = %self.bridge, "{reason}");
            return Err(reason);
        }
        match incoming {
            Incoming::AddKey {
                command_id,
                device,
                key,
                ..
            } => {
                let Some(command_id) = command_id else {
                    error!(bridge = %self.bridge, "ignoring add_device_encryption_key without a valid command_id: the server must send a u32 command_id");
                    return Ok(());
                };
                self.add_key(socket, command_id, &device, &key, timers)
                    .await
            }
            Incoming::OtherBridgeCommand {
                command_id, name, ..
            } => {
                warn!(bridge = %self.bridge, "the emulator does not implement the bridge command {name:?}; answering bridge_error (0xff)");
                if let Some(id) = command_id {
                    let text = wire::bridge_command_response(self.bridge, id, BRIDGE_ERROR);
                    Self::send(socket, text).await?;
                }
                Ok(())
            }
            Incoming::DeviceCommand {
                command_id, device, ..
            } => self.device_command(socket, text, command_id, &device).await,
            Incoming::Unknown(what) => {
                warn!(bridge = %self.bridge, "ignoring {what} from the server: a bridge only understands BridgeCommand and DeviceCommand");
                Ok(())
            }
        }
    }

    async fn add_key(
        &mut self,
        socket: &mut Socket,
        command_id: u32,
        device: &str,
        key: &str,
        timers: &mut Timers,
    ) -> Result<(), String> {
        let me = self.identity.address;
        if !wire::names_device(device, me) {
            warn!(bridge = %self.bridge, "the server sent a link key for device {device:?}, but this bridge only has printer {me}; answering eui64_not_found (0x01)");
            let text = wire::bridge_command_response(self.bridge, command_id, EUI64_NOT_FOUND);
            return Self::send(socket, text).await;
        }
        if key != self.link_key {
            let reason = format!(
                "the server sent encryption key {key:?} for printer {me}, but it does not match the secret in the printer file (claim code {}): the printer was claimed with another code, or the server computes link keys wrongly",
                self.identity.claim_code()
            );
            error!(bridge = %self.bridge, "KEY REFUSED: {reason}; answering bridge_error (0xff) and asking again");
            self.emit(EmulatorEvent::KeyRejected { reason });
            let text = wire::bridge_command_response(self.bridge, command_id, BRIDGE_ERROR);
            return Self::send(socket, text).await;
        }
        let text = wire::bridge_command_response(self.bridge, command_id, 0);
        Self::send(socket, text).await?;
        if !self.has_key {
            self.has_key = true;
            info!(bridge = %self.bridge, device = %me, "link key accepted; the printer is online");
            self.emit(EmulatorEvent::KeyAccepted);
            self.device_connect(socket).await?;
            timers.key = None;
            timers.heartbeat = Some(Instant::now() + self.opts.heartbeat_interval);
        }
        Ok(())
    }

    async fn device_command(
        &mut self,
        socket: &mut Socket,
        text: &str,
        command_id: Option<u32>,
        device: &str,
    ) -> Result<(), String> {
        let received = Instant::now();
        let me = self.identity.address;
        if !wire::names_device(device, me) {
            warn!(bridge = %self.bridge, "the server sent a DeviceCommand for device {device:?}, but this bridge only has printer {me}; answering eui64_not_found (0x01)");
            if let Some(id) = command_id {
                let text = wire::device_command_response(
                    self.bridge,
                    me,
                    id,
                    EUI64_NOT_FOUND,
                    received.elapsed(),
                );
                Self::send(socket, text).await?;
            }
            return Ok(());
        }
        let out_dir = self.opts.out_dir.clone();
        let owned = text.to_string();
        let outcome = tokio::task::spawn_blocking(move || print(&owned, command_id, &out_dir))
            .await
            .unwrap_or_else(|e| PrintOutcome::Invalid(format!("the decoder crashed: {e}")));
        let (id, code, prints) = match outcome {
            PrintOutcome::Printed {
                command_id: id,
                kind,
                pages,
            } => {
                info!(bridge = %self.bridge, device = %me, "command {id} ({kind}): wrote {} page(s) to {}", pages.len(), self.opts.out_dir.display());
                self.emit(EmulatorEvent::Printed {
                    command_id: id,
                    command: kind.name().to_string(),
                    pages,
                });
                let prints_now = matches!(
                    kind,
                    CommandKind::SetDeliveryAndPrint | CommandKind::SetDeliveryAndPrintNoFace
                );
                (id, self.opts.answer_code.unwrap_or(0), prints_now)
            }
            PrintOutcome::Invalid(problem) => {
                error!(bridge = %self.bridge, device = %me, "could not decode DeviceCommand {command_id:?}: {problem}; answering invalid_size (0x80)");
                (command_id.unwrap_or(0), INVALID_SIZE, false)
            }
            PrintOutcome::WriteFailed(problem) => {
                error!(bridge = %self.bridge, device = %me, "{problem}; answering filesystem_write_error (0x92)");
                (command_id.unwrap_or(0), FILESYSTEM_WRITE_ERROR, false)
            }
        };
        if self.opts.never_answer {
            info!(bridge = %self.bridge, "not answering command {id} (--never-answer)");
            return Ok(());
        }
        let text = wire::device_command_response(self.bridge, me, id, code, received.elapsed());
        Self::send(socket, text).await?;
        if code == 0 && prints {
            let binary = device::did_print(PRINT_TYPE_DELIVERY, id);
            Self::send(socket, wire::device_event(self.bridge, me, &binary)).await?;
        }
        Ok(())
    }
}

/// Decodes a DeviceCommand and writes its pages as `{id}-{n}.png`.
fn print(text: &str, command_id: Option<u32>, out_dir: &std::path::Path) -> PrintOutcome {
    let received = match decode_device_command(text, PRINTER_WIDTH) {
        Ok(r) => r,
        Err(e) => return PrintOutcome::Invalid(e.to_string()),
    };
    let id = command_id.unwrap_or(received.payload.file_id);
    let mut pages = Vec::with_capacity(received.payload.pages.len());
    for (n, page) in received.payload.pages.iter().enumerate() {
        let path = out_dir.join(format!("{id}-{}.png", n + 1));
        if let Err(e) = std::fs::write(&path, page_to_png(page)) {
            return PrintOutcome::WriteFailed(format!("could not write {}: {e}", path.display()));
        }
        pages.push(path);
    }
    PrintOutcome::Printed {
        command_id: id,
        kind: received.payload.command,
        pages,
    }
}
