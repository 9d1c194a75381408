//! One task per bridge connection: read frames, decode, hand events to the
//! hub; a writer task sends what the hub queues. Bad input never ends a
//! connection; only the bridge closing, a dead socket, 90 s of silence
//! (not even a pong to the server's pings), or a message over the size cap
//! (closed with 1009) does.

use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message, error::CapacityError};

use super::hub::{Connection, Hub};
use super::presence::Outgoing;
use crate::protocol::events::{decode_bytes, decode_text};
use crate::protocol::{BridgeAddress, Event};

/// The biggest message a bridge may send. Real messages are a few KB.
pub const MAX_MESSAGE: usize = 1024 * 1024;

/// Small buffers: thousands of bridges are thousands of connections. The
/// read buffer is filled (zeroed) to its size, so each connection keeps
/// that much memory for as long as it lives: 1 KiB holds a bridge's
/// heartbeat or event whole, and a bigger message is read in 1 KiB steps.
/// (4 KiB cost 8 MB with 2,000 bridges.)
pub fn websocket_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(1024)
        .write_buffer_size(0)
        .max_write_buffer_size(16 * 1024 * 1024)
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE))
}

/// Ends a session's business with the hub however the session ends — a
/// panic included: its printers go offline, its commands fail over, the
/// live-session count drops.
struct SessionGuard {
    hub: Arc<Hub>,
    conn_id: u64,
    bridges: Vec<BridgeAddress>,
    closed: bool,
}

impl SessionGuard {
    /// The hub lets go of the connection (and its sender, so the writer
    /// can end).
    fn close(&mut self) {
        if !self.closed {
            self.closed = true;
            self.hub.connection_closed(self.conn_id, &self.bridges);
        }
    }
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        self.close();
        self.hub.session_ended();
    }
}

/// Runs a bridge session on an upgraded connection until it ends.
///
/// The server pings the bridge every [`HubConfig::ping_interval`]; a bridge
/// that sent nothing at all (no message, no pong) for
/// [`HubConfig::idle_timeout`] is closed — a bridge whose network died
/// without a FIN would otherwise hold its printers "online" for ever.
///
/// [`HubConfig::ping_interval`]: super::HubConfig::ping_interval
/// [`HubConfig::idle_timeout`]: super::HubConfig::idle_timeout
pub async fn run<S>(hub: Arc<Hub>, io: S, remote_ip: String)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    hub.session_started();
    let conn_id = hub.new_conn_id();
    let mut guard = SessionGuard {
        hub: Arc::clone(&hub),
        conn_id,
        bridges: Vec::new(),
        closed: false,
    };
    let ws = WebSocketStream::from_raw_socket(io, Role::Server, Some(websocket_config())).await;
    let (mut sink, mut stream) = ws.split();
    let (tx, mut rx) = mpsc::channel::<Outgoing>(256);

    // The writer: sends queued commands; a Close ends it after a close frame.
    let writer = tokio::spawn(async move {
        while let Some(out) = rx.recv().await {
            let sent = match out {
                Outgoing::Text(text) => sink.send(Message::text(String::from(text))).await,
                Outgoing::Ping => sink.send(Message::Ping(Default::default())).await,
                Outgoing::Close(code, reason) => {
                    let frame = CloseFrame {
                        code: CloseCode::from(code),
                        reason: String::from(reason).into(),
                    };
                    let _ = sink.send(Message::Close(Some(frame))).await;
                    break;
                }
            };
            if let Err(e) = sent {
                tracing::debug!("bridge write failed: {e}");
                break;
            }
        }
        let _ = sink.close().await;
    });

    let mut conn = Connection::new(conn_id, tx.clone(), remote_ip);
    let ping_every = hub.config.ping_interval;
    let idle_limit = hub.config.idle_timeout;
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + ping_every, ping_every);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Whether anything arrived since the last ping tick, and the tick
    // that last saw something: cheaper than reading the clock for every
    // message (a flood of heartbeats is hundreds of thousands a second).
    // A silent bridge is closed between `idle_limit` and `idle_limit` plus
    // one ping interval after its last message.
    let mut heard = false;
    let mut last_heard = tokio::time::Instant::now();
    // The writer stopped (close sent or socket dead): stop reading. Made
    // once, not on every message.
    let mut writer_gone = Box::pin(tx.closed());
    loop {
        let msg = tokio::select! {
            biased;
            msg = stream.next() => msg,
            _ = ping.tick() => {
                if std::mem::take(&mut heard) {
                    last_heard = tokio::time::Instant::now();
                } else if last_heard.elapsed() >= idle_limit {
                    hub.stats.idle_closed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    tracing::info!(
                        bridge = ?conn.bridges.first().map(|b| b.to_string()),
                        remote_ip = %conn.remote_ip,
                        "bridge sent nothing for {} s or more, not even a pong; closing its connection",
                        last_heard.elapsed().as_secs()
                    );
                    let _ = tx.try_send(Outgoing::Close(1001, "no traffic from the bridge".into()));
                    break;
                }
                let _ = tx.try_send(Outgoing::Ping);
                continue;
            }
            _ = writer_gone.as_mut() => break,
        };
        heard = true;
        // One unit of the task's budget per message, not per socket read
        // (a read holds several heartbeats): a flooding bridge yields to
        // the others, and to new connections, every 128 messages.
        tokio::task::consume_budget().await;
        let event = match msg {
            Some(Ok(Message::Text(text))) => decode_text(&text),
            Some(Ok(Message::Binary(bytes))) => decode_bytes(&bytes),
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
            Some(Ok(Message::Close(_))) | None => break,
            Some(Err(WsError::Capacity(CapacityError::MessageTooLong { size, max_size }))) => {
                hub.stats
                    .frames_too_big
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::warn!(
                    bridge = ?conn.bridges.first().map(|b| b.to_string()),
                    size,
                    max_size,
                    "bridge sent a message over the size limit; closing its connection (1009)"
                );
                let _ = tx.try_send(Outgoing::Close(
                    1009,
                    format!("message too big: {size} bytes, the limit is {max_size}").into(),
                ));
                break;
            }
            Some(Err(WsError::Utf8(e))) => {
                // A text frame that is not UTF-8: malformed, but the
                // connection stays.
                Event::Malformed {
                    bridge: None,
                    device: None,
                    error: format!("text frame is not UTF-8: {e}"),
                }
            }
            Some(Err(e)) => {
                tracing::debug!("bridge connection ended: {e}");
                break;
            }
        };
        hub.handle_event(&event, &mut conn).await;
        if guard.bridges.len() != conn.bridges.len() {
            guard.bridges = conn.bridges.clone();
        }
    }
    drop(writer_gone);
    drop(conn);
    drop(tx);
    guard.close();
    // A peer that stopped reading must not hold the session: the writer
    // gets a few seconds to send the close frame.
    let abort = writer.abort_handle();
    if tokio::time::timeout(std::time::Duration::from_secs(5), writer)
        .await
        .is_err()
    {
        abort.abort();
    }
    drop(guard);
}
