//! The web app in a real browser: Debian's Chromium, headless, driven over
//! WebDriver (`chromedriver`, through the fantoccini client) against the
//! real server (in-process, port 0, a real SQLite file) and a real
//! emulated printer (`sirius emulate printer`, a child process talking the
//! bridge protocol over TCP). Everything a person does goes through the
//! browser: clicks, typing and form submits, with the page's own CSRF
//! tokens and JavaScript.
//!
//! The walk: the first account; claiming the emulated printer with the
//! code it printed (after a typo the page points at); seeing it online;
//! composing with the live preview; printing and watching the history
//! follow it to "printed" without a reload; the page the emulator printed
//! is pixel for pixel the preview the browser showed; reprinting; making
//! and revoking a print key (its URL answers 404 after); inviting a second
//! person from the admin page, who signs up in a second browser, gets the
//! printer shared with them, prints to it and sees only their own
//! message in its history; signing out.
//!
//! On the way it takes screenshots of the main pages at 360 px (a phone)
//! and 1280 px (a desktop) into `target/screenshots/`, and checks on every
//! one what a person would notice: no sideways scrolling at 360 px, a
//! label on every input, buttons big enough to tap.
//!
//! Needs `/usr/bin/chromium` and `/usr/bin/chromedriver` (Debian's
//! `chromium` and `chromium-driver`): installed with apt when missing (as
//! root), else the test fails saying so.

mod common;

use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use sirius::emulator::PrinterIdentity;
use sirius::raster::{Page, decode_image, raw_page_from_image};
use sirius::server::RunningServer;
use tokio::sync::mpsc;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// The widths screenshots are taken at: a small phone and a desktop.
const WIDTHS: [u32; 2] = [360, 1280];
/// The window the walk itself runs in: a phone, mobile first.
const WALK: (u32, u32) = (360, 800);

/// Where the screenshots go.
fn screenshot_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots")
}

// ---------------------------------------------------------------------------
// chromedriver and Chromium

/// A running `chromedriver` on a free port. Dropping it ends it, the
/// browsers it started, and anything else still using its profile
/// folders: a failed test leaves no process behind.
struct Driver {
    child: Child,
    url: String,
    /// Holds the browsers' profiles; unique to this run.
    dir: PathBuf,
    sessions: u32,
}

impl Driver {
    fn start(dir: &Path) -> Driver {
        common::ensure_debian_packages(&[CHROMIUM, CHROMEDRIVER], &["chromium", "chromium-driver"]);
        let dir = dir.join("chrome");
        std::fs::create_dir_all(&dir).unwrap();
        let port = common::free_port();
        let log = dir.join("chromedriver.log");
        let child = {
            use std::os::unix::process::CommandExt as _;
            Command::new(CHROMEDRIVER)
                .arg(format!("--port={port}"))
                .arg(format!("--log-path={}", log.display()))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                // Its own process group, so the browsers it starts can be
                // ended with it.
                .process_group(0)
                .spawn()
                .unwrap_or_else(|e| panic!("could not start {CHROMEDRIVER}: {e}"))
        };
        let driver = Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
            dir,
            sessions: 0,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "chromedriver did not listen on port {port} within 20 s; its log is {}",
                log.display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        driver
    }

