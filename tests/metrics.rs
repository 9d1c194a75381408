//! `/metrics`: Prometheus text from a real server after real traffic.

mod common;

use common::*;
use sirius::protocol::{ClaimCode, DeviceAddress};

const BRIDGE: &str = "000d6f0001b3719d";
const DEVICE: &str = "000d6f000273ce0b";
const CODE: &str = "n5ry-p6x6-kth7-7hc4";

/// The value of the first sample line starting with `name` (labels
/// included in `name` when given).
fn sample(page: &str, name: &str) -> Option<f64> {
    page.lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn metrics_tell_what_the_server_did_and_only_to_this_machine() {
    let dir = temp_dir("metrics");
    let s = server(&dir.join("sirius.db")).await;
    let store = s.hub.store();
    let user = store.create_user("ada", None, 1).unwrap();
    store
        .claim(user.id, &ClaimCode::parse(CODE).unwrap(), "Kitchen", 1)
        .unwrap();
    let p = store
        .ensure_printer(DeviceAddress::parse(DEVICE).unwrap(), 1)
        .unwrap();
    let secret = sirius::web::print_key::new_secret();
    store
        .create_print_key(p.id, &secret, None, None, 1)
        .unwrap();
    let mut ws = connect(&s).await;
    send(&mut ws, &power_on(BRIDGE)).await;
    for i in 0..3 {
        send(&mut ws, &heartbeat(BRIDGE, DEVICE, i)).await;
    }
    assert!(
        eventually(2.0, || s
            .hub
            .is_online(DeviceAddress::parse(DEVICE).unwrap()))
        .await
    );
    // A print while nobody answers for the printer: it is sent and waits.
    let (status, _, _) = http(
        s.addr,
        "POST",
        &format!("/printkey/{secret}"),
        &[("Content-Type", "text/plain")],
        b"counted",
    )
    .await;
    assert_eq!(status, 200);
    let (status, headers, body) = http(s.addr, "GET", "/metrics", &[], b"").await;
    assert_eq!(status, 200);
    assert!(
        header(&headers, "content-type")
            .unwrap()
            .contains("openmetrics")
    );
    let page = String::from_utf8(body).unwrap();
    assert_eq!(
        sample(&page, "sirius_bridges_connected"),
        Some(1.0),
        "{page}"
    );
    assert_eq!(sample(&page, "sirius_printers_online"), Some(1.0));
    assert!(sample(&page, "sirius_heartbeats_total").unwrap() >= 3.0);
    assert!(sample(&page, "sirius_commands_sent_total").unwrap() >= 1.0);
    assert_eq!(
        sample(&page, "sirius_messages{state=\"sent\"}"),
        Some(1.0),
        "{page}"
    );
    assert!(sample(&page, "sirius_render_seconds_count").unwrap() >= 1.0);
    assert!(sample(&page, "sirius_store_write_seconds_count").unwrap() >= 1.0);
    assert!(
        sample(
            &page,
            "sirius_http_requests_total{class=\"printkey\",status=\"200\"}"
        )
        .unwrap()
            >= 1.0,
        "{page}"
    );
    for family in ["sirius_command_outcomes_total", "sirius_queue_depth"] {
        assert!(page.contains(family), "{family} missing");
    }
    // Through a proxy (X-Forwarded-For), it is not this machine asking.
    let (status, _, _) = http(
        s.addr,
        "GET",
        "/metrics",
        &[("X-Forwarded-For", "203.0.113.9")],
        b"",
    )
    .await;
    assert_eq!(status, 404);
    drop(ws);
    s.shutdown().await;
}
