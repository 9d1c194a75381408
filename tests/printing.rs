//! Printing end to end: print keys over real HTTP, the delivery queue, and
//! the emulated printer decoding what it was sent.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use serde_json::Value;
use sirius::emulator::{EmulatorEvent, PrinterIdentity, PrinterOptions, run_printer};
use sirius::raster::{Page, decode_image, raw_page_from_image};
use sirius::server::RunningServer;
use sirius::store::MessageState;
use tokio::sync::{mpsc, watch};

/// A claimed printer with a print key, ready to be emulated.
struct Setup {
    identity: PrinterIdentity,
    secret: String,
    printer_id: i64,
}

fn setup(s: &RunningServer) -> Setup {
    let store = s.hub.store();
    let identity = PrinterIdentity::random();
    let user = store.create_user("ada", None, 1).unwrap();
    store
        .claim(user.id, &identity.claim_code(), "Kitchen", 1)
        .unwrap();
    let printer = store.ensure_printer(identity.address, 1).unwrap();
    let secret = sirius::web::print_key::new_secret();
    store
        .create_print_key(printer.id, &secret, None, None, 1)
        .unwrap();
    Setup {
        identity,
        secret,
        printer_id: printer.id,
    }
}

struct Emulator {
    events: mpsc::UnboundedReceiver<EmulatorEvent>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Emulator {
    async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }

    /// The pages of the next print, within `secs`.
    async fn next_print(&mut self, secs: f64) -> Option<(u32, Vec<PathBuf>)> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(secs);
        loop {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(EmulatorEvent::Printed {
                    command_id, pages, ..
                })) => return Some((command_id, pages)),
                Ok(Some(_)) => continue,
                _ => return None,
            }
        }
    }
}

fn emulate(
    s: &RunningServer,
    who: &Setup,
    out: &Path,
    tweak: impl FnOnce(&mut PrinterOptions),
) -> Emulator {
    let mut opts = PrinterOptions::new(ws_url(s), out);
    opts.key_interval = Duration::from_millis(200);
    opts.heartbeat_interval = Duration::from_millis(200);
    opts.backoff_min = Duration::from_millis(50);
    opts.backoff_max = Duration::from_millis(200);
    tweak(&mut opts);
    let (tx, events) = mpsc::unbounded_channel();
    let (stop, rx) = watch::channel(false);
    let identity = PrinterIdentity {
        address: who.identity.address,
        secret: who.identity.secret,
        db_id: None,
    };
    let task = tokio::spawn(async move {
        let _ = run_printer(identity, opts, Some(tx), rx).await;
    });
    Emulator { events, stop, task }
}

async fn post(
    s: &RunningServer,
    secret: &str,
    query: &str,
    ctype: &str,
    body: &[u8],
) -> (u16, Value) {
    let (status, headers, body) = http(
        s.addr,
        "POST",
        &format!("/printkey/{secret}{query}"),
        &[("Content-Type", ctype)],
        body,
    )
    .await;
    assert_eq!(header(&headers, "access-control-allow-origin"), Some("*"));
    let v = serde_json::from_slice(&body).unwrap_or(Value::Null);
    (status, v)
}

fn page_of(path: &Path) -> Page {
    raw_page_from_image(&decode_image(&std::fs::read(path).unwrap()).unwrap()).unwrap()
}

fn stored_page(s: &RunningServer, id: i64) -> Page {
    let png = s.hub.store().message_page(id).unwrap().unwrap();
    raw_page_from_image(&decode_image(&png).unwrap()).unwrap()
}

fn state_of(s: &RunningServer, id: i64) -> MessageState {
    s.hub.store().message(id).unwrap().unwrap().state
}

