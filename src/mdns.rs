//! mDNS (Bonjour/Avahi): the server announces itself on the local network
//! as an `_http._tcp` service named "Sirius on HOSTNAME" with its port, so
//! phones and laptops list it and open the web app without typing an
//! address. `--no-mdns` (`SIRIUS_NO_MDNS`) turns it off.
//!
//! It never stops the server: when multicast is not possible (no network
//! yet, a container without multicast, a firewall), the server starts and
//! the log says, in plain words, that it could not announce itself. A server
//! listening on a loopback address only is not announced (nobody else could
//! reach it); one listening on a single address is announced with that
//! address; one listening on `0.0.0.0` with the machine's IPv4 addresses
//! (followed as they change), on `[::]` with all of them. On shutdown the
//! announcement is withdrawn (a "goodbye"), so browsers drop it at once.

use std::net::IpAddr;
use std::time::Duration;

use mdns_sd::{DaemonEvent, IfKind, ServiceDaemon, ServiceInfo};

/// The DNS-SD service type of a web server.
pub const SERVICE_TYPE: &str = "_http._tcp.local.";

/// DNS labels (and so instance names) are at most 63 bytes.
const MAX_LABEL: usize = 63;

/// The machine's host name, as the kernel has it.
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return String::new();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// The first label of a host name, made a valid DNS label (letters,
/// digits, '-'); "sirius" when nothing is left.
fn host_label(hostname: &str) -> String {
    let first = hostname.split('.').next().unwrap_or_default();
    let label: String = first
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(MAX_LABEL)
        .collect();
    let label = label.trim_matches('-');
    if label.is_empty() {
        "sirius".into()
    } else {
        label.to_string()
    }
}

/// The instance name people see: "Sirius on HOSTNAME".
pub fn instance_name(hostname: &str) -> String {
    let mut name = format!("Sirius on {}", host_label(hostname));
    name.truncate(MAX_LABEL);
    name
}

/// What to announce for a server listening on `listen` (the port it is
/// bound to), or `None` when it listens on a loopback address only.
pub fn service_info(
    listen: IpAddr,
    port: u16,
    hostname: &str,
) -> Result<Option<ServiceInfo>, mdns_sd::Error> {
    if listen.is_loopback() {
        return Ok(None);
    }
    let host = format!("{}.local.", host_label(hostname));
    let name = instance_name(hostname);
    let properties = [("path", "/")];
    let info = if listen.is_unspecified() {
        let mut info = ServiceInfo::new(SERVICE_TYPE, &name, &host, "", port, &properties[..])?
            .enable_addr_auto();
        // 0.0.0.0 accepts IPv4 only: don't send phones to IPv6 addresses.
        if listen.is_ipv4() {
            info.set_interfaces(vec![IfKind::IPv4]);
        }
        info
    } else {
        let mut info = ServiceInfo::new(SERVICE_TYPE, &name, &host, listen, port, &properties[..])?;
        info.set_interfaces(vec![IfKind::Addr(listen)]);
        info
    };
    Ok(Some(info))
}

/// A running announcement; [`Announcement::stop`] withdraws it.
pub struct Announcement {
    daemon: ServiceDaemon,
    fullname: String,
}

impl std::fmt::Debug for Announcement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Announcement")
            .field("fullname", &self.fullname)
            .finish_non_exhaustive()
    }
}

/// Starts announcing a server listening on `listen` at `port`. `None` when
/// there is nothing to announce (loopback) or it could not start (then the
/// log says why). Never blocks for long, never fails the server.
pub fn announce(listen: IpAddr, port: u16) -> Option<Announcement> {
    let hostname = hostname();
    let info = match service_info(listen, port, &hostname) {
        Ok(Some(info)) => info,
        Ok(None) => {
            tracing::info!(
                "listening on {listen} only, so not announcing on the local network (mDNS)"
            );
            return None;
        }
        Err(e) => {
            tracing::warn!(
                "could not announce Sirius on the local network (mDNS): {e}; it still works, people just type its address"
            );
            return None;
        }
    };
    let daemon = match ServiceDaemon::new() {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(
                "could not announce Sirius on the local network (mDNS): {e}; it still works, people just type its address"
            );
            return None;
        }
    };
    if let Ok(events) = daemon.monitor() {
        let name = info.get_fullname().to_string();
        let spawned = std::thread::Builder::new()
            .name("mdns-events".into())
            .spawn(move || report_events(events, &name, port));
        if let Err(e) = spawned {
            tracing::debug!("no thread for mDNS events: {e}");
        }
    }
    let fullname = info.get_fullname().to_string();
    if let Err(e) = daemon.register(info) {
        tracing::warn!(
            "could not announce Sirius on the local network (mDNS): {e}; it still works, people just type its address"
        );
        let _ = daemon.shutdown();
        return None;
    }
    tracing::info!(
        name = %instance_name(&hostname),
        port,
        "announcing the web app on the local network (mDNS, _http._tcp); --no-mdns turns this off"
    );
    Some(Announcement { daemon, fullname })
}