    /// A new browser: headless Chromium with a fresh profile.
    async fn browser(&mut self, base: &str, who: &'static str) -> Browser {
        self.sessions += 1;
        let profile = self.dir.join(format!("profile-{}", self.sessions));
        std::fs::create_dir_all(&profile).unwrap();
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--force-device-scale-factor=1",
            // As on a phone: scrollbars take no room from the page.
            "--hide-scrollbars",
            "--lang=en-GB",
            &format!("--window-size={},{}", WALK.0, WALK.1),
            &format!("--user-data-dir={}", profile.display()),
        ];
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
        });
        let Value::Object(caps) = caps else {
            unreachable!()
        };
        // Plain HTTP to chromedriver on localhost: no TLS needed.
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&self.url)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "chromedriver could not start Chromium: {e}; see {}",
                    self.dir.join("chromedriver.log").display()
                )
            });
        Browser {
            c: client,
            base: base.to_string(),
            who,
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let pid = self.child.id() as i32;
        // SAFETY: plain signals to processes this test started: the
        // driver's own process group, then whatever still runs with one of
        // this run's profile folders on its command line.
        unsafe { libc::kill(-pid, libc::SIGKILL) };
        let _ = self.child.kill();
        let _ = self.child.wait();
        let marker = self.dir.display().to_string();
        for _ in 0..50 {
            let strays = processes_mentioning(&marker);
            if strays.is_empty() {
                break;
            }
            for p in strays {
                unsafe { libc::kill(p, libc::SIGKILL) };
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        // The profiles are a few MB each; chromedriver's log stays.
        for n in 1..=self.sessions {
            let _ = std::fs::remove_dir_all(self.dir.join(format!("profile-{n}")));
        }
    }
}

/// Processes whose command line contains `marker`.
fn processes_mentioning(marker: &str) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(marker))
        })
        .collect()
}

/// One browser window and the site it is on.
struct Browser {
    c: Client,
    base: String,
    who: &'static str,
}

/// How long a page or an element may take to show up.
const WAIT: Duration = Duration::from_secs(10);

impl Browser {
    async fn go(&self, path: &str) {
        let url = if path.starts_with("http") {
            path.to_string()
        } else {
            format!("{}{path}", self.base)
        };
        self.c.goto(&url).await.unwrap();
        self.wait_loaded().await;
    }