#[tokio::test]
async fn print_key_to_an_online_printer_prints_exactly_the_stored_page() {
    let dir = temp_dir("print-online");
    let s = server(&dir.join("sirius.db")).await;
    let who = setup(&s);
    let mut emu = emulate(&s, &who, &dir, |_| {});
    assert!(eventually(5.0, || s.hub.is_online(who.identity.address)).await);
    let (status, v) = post(
        &s,
        &who.secret,
        "?from=Ada",
        "text/plain",
        b"Hello, printer",
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["status"], "sent");
    let id = v["message_id"].as_i64().unwrap();
    let (command_id, pages) = emu.next_print(5.0).await.expect("printed");
    assert_eq!(pages.len(), 1);
    assert_eq!(page_of(&pages[0]), stored_page(&s, id));
    assert!(eventually(3.0, || state_of(&s, id) == MessageState::Delivered).await);
    let m = s.hub.store().message(id).unwrap().unwrap();
    assert_eq!(m.command_id, Some(command_id));
    assert_eq!(m.sender, "Ada");
    assert!(
        eventually(3.0, || s
            .hub
            .store()
            .message(id)
            .unwrap()
            .unwrap()
            .printed_at
            .is_some())
        .await
    );
    // The key counted its use and its sender.
    let keys = s.hub.store().list_print_keys().unwrap();
    assert_eq!(keys[0].uses, 1);
    assert_eq!(keys[0].senders, vec!["Ada"]);
    // The default sender is "Print key" + the key's id: never part of the
    // secret.
    let (_, v) = post(&s, &who.secret, "", "text/plain", b"anonymous").await;
    let m = s
        .hub
        .store()
        .message(v["message_id"].as_i64().unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(m.sender, format!("Print key {}", keys[0].id));
    assert!(!m.sender.contains(&who.secret[..4]));
    emu.stop().await;
    s.shutdown().await;
}

#[tokio::test]
async fn content_types_and_error_statuses() {
    let dir = temp_dir("print-types");
    let s = server(&dir.join("sirius.db")).await;
    let who = setup(&s);
    let k = &who.secret;
    // A PNG sent as image/jpeg must print (a real client does that).
    let png = sirius::raster::page_to_png(&Page::from_fn(100, 40, |x, _| x % 2 == 0).unwrap());
    for (ctype, body) in [
        ("text/html", b"<h1>Hi</h1>".to_vec()),
        ("text/plain; charset=utf-8", b"plain".to_vec()),
        ("text/markdown", b"# also text".to_vec()),
        ("image/jpeg", png.clone()),
        ("image/png", png.clone()),
        (
            "application/json",
            br#"{"html": "<p>json html</p>"}"#.to_vec(),
        ),
        ("application/json", br#"{"text": "json text"}"#.to_vec()),
    ] {
        let (status, v) = post(&s, k, "", ctype, &body).await;
        assert_eq!(status, 200, "{ctype}: {v}");
        assert_eq!(v["status"], "queued", "offline printer: {ctype}");
    }
    let kinds: Vec<String> = s
        .hub
        .store()
        .recent_messages(who.printer_id, 10)
        .unwrap()
        .into_iter()
        .rev()
        .map(|m| m.content_kind)
        .collect();
    assert_eq!(
        kinds,
        ["html", "text", "text", "image", "image", "html", "text"]
    );
    let (status, v) = post(&s, k, "", "application/json", br#"{"markdown": "x"}"#).await;
    assert_eq!(status, 400);
    assert!(v["message"].as_str().unwrap().contains("\"html\""), "{v}");
    let (status, _) = post(&s, k, "", "application/json", b"{not json").await;
    assert_eq!(status, 400);
    let (status, v) = post(&s, k, "", "application/pdf", b"%PDF").await;
    assert_eq!(status, 415, "{v}");
    let (status, _) = post(&s, k, "", "", b"x").await;
    assert_eq!(status, 415);
    let big = vec![b'a'; 10 * 1024 * 1024 + 1];
    let (status, v) = post(&s, k, "", "text/plain", &big).await;
    assert_eq!(status, 413, "{v}");
    let (status, _) = post(&s, "nosuchkeynosuchkey0000", "", "text/plain", b"x").await;
    assert_eq!(status, 404);
    // CORS preflight.
    let (status, headers, _) = http(
        s.addr,
        "OPTIONS",
        &format!("/printkey/{k}"),
        &[
            ("Origin", "https://example.org"),
            ("Access-Control-Request-Method", "POST"),
            ("Access-Control-Request-Headers", "content-type"),
        ],
        b"",
    )
    .await;
    assert_eq!(status, 204);
    assert_eq!(header(&headers, "access-control-allow-origin"), Some("*"));
    assert!(
        header(&headers, "access-control-allow-methods")
            .unwrap()
            .contains("POST")
    );
    assert_eq!(
        header(&headers, "access-control-allow-headers"),
        Some("content-type")
    );
    // Over 60 a minute: 429 (7 + 2 counted so far... fill up to 60).
    let mut last = 200;
    for _ in 0..60 {
        last = post(&s, k, "", "text/plain", b"spam").await.0;
        if last == 429 {
            break;
        }
    }
    assert_eq!(last, 429);
    // A revoked key is gone.
    assert!(s.hub.store().revoke_print_key(k, 2).unwrap());
    let (status, _) = post(&s, k, "", "text/plain", b"x").await;
    assert_eq!(status, 404);
    s.shutdown().await;
}

#[tokio::test]
async fn get_answers_json_or_an_html_page() {
    let dir = temp_dir("print-get");
    let s = server(&dir.join("sirius.db")).await;
    let who = setup(&s);
    let path = format!("/printkey/{}", who.secret);
    for accept in [
        None,
        Some("*/*"),
        Some("application/json"),
        Some("application/json, text/html;q=0.5"),
    ] {
        let headers: Vec<(&str, &str)> = accept.iter().map(|a| ("Accept", *a)).collect();
        let (status, h, body) = http(s.addr, "GET", &path, &headers, b"").await;
        assert_eq!(status, 200);
        assert_eq!(
            header(&h, "content-type"),
            Some("application/json"),
            "{accept:?}"
        );
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["name"], "Kitchen");
        assert_eq!(v["owner"], "ada");
        assert_eq!(v["status"], "offline");
    }
    let (status, h, body) = http(
        s.addr,
        "GET",
        &path,
        &[
            (
                "Accept",
                "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
            ),
            ("Host", "printer.example:5002"),
        ],
        b"",
    )
    .await;
    assert_eq!(status, 200);
    assert!(header(&h, "content-type").unwrap().starts_with("text/html"));
    // What a browser shows (minijinja escapes '/' as an entity).
    let html = String::from_utf8_lossy(&body).replace("&#x2f;", "/");
    assert!(html.contains("Kitchen") && html.contains("ada") && html.contains("offline"));
    assert!(
        html.contains(&format!(
            "http://printer.example:5002/printkey/{}",
            who.secret
        )),
        "curl examples use the request's host: {html}"
    );
    assert!(html.contains("curl"));
    let (status, _, _) = http(s.addr, "GET", "/printkey/unknownunknownunknown1", &[], b"").await;
    assert_eq!(status, 404);
    s.shutdown().await;
}

#[tokio::test]
async fn offline_printer_queues_then_delivers_in_order_when_it_comes_back() {
    let dir = temp_dir("print-queue");
    let s = server(&dir.join("sirius.db")).await;
    let who = setup(&s);
    let mut ids = Vec::new();
    for text in ["first", "second", "third"] {
        let (status, v) = post(&s, &who.secret, "", "text/plain", text.as_bytes()).await;
        assert_eq!(status, 200);
        assert_eq!(v["status"], "queued");
        ids.push(v["message_id"].as_i64().unwrap());
    }
    assert!(
        ids.iter()
            .all(|id| state_of(&s, *id) == MessageState::Queued)
    );
    let mut emu = emulate(&s, &who, &dir, |_| {});
    let mut printed = Vec::new();
    for _ in 0..3 {
        printed.push(emu.next_print(10.0).await.expect("printed").0);
    }
    assert!(
        eventually(3.0, || ids
            .iter()
            .all(|id| state_of(&s, *id) == MessageState::Delivered))
        .await
    );
    let commands: Vec<u32> = ids
        .iter()
        .map(|id| {
            s.hub
                .store()
                .message(*id)
                .unwrap()
                .unwrap()
                .command_id
                .unwrap()
        })
        .collect();
    assert_eq!(printed, commands, "delivered oldest first, one at a time");
    emu.stop().await;
    s.shutdown().await;
}

#[tokio::test]
async fn failing_return_code_and_timeouts() {
    let dir = temp_dir("print-fail");
    let s = server(&dir.join("sirius.db")).await;
    let who = setup(&s);
    let emu = emulate(&s, &who, &dir, |o| o.answer_code = Some(0x90));
    assert!(eventually(5.0, || s.hub.is_online(who.identity.address)).await);
    let (_, v) = post(&s, &who.secret, "", "text/plain", b"refused").await;
    let id = v["message_id"].as_i64().unwrap();
    assert!(eventually(5.0, || state_of(&s, id) == MessageState::Failed).await);
    let m = s.hub.store().message(id).unwrap().unwrap();
    assert_eq!(m.return_code, Some(0x90));
    assert!(m.failure.unwrap().contains("file id"));
    emu.stop().await;

    // No answer on a live connection: timed out (2 s here), not re-sent,
    // and the next message goes.
    let emu = emulate(&s, &who, &dir, |o| o.never_answer = true);
    assert!(eventually(5.0, || s.hub.is_online(who.identity.address)).await);
    let (_, v) = post(&s, &who.secret, "", "text/plain", b"one").await;
    let one = v["message_id"].as_i64().unwrap();
    let (_, v) = post(&s, &who.secret, "", "text/plain", b"two").await;
    let two = v["message_id"].as_i64().unwrap();
    assert_eq!(v["status"], "queued", "one delivery in flight at a time");
    assert!(eventually(5.0, || state_of(&s, one) == MessageState::TimedOut).await);
    assert!(eventually(3.0, || state_of(&s, two) == MessageState::Sent).await);
    assert_eq!(s.hub.store().message(one).unwrap().unwrap().attempts, 1);
    emu.stop().await;
    s.shutdown().await;
}

#[tokio::test]
async fn bridge_dropping_before_the_answer_means_sent_again_on_reconnect() {
    let dir = temp_dir("print-drop");
    let s = server(&dir.join("sirius.db")).await;
    let who = setup(&s);
    let mut silent = emulate(&s, &who, &dir, |o| o.never_answer = true);
    assert!(eventually(5.0, || s.hub.is_online(who.identity.address)).await);
    let (_, v) = post(&s, &who.secret, "", "text/plain", b"again").await;
    let id = v["message_id"].as_i64().unwrap();
    assert!(silent.next_print(5.0).await.is_some());
    assert_eq!(state_of(&s, id), MessageState::Sent);
    silent.stop().await;
    assert!(eventually(3.0, || state_of(&s, id) == MessageState::Queued).await);
    let mut emu = emulate(&s, &who, &dir, |_| {});
    assert!(emu.next_print(10.0).await.is_some());
    assert!(eventually(3.0, || state_of(&s, id) == MessageState::Delivered).await);
    assert_eq!(s.hub.store().message(id).unwrap().unwrap().attempts, 2);
    emu.stop().await;
    s.shutdown().await;
}

#[tokio::test]
async fn reprint_and_status_page_thumbnails() {
    let dir = temp_dir("print-reprint");
    let s = server(&dir.join("sirius.db")).await;
    let who = setup(&s);
    let (_, v) = post(
        &s,
        &who.secret,
        "?from=Ada",
        "text/plain",
        b"print me twice",
    )
    .await;
    let id = v["message_id"].as_i64().unwrap();
    let again = s.printing.reprint(id, "Ada", None).await.unwrap();
    assert_ne!(again.message_id, id);
    assert_eq!(stored_page(&s, again.message_id), stored_page(&s, id));
    assert_eq!(state_of(&s, again.message_id), MessageState::Queued);
    // The stored picture is the page; it is not public (the printer page
    // shows it to its owner: tests/web_app.rs).
    let png = s.hub.store().message_page(id).unwrap().unwrap();
    assert_eq!(
        raw_page_from_image(&decode_image(&png).unwrap()).unwrap(),
        stored_page(&s, id)
    );
    let (status, _, _) = http(s.addr, "GET", &format!("/_/messages/{id}.png"), &[], b"").await;
    assert_eq!(status, 404, "message pictures are not public");
    s.shutdown().await;
}

#[tokio::test]
async fn fifty_concurrent_posts_are_all_answered() {
    use sirius::emulator::posts::{PostLoadOptions, run_post_load};
    let dir = temp_dir("print-fifty");
    let s = server(&dir.join("sirius.db")).await;
    let who = setup(&s);
    let png =
        sirius::raster::page_to_png(&Page::from_fn(384, 100, |x, y| (x ^ y) % 3 == 0).unwrap());
    let report = run_post_load(PostLoadOptions {
        url: format!("http://{}/printkey/{}", s.addr, who.secret),
        concurrency: 50,
        count: 50,
        bodies: vec![
            (
                "text/html".into(),
                b"<h1>Hi</h1><ol><li>a</li><li>b</li></ol>".to_vec(),
            ),
            ("text/plain".into(), b"plain words".to_vec()),
            ("image/jpeg".into(), png),
        ],
        timeout: Duration::from_secs(60),
    })
    .await
    .unwrap();
    assert_eq!(report.sent, 50);
    assert_eq!(report.transport_errors, 0, "{report}");
    assert_eq!(report.by_status.get(&200), Some(&50), "{report}");
    assert_eq!(
        s.hub
            .store()
            .recent_messages(who.printer_id, 100)
            .unwrap()
            .len(),
        50
    );
    s.shutdown().await;
}

/// Runs `sirius render` and returns its preview page.
fn render_preview(dir: &Path, args: &[&str]) -> Page {
    let out = dir.join(format!("preview-{}.png", rand::random::<u32>()));
    let mut full: Vec<&str> = vec![
        "render",
        "--time-zone",
        "UTC",
        "-o",
        out.to_str().unwrap(),
        "--json",
    ];
    full.extend_from_slice(args);
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_sirius"))
        .args(&full)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "render failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    page_of(&out)
}

#[tokio::test]
async fn the_printed_page_is_exactly_the_render_preview() {
    let dir = temp_dir("print-preview");
    let s = server(&dir.join("sirius.db")).await;
    let who = setup(&s);
    let mut emu = emulate(&s, &who, &dir, |_| {});
    assert!(eventually(5.0, || s.hub.is_online(who.identity.address)).await);
    let html = "<h2>Shopping</h2><ol><li>Milk</li><li>Eggs</li></ol><p style=\"float:right\">→</p>";
    let photo = {
        let img = image::RgbImage::from_fn(600, 300, |x, y| {
            image::Rgb([(x % 256) as u8, (y % 256) as u8, ((x + y) % 256) as u8])
        });
        let mut jpeg = Vec::new();
        image::DynamicImage::ImageRgb8(img)
            .write_to(
                &mut std::io::Cursor::new(&mut jpeg),
                image::ImageFormat::Jpeg,
            )
            .unwrap();
        jpeg
    };
    let photo_path = dir.join("photo.jpg");
    std::fs::write(&photo_path, &photo).unwrap();
    let html_path = dir.join("message.html");
    std::fs::write(&html_path, html).unwrap();
    let cases: Vec<(&str, Vec<u8>, Vec<&str>)> = vec![
        (
            "text/plain",
            "Hello,\nprinter! A-very-long-word-that-has-to-wrap-somewhere-along-the-line"
                .as_bytes()
                .to_vec(),
            vec![
                "--text",
                "Hello,\nprinter! A-very-long-word-that-has-to-wrap-somewhere-along-the-line",
            ],
        ),
        (
            "text/html",
            html.as_bytes().to_vec(),
            vec!["--html", html_path.to_str().unwrap()],
        ),
        (
            "image/png",
            photo.clone(),
            vec!["--image", photo_path.to_str().unwrap()],
        ),
    ];
    for (ctype, body, render_args) in cases {
        let (status, v) = post(&s, &who.secret, "?from=Ada%20L", ctype, &body).await;
        assert_eq!(status, 200, "{ctype}: {v}");
        let id = v["message_id"].as_i64().unwrap();
        let (_, pages) = emu.next_print(10.0).await.expect("printed");
        let printed = page_of(&pages[0]);
        let created = s
            .hub
            .store()
            .message(id)
            .unwrap()
            .unwrap()
            .created_at
            .to_string();
        let mut args = render_args.clone();
        args.extend(["--from", "Ada L", "--at", &created]);
        let preview = render_preview(&dir, &args);
        assert_eq!(
            (printed.width(), printed.height()),
            (preview.width(), preview.height()),
            "{ctype}"
        );
        assert!(
            printed == preview,
            "{ctype}: the printed page differs from the preview"
        );
        assert!(printed.black_count() > 500, "{ctype}: something was drawn");
    }
    emu.stop().await;
    s.shutdown().await;
}

#[tokio::test]
async fn remote_images_on_private_addresses_are_refused_by_default() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // A picture server on loopback, counting requests.
    let hits = std::sync::Arc::new(AtomicUsize::new(0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let png = sirius::raster::page_to_png(&Page::from_fn(384, 200, |_, _| true).unwrap());
    let counter = std::sync::Arc::clone(&hits);
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            let png = png.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = sock.read(&mut buf).await;
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    png.len()
                );
                let _ = sock.write_all(head.as_bytes()).await;
                let _ = sock.write_all(&png).await;
            });
        }
    });
    let dir = temp_dir("print-ssrf");
    let s = server(&dir.join("sirius.db")).await;
    let who = setup(&s);
    let html = format!(
        "<p>before</p><img src=\"http://127.0.0.1:{port}/secret.png\" style=\"width:384px\"><p>after</p>"
    );
    let (status, v) = post(&s, &who.secret, "", "text/html", html.as_bytes()).await;
    assert_eq!(
        status, 200,
        "the message still prints, without the picture: {v}"
    );
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "a private address was contacted"
    );
    let page = stored_page(&s, v["message_id"].as_i64().unwrap());
    // The picture would be 200 black rows; without it the page is mostly white.
    assert!(page.black_count() < 384 * 100, "the picture was drawn");
    s.shutdown().await;
}