/// Logs what the daemon reports: the first failure as a warning in plain
/// words (later ones quietly: they repeat with every announcement), name
/// changes as news.
fn report_events(events: mdns_sd::Receiver<DaemonEvent>, name: &str, port: u16) {
    let mut warned = false;
    while let Ok(event) = events.recv() {
        match event {
            DaemonEvent::Error(e) if !warned => {
                warned = true;
                tracing::warn!(
                    "could not announce Sirius on the local network (mDNS): {e}; phones and laptops won't list it by name, but it still works at http://THIS-HOST:{port}/ (is multicast blocked? --no-mdns turns announcing off)"
                );
            }
            DaemonEvent::Error(e) => tracing::debug!("mDNS: {e}"),
            DaemonEvent::NameChange(change) => tracing::info!(
                "another device on the network already announces {:?}; Sirius is announced as {:?}",
                change.original,
                change.new_name
            ),
            DaemonEvent::Announce(service, interface) => {
                tracing::debug!(%service, %interface, "announced {name}");
            }
            _ => {}
        }
    }
}

impl Announcement {
    /// The full DNS-SD name, e.g. `Sirius on pi._http._tcp.local.`.
    pub fn fullname(&self) -> &str {
        &self.fullname
    }

    /// Withdraws the announcement (browsers drop it at once) and stops the
    /// daemon. Blocks for up to about two seconds.
    pub fn stop(self) {
        if let Ok(done) = self.daemon.unregister(&self.fullname) {
            let _ = done.recv_timeout(Duration::from_secs(1));
        }
        if let Ok(done) = self.daemon.shutdown() {
            let _ = done.recv_timeout(Duration::from_secs(1));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_name_is_sirius_on_the_host() {
        assert_eq!(instance_name("pi"), "Sirius on pi");
        assert_eq!(instance_name("kitchen-pi.lan"), "Sirius on kitchen-pi");
        assert_eq!(instance_name("my_box"), "Sirius on my-box");
        assert_eq!(instance_name(""), "Sirius on sirius");
        assert!(instance_name(&"x".repeat(200)).len() <= 63);
    }

    #[test]
    fn what_is_announced() {
        let info = service_info("0.0.0.0".parse().unwrap(), 5002, "pi")
            .unwrap()
            .unwrap();
        assert_eq!(info.get_type(), "_http._tcp.local.");
        assert_eq!(info.get_fullname(), "Sirius on pi._http._tcp.local.");
        assert_eq!(info.get_hostname(), "pi.local.");
        assert_eq!(info.get_port(), 5002);
        assert_eq!(info.get_property_val_str("path"), Some("/"));
        assert!(info.is_addr_auto());

        let one = service_info("192.168.1.20".parse().unwrap(), 8080, "pi")
            .unwrap()
            .unwrap();
        assert_eq!(one.get_port(), 8080);
        assert!(!one.is_addr_auto());
        assert_eq!(
            one.get_addresses_v4().into_iter().collect::<Vec<_>>(),
            [&"192.168.1.20".parse::<std::net::Ipv4Addr>().unwrap()]
        );
    }

    #[test]
    fn loopback_only_is_not_announced() {
        assert!(
            service_info("127.0.0.1".parse().unwrap(), 5002, "pi")
                .unwrap()
                .is_none()
        );
        assert!(
            service_info("::1".parse().unwrap(), 5002, "pi")
                .unwrap()
                .is_none()
        );
    }
}
