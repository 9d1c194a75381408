//! One task per bridge connection: read frames, decode, hand events to the
//! hub; a writer task sends what the hub queues. Bad input never ends a
//! connection; only the bridge closing, a dead socket, or a message over
//! the size cap (closed with 1009) does.

use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message, error::CapacityError};

use super::hub::Hub;
use super::presence::Outgoing;
use crate::protocol::Event;
use crate::protocol::events::{decode_bytes, decode_text};

/// The biggest message a bridge may send. Real messages are a few KB.
pub const MAX_MESSAGE: usize = 1024 * 1024;

/// Small buffers: thousands of bridges are thousands of connections.
pub fn websocket_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .max_write_buffer_size(16 * 1024 * 1024)
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE))
}

/// Runs a bridge session on an upgraded connection until it ends.
pub async fn run(hub: Arc<Hub>, upgraded: Upgraded, remote_ip: String) {
    hub.session_started();
    let ws = WebSocketStream::from_raw_socket(
        TokioIo::new(upgraded),
        Role::Server,
        Some(websocket_config()),
    )
    .await;
    let conn_id = hub.new_conn_id();
    let (mut sink, mut stream) = ws.split();
    let (tx, mut rx) = mpsc::channel::<Outgoing>(256);

    // The writer: sends queued commands; a Close ends it after a close frame.
    let writer = tokio::spawn(async move {
        while let Some(out) = rx.recv().await {
            match out {
                Outgoing::Text(text) => {
                    if let Err(e) = sink.send(Message::text(text)).await {
                        tracing::debug!("bridge write failed: {e}");
                        break;
                    }
                }
                Outgoing::Close(code, reason) => {
                    let frame = CloseFrame {
                        code: CloseCode::from(code),
                        reason: reason.into(),
                    };
                    let _ = sink.send(Message::Close(Some(frame))).await;
                    break;
                }
            }
        }
        let _ = sink.close().await;
    });

    let mut bridge = None;
    loop {
        let msg = tokio::select! {
            msg = stream.next() => msg,
            // The writer stopped (close sent or socket dead): stop reading.
            _ = tx.closed() => break,
        };
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
                    bridge = ?bridge.map(|b: crate::protocol::BridgeAddress| b.to_string()),
                    size,
                    max_size,
                    "bridge sent a message over the size limit; closing its connection (1009)"
                );
                let _ = tx
                    .send(Outgoing::Close(
                        1009,
                        format!("message too big: {size} bytes, the limit is {max_size}"),
                    ))
                    .await;
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
        if let Some(b) = event.bridge() {
            bridge = Some(b);
        }
        hub.handle_event(&event, conn_id, &tx, &remote_ip);
    }
    hub.connection_closed(bridge, conn_id);
    drop(tx);
    let _ = writer.await;
    hub.session_ended();
}
