//! Talking to systemd when the server runs as a `Type=notify` service
//! (`systemd/sirius.service`): `READY=1` once the store is open and the
//! listener bound, a `STATUS=` line with the bridges connected and printers
//! online (shown by `systemctl status sirius`), `WATCHDOG=1` keep-alives when
//! the unit sets `WatchdogSec=`, and `STOPPING=1` on the way out.
//!
//! Outside systemd (no `NOTIFY_SOCKET` in the environment) every call here
//! does nothing and no task is started.
//!
//! The keep-alive comes from a task on the server's async runtime that also
//! reads the hub's presence for the status line, so a wedged runtime or a
//! presence lock that is never released stops the keep-alives and systemd
//! restarts the service (`Restart=on-failure`).

use std::sync::Arc;
use std::time::Duration;

use sd_notify::NotifyState;
use tokio::task::JoinHandle;

use crate::bridge::Hub;

/// How often the status line is refreshed (sooner when the watchdog asks
/// for keep-alives more often).
pub const STATUS_EVERY: Duration = Duration::from_secs(10);

/// The link to systemd for one running server. Dropping it stops the
/// status and keep-alive task.
pub struct ServiceNotifier {
    task: Option<JoinHandle<()>>,
}

impl ServiceNotifier {
    /// Tells systemd the server is ready, and starts refreshing the status
    /// line (and sending keep-alives if systemd asked for them). Call it
    /// after the store is open and the listener is bound. Must be called
    /// inside the tokio runtime.
    pub fn ready(hub: Arc<Hub>) -> ServiceNotifier {
        if std::env::var_os("NOTIFY_SOCKET").is_none() {
            return ServiceNotifier { task: None };
        }
        let watchdog = sd_notify::watchdog_enabled();
        send(&[NotifyState::Ready, NotifyState::Status(&status_line(&hub))]);
        tracing::info!(
            watchdog_seconds = watchdog.map(|w| w.as_secs_f64()),
            "told systemd the server is ready"
        );
        let every = tick_interval(watchdog);
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await; // the first tick is immediate
            loop {
                tick.tick().await;
                let status = status_line(&hub);
                if watchdog.is_some() {
                    send(&[NotifyState::Watchdog, NotifyState::Status(&status)]);
                } else {
                    send(&[NotifyState::Status(&status)]);
                }
            }
        });
        ServiceNotifier { task: Some(task) }
    }

    /// Tells systemd the server is shutting down. Keep-alives go on until
    /// this notifier is dropped, so a slow, graceful shutdown is not
    /// mistaken for a hang.
    pub fn stopping(&self) {
        if self.task.is_some() {
            send(&[
                NotifyState::Stopping,
                NotifyState::Status("shutting down: closing bridge connections"),
            ]);
        }
    }
}

impl Drop for ServiceNotifier {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// The status line systemd shows, e.g. "2 bridges connected, 5 printers
/// online".
pub fn status_line(hub: &Hub) -> String {
    format_status(hub.bridges_connected(), hub.printers_online())
}

fn format_status(bridges: usize, printers: usize) -> String {
    let plural =
        |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    format!(
        "{} connected, {} online",
        plural(bridges, "bridge", "bridges"),
        plural(printers, "printer", "printers")
    )
}

/// Half the watchdog interval (as sd_watchdog_enabled(3) advises), or the
/// status refresh interval when that is shorter or there is no watchdog.
fn tick_interval(watchdog: Option<Duration>) -> Duration {
    match watchdog {
        Some(w) => (w / 2).clamp(Duration::from_millis(50), STATUS_EVERY),
        None => STATUS_EVERY,
    }
}

fn send(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(
            "could not send a notification to systemd ({e}); if the unit has WatchdogSec, \
             systemd will restart the server"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_line_reads_as_words() {
        assert_eq!(
            format_status(0, 0),
            "0 bridges connected, 0 printers online"
        );
        assert_eq!(format_status(1, 1), "1 bridge connected, 1 printer online");
        assert_eq!(
            format_status(2, 5),
            "2 bridges connected, 5 printers online"
        );
    }

    #[test]
    fn keep_alives_come_at_half_the_watchdog() {
        assert_eq!(tick_interval(None), STATUS_EVERY);
        assert_eq!(
            tick_interval(Some(Duration::from_secs(30))),
            Duration::from_secs(10)
        );
        assert_eq!(
            tick_interval(Some(Duration::from_secs(4))),
            Duration::from_secs(2)
        );
    }
}