    /// Path and query of the page shown.
    async fn path(&self) -> String {
        let url = self.c.current_url().await.unwrap();
        match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_string(),
        }
    }

    /// The text the page shows (what a person reads).
    async fn text(&self) -> String {
        match self.c.find(Locator::Css("body")).await {
            Ok(body) => body.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    /// The first element matching `css`, waiting for it.
    async fn el(&self, css: &str) -> Element {
        match self
            .c
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css(css))
            .await
        {
            Ok(e) => e,
            Err(e) => panic!(
                "{}: no {css} on {} within {WAIT:?} ({e}); the page says:\n{}",
                self.who,
                self.path().await,
                self.text().await
            ),
        }
    }

    /// Types `text` into the (emptied) field `css`.
    async fn type_into(&self, css: &str, text: &str) {
        let field = self.el(css).await;
        field.clear().await.unwrap();
        field.send_keys(text).await.unwrap();
    }

    /// Clicks `css` and waits until the page it leads to has loaded.
    async fn click_through(&self, css: &str) {
        let target = self.el(css).await;
        self.c
            .execute("window.__siriusOldPage = true;", vec![])
            .await
            .unwrap();
        target.click().await.unwrap();
        let deadline = Instant::now() + WAIT;
        loop {
            let gone = self
                .c
                .execute(
                    "return window.__siriusOldPage !== true && document.readyState === 'complete';",
                    vec![],
                )
                .await;
            if matches!(gone, Ok(Value::Bool(true))) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{}: clicking {css} on {} led nowhere within {WAIT:?}; the page says:\n{}",
                self.who,
                self.path().await,
                self.text().await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn wait_loaded(&self) {
        let deadline = Instant::now() + WAIT;
        while !matches!(
            self.c
                .execute("return document.readyState === 'complete';", vec![])
                .await,
            Ok(Value::Bool(true))
        ) {
            assert!(Instant::now() < deadline, "the page never finished loading");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the page shows every one of `needles`.
    async fn see(&self, needles: &[&str]) -> String {
        self.see_within(needles, WAIT, false).await
    }

    /// Waits until the page shows every one of `needles`, reloading it
    /// (as a person would) every half second when `reload`.
    async fn see_within(&self, needles: &[&str], within: Duration, reload: bool) -> String {
        let deadline = Instant::now() + within;
        loop {
            let text = self.text().await;
            if needles.iter().all(|n| text.contains(n)) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "{}: {} never showed {needles:?} within {within:?}; it shows:\n{text}",
                self.who,
                self.path().await,
            );
            if reload {
                tokio::time::sleep(Duration::from_millis(500)).await;
                self.c.refresh().await.unwrap();
                self.wait_loaded().await;
            } else {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    /// The state of each message in the history, newest first, in the
    /// words the page shows ("waiting", "printed", …).
    async fn states(&self) -> Vec<String> {
        let mut words = Vec::new();
        if let Ok(states) = self
            .c
            .find_all(Locator::Css("#history .message .state strong"))
            .await
        {
            for w in &states {
                words.push(w.text().await.unwrap_or_default());
            }
        }
        words
    }

    /// Waits until the history shows exactly `want`, newest first. Without
    /// `reload` the page must get there by itself (printer.js follows the
    /// states live): a marker set now must survive.
    async fn wait_states(&self, want: &[&str], within: Duration, reload: bool) {
        self.js("window.__siriusSamePage = true;").await;
        let deadline = Instant::now() + within;
        loop {
            let words = self.states().await;
            if words == want {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{}: the history on {} should show {want:?} within {within:?}, it shows {words:?}",
                self.who,
                self.path().await
            );
            if reload {
                tokio::time::sleep(Duration::from_millis(500)).await;
                self.c.refresh().await.unwrap();
                self.wait_loaded().await;
            } else {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        if !reload {
            assert_eq!(
                self.js("return window.__siriusSamePage === true;").await,
                Value::Bool(true),
                "the states changed without reloading the page"
            );
        }
    }

    async fn js(&self, script: &str) -> Value {
        self.c.execute(script, vec![]).await.unwrap()
    }

    /// Makes the page itself (not the window around it) `width` × `height`.
    async fn set_size(&self, width: u32, height: u32) {
        self.c.set_window_size(width, height).await.unwrap();
        let inner = self
            .js("return [window.innerWidth, window.innerHeight];")
            .await;
        let (w, h) = (
            inner[0].as_u64().unwrap() as u32,
            inner[1].as_u64().unwrap() as u32,
        );
        if (w, h) != (width, height) {
            self.c
                .set_window_size(
                    width + width.saturating_sub(w),
                    height + height.saturating_sub(h),
                )
                .await
                .unwrap();
        }
    }

    /// Screenshots of the whole page at each of [`WIDTHS`], saved as
    /// `NAME-WIDTH.png`; checks at each width what a person would notice
    /// first. Leaves the window at the walk's size.
    async fn shoot(&self, name: &str) {
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).unwrap();
        for width in WIDTHS {
            self.set_size(width, 900).await;
            let height = self
                .js("return Math.ceil(document.documentElement.getBoundingClientRect().height);")
                .await
                .as_u64()
                .unwrap_or(900)
                .clamp(300, 4000) as u32;
            self.set_size(width, height).await;
            self.check_layout(name, width).await;
            let png = self.c.screenshot().await.unwrap();
            let path = dir.join(format!("{name}-{width}.png"));
            std::fs::write(&path, png).unwrap();
        }
        self.set_size(WALK.0, WALK.1).await;
    }

    /// No sideways scrolling, a label for every input and buttons tall
    /// enough to tap.
    async fn check_layout(&self, name: &str, width: u32) {
        let report = self
            .js(r#"
                const out = [];
                const doc = document.documentElement;
                if (doc.scrollWidth > window.innerWidth + 1)
                  out.push("the page is " + doc.scrollWidth + " px wide in a " + window.innerWidth + " px window");
                for (const el of document.querySelectorAll("input, textarea, select")) {
                  if (el.type === "hidden" || el.hidden || el.offsetParent === null) continue;
                  const labelled = (el.labels && el.labels.length > 0) || el.getAttribute("aria-label");
                  if (!labelled) out.push("an input without a label: " + el.outerHTML);
                }
                for (const el of document.querySelectorAll("button, a.button, input[type=submit]")) {
                  if (el.offsetParent === null) continue;
                  const r = el.getBoundingClientRect();
                  if (r.height < 40) out.push("a button only " + r.height + " px tall: " + el.outerText);
                }
                return out;
            "#)
            .await;
        let problems: Vec<String> = serde_json::from_value(report).unwrap();
        assert!(
            problems.is_empty(),
            "{name} at {width} px: {problems:#?} (see {})",
            screenshot_dir()
                .join(format!("{name}-{width}.png"))
                .display()
        );
    }

    /// The bytes of the picture `img#ID` shows, fetched by the page itself
    /// (the preview is a blob: URL only the page can read).
    async fn image_bytes(&self, id: &str) -> Vec<u8> {
        let script = r#"
            const done = arguments[arguments.length - 1];
            fetch(document.getElementById(arguments[0]).src)
              .then(r => r.arrayBuffer())
              .then(b => {
                const u = new Uint8Array(b); let s = "";
                for (let i = 0; i < u.length; i++) s += String.fromCharCode(u[i]);
                done(btoa(s));
              })
              .catch(e => done("failed: " + e));
        "#;
        let got = self.c.execute_async(script, vec![json!(id)]).await.unwrap();
        let b64 = got.as_str().unwrap();
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap_or_else(|_| panic!("could not read the picture #{id}: {b64}"))
    }

    /// The bytes of the first `img` matching `css`, as the page loaded it.
    async fn image_bytes_of(&self, css: &str) -> Vec<u8> {
        let img = self.el(css).await;
        let id = "sirius-test-image";
        self.c
            .execute(
                "arguments[0].id = arguments[1];",
                vec![serde_json::to_value(&img).unwrap(), json!(id)],
            )
            .await
            .unwrap();
        self.image_bytes(id).await
    }

    /// Writes a message on the compose page and waits for the live
    /// preview of it; returns the previewed page.
    async fn compose(&self, message: &str) -> Page {
        self.el("textarea[name=message]").await;
        let before = self
            .js("const i = document.getElementById('preview'); return i ? i.src : null;")
            .await;
        assert!(
            self.text().await.contains("Type to see the page"),
            "the compose page should invite typing before there is a preview"
        );
        self.type_into("textarea[name=message]", message).await;
        // compose.js posts the form after a pause in typing and shows the
        // page that would print.
        let deadline = Instant::now() + WAIT;
        loop {
            let shown = self
                .js("const i = document.getElementById('preview'); return !!i && !i.hidden && i.complete && i.naturalWidth > 0 ? i.src : null;")
                .await;
            if shown.is_string() && shown != before {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "no preview appeared within {WAIT:?}; the page says:\n{}",
                self.text().await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.see(&["cm of paper"]).await;
        let png = self.image_bytes("preview").await;
        let page = page_of_png(&png);
        assert_eq!(
            page.width(),
            384,
            "the preview is a page of the printer's width"
        );
        page
    }
}

fn page_of_png(png: &[u8]) -> Page {
    raw_page_from_image(&decode_image(png).expect("a picture")).expect("a page")
}

/// Waits, if the minute is nearly over, for the next one: the printed
/// header says the time to the minute, so a preview taken at 12:04:59 and
/// a print at 12:05:00 differ by design, not by a bug.
async fn fresh_minute() {
    let deadline = Instant::now() + Duration::from_secs(20);
    while jiff::Timestamp::now().as_second().rem_euclid(60) > 45 {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

// ---------------------------------------------------------------------------
// The emulated printer: `sirius emulate printer` as a child process

struct Emulator {
    child: Child,
    events: mpsc::UnboundedReceiver<Value>,
    claim_code: String,
}

impl Emulator {
    /// A new printer nobody has claimed, behind its own bridge, connecting
    /// to `s`; its printed pages go to `dir`.
    fn start(s: &RunningServer, dir: &Path) -> Emulator {
        let identity = PrinterIdentity::random();
        let file = dir.join(format!("{}.printer", identity.address));
        std::fs::write(&file, identity.format()).unwrap();
        let out = dir.join("printed");
        let mut child = Command::new(env!("CARGO_BIN_EXE_sirius"))
            .args(["--json", "emulate", "printer"])
            .arg(&file)
            .arg(common::ws_url(s))
            .arg("--out")
            .arg(&out)
            .args(["--key-interval", "0.2", "--heartbeat-interval", "0.5"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("sirius emulate printer starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, mut events) = mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    let _ = tx.send(v);
                }
            }
        });
        let starting = events.blocking_recv_timeout(Duration::from_secs(10));
        let claim_code = starting
            .as_ref()
            .and_then(|v| v["claim_code"].as_str())
            .unwrap_or_else(|| panic!("the emulator did not say its claim code: {starting:?}"))
            .to_string();
        Emulator {
            child,
            events,
            claim_code,
        }
    }

    /// The page of the next print, within `secs`.
    async fn next_page(&mut self, secs: u64) -> Page {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(v)) if v["event"] == "printed" => {
                    let pages = v["pages"].as_array().unwrap();
                    assert_eq!(pages.len(), 1, "one page per message: {v}");
                    let png = std::fs::read(pages[0].as_str().unwrap()).unwrap();
                    return page_of_png(&png);
                }
                Ok(Some(v)) => assert_ne!(v["event"], "key_rejected", "{v}"),
                Ok(None) => panic!("the emulator stopped"),
                Err(_) => panic!("the emulator printed nothing within {secs} s"),
            }
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

trait BlockingRecv {
    fn blocking_recv_timeout(&mut self, within: Duration) -> Option<Value>;
}

impl BlockingRecv for mpsc::UnboundedReceiver<Value> {
    fn blocking_recv_timeout(&mut self, within: Duration) -> Option<Value> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(v) = self.try_recv() {
                return Some(v);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

// ---------------------------------------------------------------------------

/// The status of a plain GET (what a script holding the URL would see).
async fn status_of(s: &RunningServer, url: &str) -> u16 {
    let path = &url[url.find("/printkey/").expect("a print-key URL")..];
    common::http(s.addr, "GET", path, &[("Accept", "application/json")], b"")
        .await
        .0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_in_a_real_browser_claims_prints_shares_and_signs_out() {
    let started = Instant::now();
    let dir = common::temp_dir("browser");
    // Chromium first: installing it may take a while.
    let mut driver = Driver::start(&dir);
    let s = common::server(&dir.join("sirius.db")).await;
    let base = format!("http://{}", s.addr);
    let mut emu = Emulator::start(&s, &dir);
    let ada = driver.browser(&base, "ada").await;

    // The first visit: make the first account.
    ada.go("/").await;
    ada.see(&["Welcome to Sirius", "Create the first account"])
        .await;
    ada.shoot("first-run").await;
    // Keyboard focus is visible.
    ada.el("input[name=username]").await.click().await.unwrap();
    ada.c
        .active_element()
        .await
        .unwrap()
        .send_keys(&char::from(fantoccini::key::Key::Tab).to_string())
        .await
        .unwrap();
    let outline = ada
        .js("const e = document.activeElement; return [e.name, getComputedStyle(e).outlineStyle, getComputedStyle(e).outlineWidth];")
        .await;
    assert_eq!(
        outline[0], "password",
        "Tab moves to the password: {outline}"
    );
    assert_ne!(outline[1], "none", "the focused field shows it: {outline}");
    ada.type_into("input[name=username]", "ada").await;
    ada.type_into("input[name=password]", "correct horse battery")
        .await;
    ada.click_through("form[action='/signup'] button[type=submit]")
        .await;
    ada.see(&["My printers", "You have no printer yet", "signed in as ada"])
        .await;

    // Claim the printer with the code it printed, after a typo the page
    // points at.
    ada.click_through("a[href='/claim']").await;
    let typo = format!("a{}", &emu.claim_code[1..]);
    ada.type_into("input[name=code]", &typo).await;
    ada.type_into("input[name=name]", "Kitchen").await;
    ada.click_through("form[action='/claim'] button[type=submit]")
        .await;
    ada.see(&["'a' at position 1 can't be part of a claim code"])
        .await;
    assert_eq!(
        ada.el("input[name=name]")
            .await
            .prop("value")
            .await
            .unwrap(),
        Some("Kitchen".into()),
        "the name typed is kept"
    );
    ada.shoot("claim").await;
    ada.type_into("input[name=code]", &emu.claim_code).await;
    ada.click_through("form[action='/claim'] button[type=submit]")
        .await;
    ada.see(&["Printer claimed"]).await;
    // Online: the server gave the printer its key, it connected and beats.
    let home = ada
        .see_within(&["Kitchen", "online"], Duration::from_secs(15), true)
        .await;
    assert!(!home.contains("offline"), "{home}");
    ada.shoot("home").await;

    // Its page, then compose with the live preview.
    ada.click_through("a.name").await;
    let printer_path = ada.path().await;
    let id: i64 = printer_path
        .strip_prefix("/printer/")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("the printer's link went to {printer_path}"));
    ada.see(&["Kitchen", "online", "Nothing printed yet"]).await;
    fresh_minute().await;
    ada.click_through(&format!("a[href='/printer/{id}/print']"))
        .await;
    ada.see(&["Print on Kitchen"]).await;
    let preview = ada
        .compose("Hello from Chromium!\nA second line, for the kitchen.")
        .await;
    ada.shoot("compose").await;
    ada.click_through("form#compose button[type=submit]").await;
    ada.see(&["Sent"]).await;
    assert_eq!(ada.path().await, format!("/printer/{id}?done=sent"));
    let printed = emu.next_page(15).await;
    assert_eq!(
        printed, preview,
        "the page the printer printed is the preview the browser showed"
    );
    // The history follows it live to "printed", from ada.
    ada.wait_states(&["printed"], Duration::from_secs(15), false)
        .await;
    ada.see(&["from ada"]).await;
    let shown = ada
        .image_bytes_of(&format!("#history img[src^='/printer/{id}/message/']"))
        .await;
    assert_eq!(page_of_png(&shown), printed, "the history shows the page");

    // Print it again.
    ada.click_through("form[action$='/reprint'] button[type=submit]")
        .await;
    ada.see(&["Sent again"]).await;
    assert_eq!(
        emu.next_page(15).await,
        printed,
        "a reprint is the same page"
    );
    ada.wait_states(&["printed", "printed"], Duration::from_secs(15), false)
        .await;

    // A print key: made, seen working, revoked, then gone.
    ada.type_into(
        "form[action$='/printkey/add'] input[name=label]",
        "Phone app",
    )
    .await;
    ada.click_through("form[action$='/printkey/add'] button[type=submit]")
        .await;
    ada.see(&["copy it now", "Phone app"]).await;
    let key_url = ada.el("#keys code.secret").await.text().await.unwrap();
    assert!(
        key_url.starts_with(&format!("{base}/printkey/")),
        "{key_url}"
    );
    ada.go(&key_url).await;
    ada.see(&["Kitchen"]).await;
    assert_eq!(status_of(&s, &key_url).await, 200);
    ada.go(&printer_path).await;
    ada.click_through("form[action*='/printkey/'][action$='/delete'] button[type=submit]")
        .await;
    ada.see(&["The key no longer works", "revoked"]).await;
    ada.go(&key_url).await;
    ada.see(&["No such print key", "Ask the printer's owner for a new one"])
        .await;
    assert_eq!(status_of(&s, &key_url).await, 404, "a revoked key is gone");

    // The admin page: an invite link for the family.
    ada.go("/").await;
    ada.click_through("a[href='/admin']").await;
    ada.see(&["Admin", "Users", "Kitchen", "connected"]).await;
    ada.click_through("form[action='/admin/invites'] button[type=submit]")
        .await;
    ada.see(&["New invite", "shown only now"]).await;
    let invite = ada.el("#invites code.secret").await.text().await.unwrap();
    assert!(invite.starts_with(&format!("{base}/invite/")), "{invite}");
    ada.shoot("admin").await;
    ada.click_through("a[href='/account']").await;
    ada.see(&["ada", "administrator", "Password", "Signed in"])
        .await;
    ada.shoot("account").await;

    // A second person, in a second browser.
    let bob = driver.browser(&base, "bob").await;
    bob.go("/").await;
    bob.see(&[
        "Sign in",
        "Ask the person who runs this server for an invite link",
    ])
    .await;
    assert!(!bob.text().await.contains("Kitchen"));
    bob.shoot("login").await;
    bob.go(&invite).await;
    bob.see(&["Make an account"]).await;
    bob.type_into("input[name=username]", "bob").await;
    bob.type_into("input[name=password]", "staple battery horse")
        .await;
    bob.click_through("main form button[type=submit]").await;
    bob.see(&["My printers", "You have no printer yet", "signed in as bob"])
        .await;
    // Not shared yet: ada's printer is not there for bob.
    bob.go(&printer_path).await;
    bob.see(&["Not found"]).await;

    // Ada shares the printer with bob.
    ada.go(&printer_path).await;
    ada.type_into("form[action$='/share'] input[name=username]", "bob")
        .await;
    ada.click_through("form[action$='/share'] button[type=submit]")
        .await;
    ada.see(&["Shared."]).await;
    ada.el("#sharing li").await;
    assert!(
        ada.el("#sharing ul")
            .await
            .text()
            .await
            .unwrap()
            .contains("bob"),
        "the printer page lists bob"
    );
    ada.shoot("printer").await;

    // Bob sees it under "Shared with me" and prints to it.
    bob.go("/").await;
    bob.see(&["Shared with me", "Kitchen", "ada's"]).await;
    bob.click_through("a.name").await;
    bob.see(&["ada's printer, shared with you"]).await;
    let bob_page = bob.text().await;
    assert!(!bob_page.contains("Print keys"), "only the owner sees keys");
    fresh_minute().await;
    bob.click_through(&format!("a[href='/printer/{id}/print']"))
        .await;
    let bob_preview = bob.compose("Hi from bob").await;
    bob.click_through("form#compose button[type=submit]").await;
    bob.see(&["Sent"]).await;
    assert_eq!(emu.next_page(15).await, bob_preview);
    // Bob sees his own message go to "printed", and only his.
    bob.see(&["What you sent"]).await;
    bob.wait_states(&["printed"], Duration::from_secs(15), false)
        .await;
    let bobs = bob.el("#history").await.text().await.unwrap();
    assert!(
        bobs.contains("from bob") && !bobs.contains("from ada"),
        "bob sees his messages, not ada's: {bobs}"
    );
    // Ada's history shows bob's message, printed (her page was already
    // loaded: she reloads it).
    ada.wait_states(
        &["printed", "printed", "printed"],
        Duration::from_secs(15),
        true,
    )
    .await;
    let first = ada.el("#history .message").await.text().await.unwrap();
    assert!(
        first.contains("printed") && first.contains("from bob"),
        "the newest message is bob's, printed: {first}"
    );

    // Signing out: back to the sign-in page; private pages ask for it.
    for who in [&bob, &ada] {
        who.click_through("form[action='/logout'] button[type=submit]")
            .await;
        who.see(&["Sign in"]).await;
        assert!(!who.text().await.contains("signed in as"));
        who.go(&printer_path).await;
        who.see(&["Sign in"]).await;
        assert!(
            who.path().await.starts_with("/login"),
            "{}",
            who.path().await
        );
        assert!(!who.text().await.contains("Kitchen"));
    }

    bob.c.close().await.unwrap();
    ada.c.close().await.unwrap();
    drop(driver);
    drop(emu);
    s.shutdown().await;
    eprintln!(
        "the browser walk took {:.1} s; screenshots in {}",
        started.elapsed().as_secs_f64(),
        screenshot_dir().display()
    );
}