#[tokio::test]
async fn reprint_from_the_command_line_reaches_a_running_server() {
    let dir = temp_dir("print-cli-reprint");
    let db = dir.join("sirius.db");
    let s = server(&db).await;
    let who = setup(&s);
    let mut emu = emulate(&s, &who, &dir, |_| {});
    assert!(eventually(5.0, || s.hub.is_online(who.identity.address)).await);
    let (_, v) = post(&s, &who.secret, "?from=Ada", "text/plain", b"once more").await;
    let first = v["message_id"].as_i64().unwrap();
    let (_, pages) = emu.next_print(5.0).await.unwrap();
    let original = page_of(&pages[0]);
    let sirius = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_sirius"))
            .args(args)
            .env("SIRIUS_DB", &db)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let out = sirius(&[
        "message",
        "reprint",
        &first.to_string(),
        "--from",
        "Bob",
        "--json",
    ]);
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    let second = v["message_id"].as_i64().unwrap();
    // The running server notices within its queue tick (200 ms here).
    let (_, pages) = emu.next_print(5.0).await.expect("the reprint printed");
    assert_eq!(page_of(&pages[0]), original);
    assert!(eventually(3.0, || state_of(&s, second) == MessageState::Delivered).await);
    let listed: Vec<Value> = sirius(&["message", "list", &who.printer_id.to_string(), "--json"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(listed[0]["id"], second);
    assert_eq!(listed[0]["sender"], "Bob");
    assert_eq!(listed[0]["kind"], "reprint");
    assert_eq!(listed[1]["id"], first);
    assert_eq!(listed[1]["state"], "delivered");
    emu.stop().await;
    s.shutdown().await;
}
