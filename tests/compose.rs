//! The compose pipeline end to end: real Blitz renders, real pixels. Only
//! loopback addresses are ever contacted.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use image::{DynamicImage, ImageFormat, Rgba, RgbaImage};
use sirius::compose::{
    Content, Envelope, FetchPolicy, MessageFont, RenderConfig, RenderError, Renderer,
};
use sirius::raster::{Dither, Page};

fn renderer_with(fetch: FetchPolicy) -> Renderer {
    Renderer::new(RenderConfig {
        dither: Dither::Threshold,
        fetch_images: fetch,
        ..Default::default()
    })
}

fn renderer() -> Renderer {
    renderer_with(FetchPolicy::Public)
}

fn envelope() -> Envelope {
    Envelope {
        sender: "Key abcd".into(),
        at: "2026-11-24T09:05:00Z".parse().unwrap(),
        time_zone: jiff::tz::TimeZone::get("Europe/London").unwrap(),
        font: MessageFont::Sans,
        dither: None,
    }
}

fn dark(page: &Page, x0: u32, y0: u32, x1: u32, y1: u32) -> usize {
    let mut n = 0;
    for y in y0..y1.min(page.height()) {
        for x in x0..x1.min(page.width()) {
            n += page.is_black(x, y) as usize;
        }
    }
    n
}

fn bare(html: &str) -> Page {
    renderer().render_document(html).unwrap().page
}

fn message(content: Content) -> Page {
    renderer()
        .render_message_blocking(&content, &envelope())
        .unwrap()
        .page
}

fn black_png(w: u32, h: u32) -> Vec<u8> {
    let img = RgbaImage::from_pixel(w, h, Rgba([0, 0, 0, 255]));
    let mut out = Vec::new();
    DynamicImage::ImageRgba8(img)
        .write_to(&mut std::io::Cursor::new(&mut out), ImageFormat::Png)
        .unwrap();
    out
}

/// Rows (top, bottom) holding any black pixel in columns x0..x1.
fn ink_rows(page: &Page, x0: u32, x1: u32) -> Option<(u32, u32)> {
    let rows: Vec<u32> = (0..page.height())
        .filter(|&y| dark(page, x0, y, x1, y + 1) > 0)
        .collect();
    Some((*rows.first()?, *rows.last()?))
}

#[test]
fn template_header_margins_and_width() {
    let page = message(Content::Text("Hello".into()));
    assert_eq!(page.width(), 384);
    // Header band: 18 px bold, from the 1 px top margin; centred.
    let header = dark(&page, 0, 0, 384, 24);
    assert!(header > 300, "header ink {header}");
    assert_eq!(dark(&page, 0, 0, 384, 1), 0, "1 px top margin");
    assert_eq!(dark(&page, 0, 0, 20, 24), 0, "header is centred");
    // 80 px of white at the bottom.
    let h = page.height();
    assert_eq!(dark(&page, 0, h - 80, 384, h), 0);
    let (_, last) = ink_rows(&page, 0, 384).unwrap();
    assert!(
        h - last > 80 && h - last < 100,
        "bottom margin {}",
        h - last
    );
    // Body text ~30 px: the word is taller than the header's letters.
    let (top, bottom) = ink_rows(&page, 0, 384)
        .map(|_| {
            let body: Vec<u32> = (24..h)
                .filter(|&y| dark(&page, 0, y, 384, y + 1) > 0)
                .collect();
            (body[0], *body.last().unwrap())
        })
        .unwrap();
    assert!(
        (18..=30).contains(&(bottom - top)),
        "body glyph height {}",
        bottom - top
    );
}

#[test]
fn text_wraps_and_long_words_wrap() {
    let one = message(Content::Text("word".into()));
    let many = message(Content::Text("word ".repeat(40)));
    assert!(many.height() > one.height() + 100, "text wraps");
    let long = message(Content::Text("x".repeat(120)));
    assert!(long.height() > one.height() + 60, "a long word wraps");
    // Line breaks are kept.
    let lines = message(Content::Text("a\nb\nc".into()));
    assert!(lines.height() > one.height() + 60);
    // Escaped: markup shows as text, it is not interpreted.
    let escaped = message(Content::Text("<div style='height:900px'></div>".into()));
    assert!(escaped.height() < 500);
}

#[test]
fn html_goes_in_as_the_body() {
    let page = message(Content::Html(
        "<div style='height:50px;background:black'></div>".into(),
    ));
    assert!(dark(&page, 0, 0, 384, page.height()) >= 384 * 50);
}

#[test]
fn image_message_is_full_width_picture() {
    let png = black_png(3000, 100);
    let page = message(Content::Image(png));
    // 3000 × 100 → 384 × 13 black band under the header.
    let band = dark(&page, 0, 25, 384, page.height());
    assert!((384 * 11..=384 * 15).contains(&band), "{band}");
    assert!(matches!(
        renderer().render_message_blocking(&Content::Image(b"nope".to_vec()), &envelope()),
        Err(RenderError::NotAnImage(_))
    ));
}

#[test]
fn quirk_a_data_uri_images_load() {
    let uri = format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(black_png(10, 10))
    );
    let page = bare(&format!(
        "<body style='margin:0'><img src='{uri}' style='width:100px;height:100px;display:block'></body>"
    ));
    assert_eq!(dark(&page, 0, 0, 100, 100), 100 * 100);
}

#[test]
fn quirk_b_floats_are_laid_out() {
    let page = bare(
        "<body style='margin:0'><div style='float:right;width:100px;height:40px;background:black'></div>\
         <div style='float:left;width:50px;height:40px;background:black'></div></body>",
    );
    // Both floats sit side by side on the first rows.
    assert_eq!(dark(&page, 284, 0, 384, 40), 100 * 40, "right float");
    assert_eq!(dark(&page, 0, 0, 50, 40), 50 * 40, "left float");
}

#[test]
fn quirk_c_table_attributes_and_collapsed_borders() {
    let plain = bare("<body style='margin:0'><table><tr><td>a</td><td>b</td></tr></table></body>");
    let bordered = bare(
        "<body style='margin:0'><table border='1' cellpadding='10'><tr><td>a</td><td>b</td></tr></table></body>",
    );
    assert!(bordered.height() > plain.height() + 15, "cellpadding");
    // border="1" draws grey lines, as browsers do (outset table, inset
    // cells): dithered, they leave ink where the plain table has none.
    let dithered = Renderer::new(RenderConfig::default());
    let ink = |html: &str| {
        let p = dithered.render_document(html).unwrap().page;
        dark(&p, 0, 0, 384, p.height())
    };
    let cells = "<tr><td>&nbsp;</td><td>&nbsp;</td></tr>";
    let without = ink(&format!(
        "<body style='margin:0'><table cellpadding='10'>{cells}</table></body>"
    ));
    let with = ink(&format!(
        "<body style='margin:0'><table border='1' cellpadding='10'>{cells}</table></body>"
    ));
    assert_eq!(without, 0);
    assert!(with > 40, "border lines: {with} dark pixels");
    // Collapsed borders: every cell's border is drawn, adjacent ones once.
    let cell = "border:2px solid black;width:40px;height:40px";
    let page = bare(&format!(
        "<body style='margin:0'><table style='border-collapse:collapse'>\
         <tr><td style='{cell}'></td><td style='{cell}'></td></tr>\
         <tr><td style='{cell}'></td><td style='{cell}'></td></tr></table></body>"
    ));
    // Vertical lines at the left, the middle and the right edge: count the
    // dark columns on a row through the middle of the first row of cells.
    let y = 20;
    let cols: Vec<u32> = (0..384).filter(|&x| page.is_black(x, y)).collect();
    let runs = cols.windows(2).filter(|w| w[1] != w[0] + 1).count() + 1;
    assert_eq!(runs, 3, "three vertical borders, columns {cols:?}");
    assert!(
        cols.len() <= 3 * 2 + 1,
        "shared borders drawn once: {cols:?}"
    );
    // The second row has borders too (not only the first cell's).
    let y2 = page.height() / 2 + 20;
    let second: usize = (0..384)
        .filter(|&x| page.is_black(x, y2.min(page.height() - 1)))
        .count();
    assert!(second >= 4, "{second}");
}

#[test]
fn quirk_d_svg_text_with_generic_and_alias_families() {
    for family in ["sans-serif", "Arial", "serif", "monospace"] {
        let page = bare(&format!(
            "<body style='margin:0'><svg width='300' height='60'>\
             <text x='5' y='40' font-family='{family}' font-size='32'>Hello</text></svg></body>"
        ));
        assert!(
            dark(&page, 0, 0, 300, 60) > 200,
            "{family}: SVG text is drawn"
        );
    }
}

#[test]
fn quirk_e_ordered_list_markers_keep_a_gap() {
    let page = bare(
        "<body style='margin:0;font:30px sans-serif'><ol style='margin:0'><li>I</li></ol></body>",
    );
    // Chromium: marker "1. " ends at 40 px with its space, the text starts
    // at 40 px. Find the marker's ink and the I's ink on the first line.
    let cols: Vec<u32> = (0..384)
        .filter(|&x| dark(&page, x, 0, x + 1, 40) > 0)
        .collect();
    let gaps: Vec<u32> = cols
        .windows(2)
        .filter(|w| w[1] > w[0] + 1)
        .map(|w| w[1] - w[0] - 1)
        .collect();
    let text_start = *cols.last().unwrap() - 2;
    assert!(text_start >= 39, "text starts at the list indent: {cols:?}");
    let gap_before_text = *gaps.last().unwrap();
    assert!(gap_before_text >= 8, "marker and text apart: gaps {gaps:?}");
}

/// Serves `body` to every connection on a loopback port; returns the port
/// and a hit counter.
fn serve(body: Vec<u8>) -> (u16, Arc<std::sync::atomic::AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let h = hits.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            h.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf);
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = conn.write_all(head.as_bytes());
            let _ = conn.write_all(&body);
        }
    });
    (port, hits)
}

#[test]
fn remote_images_on_loopback_are_refused_unless_all() {
    let (port, hits) = serve(black_png(10, 10));
    let html = format!(
        "<body style='margin:0'><img src='http://127.0.0.1:{port}/a.png' style='width:100px;height:100px;display:block'>\
         <link rel='stylesheet' href='http://127.0.0.1:{port}/style.css'></body>"
    );
    let refused = renderer().render_document(&html).unwrap().page;
    assert_eq!(dark(&refused, 0, 0, 100, 100), 0);
    let none = renderer_with(FetchPolicy::None)
        .render_document(&html)
        .unwrap()
        .page;
    assert_eq!(dark(&none, 0, 0, 100, 100), 0);
    assert_eq!(
        hits.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "nothing was contacted"
    );
    let allowed = renderer_with(FetchPolicy::All)
        .render_document(&html)
        .unwrap()
        .page;
    assert_eq!(dark(&allowed, 0, 0, 100, 100), 100 * 100);
    // The picture, never the stylesheet.
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[test]
fn tall_documents_are_cut_and_reported() {
    let r = renderer()
        .render_document("<body style='margin:0'><div style='height:12000px'></div></body>")
        .unwrap();
    assert!(r.truncated);
    assert_eq!(r.page.height(), 10_000);
    let short = renderer().render_document("<p>hi</p>").unwrap();
    assert!(!short.truncated);
}

#[test]
fn same_html_same_page() {
    let html = "<h1>Hi</h1><p>Some <i>italic</i>, <b>bold</b> and <code>mono</code>.</p>\
                <ul><li>one</li><li>two</li></ul>";
    let r = Renderer::new(RenderConfig::default());
    let a = r
        .render_message_blocking(&Content::Html(html.into()), &envelope())
        .unwrap();
    let b = r
        .render_message_blocking(&Content::Html(html.into()), &envelope())
        .unwrap();
    assert_eq!(a, b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_is_bounded_and_time_is_limited() {
    let r = Renderer::new(RenderConfig {
        concurrency: 1,
        time_limit: Duration::from_secs(20),
        ..Default::default()
    });
    let content = Content::Text("hello".into());
    let env = envelope();
    let (a, b) = tokio::join!(r.render_message(content.clone(), env.clone()), async {
        tokio::task::yield_now().await;
        // While one render holds the only slot, none is free.
        let free = r.available_slots();
        (free, r.render_message(content.clone(), env.clone()).await)
    });
    assert!(a.is_ok() && b.1.is_ok());
    assert!(b.0 <= 1);
    assert_eq!(r.available_slots(), 1);

    // A render that cannot finish in time is an error, not a hang: a
    // picture server that never answers, with a 1 s limit.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let hold = std::thread::spawn(move || {
        let conn = listener.accept();
        std::thread::sleep(Duration::from_secs(3));
        drop(conn);
    });
    let slow = Renderer::new(RenderConfig {
        fetch_images: FetchPolicy::All,
        time_limit: Duration::from_millis(300),
        ..Default::default()
    });
    let started = Instant::now();
    let html = format!("<img src='http://127.0.0.1:{port}/slow.png'>");
    let out = slow.render_message(Content::Html(html), envelope()).await;
    assert!(started.elapsed() < Duration::from_secs(2));
    match out {
        // The wait for pictures is cut at half the limit; either the page
        // comes without the picture or the limit strikes.
        Ok(r) => assert_eq!(r.page.width(), 384),
        Err(e) => assert!(e.to_string().contains("longer than"), "{e}"),
    }
    hold.join().unwrap();
}

// ---- Emoji, added fonts and the font choice ----

/// A page of `html` in a 60 px body, no template.
fn big(text: &str) -> Page {
    bare(&format!(
        "<body style='margin:0;font-size:60px;line-height:1'>{text}</body>"
    ))
}

#[test]
fn emoji_print_as_pictures_not_boxes() {
    // U+E000 is a private-use character no font has: the empty box.
    let tofu = big("\u{E000}");
    let thumbs = big("👍");
    let party = big("🎉");
    let rocket = big("🚀");
    assert!(dark(&tofu, 0, 0, 384, 60) > 0, "the box is drawn");
    // Today all three are the same empty box; with the emoji font each
    // is its own picture.
    assert_ne!(thumbs, tofu, "👍 is not the empty box");
    assert_ne!(party, tofu, "🎉 is not the empty box");
    assert_ne!(thumbs, party);
    assert_ne!(party, rocket);
    // A picture: more ink than the box's outline.
    let ink = |p: &Page| dark(p, 0, 0, 384, p.height());
    assert!(
        ink(&thumbs) > ink(&tofu) * 3 / 2,
        "{} vs {}",
        ink(&thumbs),
        ink(&tofu)
    );
    // In the middle of text, in any family, and after a named family the
    // renderer does not have.
    for family in ["serif", "monospace", "Georgia", "Comic Sans MS"] {
        let with = bare(&format!(
            "<body style='margin:0;font:40px {family}'>ok 🎉 ok</body>"
        ));
        let boxed = bare(&format!(
            "<body style='margin:0;font:40px {family}'>ok \u{E000} ok</body>"
        ));
        assert_ne!(with, boxed, "{family}: the emoji is drawn");
    }
}

fn envelope_from(sender: &str) -> Envelope {
    Envelope {
        sender: sender.into(),
        ..envelope()
    }
}

#[test]
fn emoji_print_in_text_html_and_the_header() {
    let r = renderer();
    let page = |content: Content, sender: &str| {
        r.render_message_blocking(&content, &envelope_from(sender))
            .unwrap()
            .page
    };
    // Text and HTML bodies.
    for make in [
        (|s: &str| Content::Text(s.into())) as fn(&str) -> Content,
        |s: &str| Content::Html(format!("<p>{s}</p>")),
    ] {
        let a = page(make("Pizza 🍕 at 8"), "Ada");
        let b = page(make("Pizza 🚀 at 8"), "Ada");
        let boxed = page(make("Pizza \u{E000} at 8"), "Ada");
        assert_ne!(a, boxed);
        assert_ne!(a, b);
    }
    // The header line: "09:05 | 24-NOV-2026 | ADA 🐈" in its 18 px band.
    let header = |p: &Page| {
        let mut rows = Vec::new();
        for y in 0..24 {
            rows.push((0..384).map(|x| p.is_black(x, y)).collect::<Vec<_>>());
        }
        rows
    };
    let plain = page(Content::Text("hi".into()), "Ada");
    let cat = page(Content::Text("hi".into()), "Ada 🐈");
    let dog = page(Content::Text("hi".into()), "Ada 🐕");
    let boxed = page(Content::Text("hi".into()), "Ada \u{E000}");
    assert_ne!(header(&cat), header(&dog));
    assert_ne!(header(&cat), header(&boxed));
    assert!(dark(&cat, 0, 0, 384, 24) > dark(&plain, 0, 0, 384, 24) + 40);
}

/// The path of a real font file from a Debian package, installed when
/// missing (the tests run as root; `apt-get` needs the network to the
/// Debian mirrors).
fn debian_font(package: &str, path: &str) -> std::path::PathBuf {
    // One installation at a time: tests run in parallel, apt does not.
    static APT: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _apt = APT.lock().unwrap_or_else(|e| e.into_inner());
    let path = std::path::PathBuf::from(path);
    if !path.exists() {
        let status = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "(apt-get install -y {package} || (apt-get update && apt-get install -y {package})) >/dev/null 2>&1"
            ))
            .status();
        assert!(
            path.exists(),
            "this test needs the Debian package {package} ({}): install it with `apt-get install {package}` ({status:?})",
            path.display()
        );
    }
    path
}

const CJK_FONT: (&str, &str) = (
    "fonts-droid-fallback",
    "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
);
const CJK_FAMILY: &str = "Droid Sans Fallback";

/// A fonts folder: a real CJK font in a subfolder, a file that is no font,
/// a link to nowhere, and a note that is ignored.
fn fonts_folder(name: &str) -> std::path::PathBuf {
    let cjk = debian_font(CJK_FONT.0, CJK_FONT.1);
    let dir = std::env::temp_dir().join(format!("sirius-fonts-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("droid")).unwrap();
    std::fs::copy(&cjk, dir.join("droid/DroidSansFallbackFull.ttf")).unwrap();
    std::fs::write(dir.join("broken.ttf"), b"this is not a font").unwrap();
    std::os::unix::fs::symlink(dir.join("nowhere.otf"), dir.join("gone.otf")).unwrap();
    std::fs::write(dir.join("README.txt"), b"fonts for the printer").unwrap();
    dir
}

fn renderer_with_fonts(dir: &std::path::Path) -> Renderer {
    Renderer::new(RenderConfig {
        dither: Dither::Threshold,
        fonts_dir: Some(dir.to_path_buf()),
        ..Default::default()
    })
}

#[test]
fn a_fonts_folder_adds_families_and_bad_files_are_warnings() {
    let dir = fonts_folder("add");
    let r = renderer_with_fonts(&dir);
    let names: Vec<String> = r.font_families().into_iter().map(|f| f.name).collect();
    assert_eq!(
        names,
        [
            "DejaVu Sans",
            "DejaVu Serif",
            "DejaVu Sans Mono",
            CJK_FAMILY
        ]
    );
    let choices: Vec<String> = r
        .font_families()
        .into_iter()
        .map(|f| f.font.to_string())
        .collect();
    assert_eq!(choices, ["sans", "serif", "mono", CJK_FAMILY]);
    // One warning per bad file, naming it; the note is not a font file.
    let warnings = r.font_warnings();
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("broken.ttf") && w.contains("not a font")),
        "{warnings:?}"
    );
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("gone.otf") && w.contains("could not be read")),
        "{warnings:?}"
    );
    // Chinese prints with the added font, in the default sans too (a
    // fallback), and as boxes without it.
    let text = Content::Text("你好，世界".into());
    let with = r.render_message_blocking(&text, &envelope()).unwrap().page;
    let without = renderer()
        .render_message_blocking(&text, &envelope())
        .unwrap()
        .page;
    let boxes = renderer()
        .render_message_blocking(
            &Content::Text("\u{E000}\u{E000}，\u{E000}\u{E000}".into()),
            &envelope(),
        )
        .unwrap()
        .page;
    assert_ne!(with, without);
    // Without the font, the five characters are five identical boxes.
    assert_eq!(
        dark(&without, 0, 24, 384, without.height()),
        dark(&boxes, 0, 24, 384, boxes.height())
    );
    // The same folder, an unreadable one, and no folder: nothing crashes.
    let missing = renderer_with_fonts(&dir.join("no-such-folder"));
    assert_eq!(missing.font_warnings().len(), 1);
    assert!(missing.font_warnings()[0].contains("no-such-folder"));
    assert_eq!(missing.font_families().len(), 3);
    assert!(missing.render_message_blocking(&text, &envelope()).is_ok());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_message_chooses_its_font() {
    let dir = fonts_folder("choose");
    let r = renderer_with_fonts(&dir);
    let text = Content::Text("Hello, world. 0O1lI".into());
    let page = |font: MessageFont| {
        let e = Envelope { font, ..envelope() };
        r.render_message_blocking(&text, &e).unwrap().page
    };
    let sans = page(MessageFont::Sans);
    let serif = page(MessageFont::Serif);
    let mono = page(MessageFont::Mono);
    let added = page(MessageFont::Family(CJK_FAMILY.into()));
    let added_any_case = page(MessageFont::parse(&CJK_FAMILY.to_uppercase()));
    let unknown = page(MessageFont::Family("Comic Sans MS".into()));
    assert_ne!(sans, serif);
    assert_ne!(sans, mono);
    assert_ne!(serif, mono);
    assert_ne!(sans, added);
    assert_eq!(added, added_any_case);
    assert_eq!(unknown, sans, "an unknown family prints in sans");
    assert_eq!(page(MessageFont::parse("serif")), serif);
    // The header does not change with the body's font.
    let band = |p: &Page| {
        (0..24 * 384)
            .map(|i| p.is_black(i % 384, i / 384))
            .collect::<Vec<_>>()
    };
    assert_eq!(band(&sans), band(&serif));
    assert_eq!(band(&sans), band(&mono));
    // The default envelope is sans, and a renderer without a fonts folder
    // prints it the same.
    let default = renderer()
        .render_message_blocking(&text, &envelope())
        .unwrap()
        .page;
    assert_eq!(default, sans);
    std::fs::remove_dir_all(dir).unwrap();
}

// ---- Collapsed table borders ----

/// Runs of black pixels along a line: (start, length).
fn runs(line: impl IntoIterator<Item = bool>) -> Vec<(u32, u32)> {
    let mut out: Vec<(u32, u32)> = Vec::new();
    let mut prev = false;
    for (i, black) in line.into_iter().enumerate() {
        let i = i as u32;
        if black && prev {
            out.last_mut().unwrap().1 += 1;
        } else if black {
            out.push((i, 1));
        }
        prev = black;
    }
    out
}

fn row_runs(page: &Page, y: u32) -> Vec<(u32, u32)> {
    runs((0..page.width()).map(|x| page.is_black(x, y)))
}

fn column_runs(page: &Page, x: u32) -> Vec<(u32, u32)> {
    runs((0..page.height()).map(|y| page.is_black(x, y)))
}

fn lengths(runs: &[(u32, u32)]) -> Vec<u32> {
    runs.iter().map(|r| r.1).collect()
}

/// A table of empty cells, 40 × 30 px each, with `css` in a stylesheet.
fn grid_table(css: &str, rows: usize, cols: usize) -> Page {
    let row = format!("<tr>{}</tr>", "<td></td>".repeat(cols));
    bare(&format!(
        "<style>body {{ margin: 0 }} table {{ border-collapse: collapse }} \
         td {{ width: 40px; height: 30px; padding: 0 }} {css}</style>\
         <table>{}</table>",
        row.repeat(rows)
    ))
}

#[test]
fn collapsed_cell_borders_print_as_a_grid() {
    // A to-do grid: thin lines on every cell, from a stylesheet.
    let page = grid_table("td { border: 1px solid black }", 3, 3);
    let across = row_runs(&page, 15);
    assert_eq!(
        lengths(&across),
        [1, 1, 1, 1],
        "4 vertical lines: {across:?}"
    );
    let down = column_runs(&page, 20);
    assert_eq!(lengths(&down), [1, 1, 1, 1], "4 horizontal lines: {down:?}");
    // Cells are 40 px apart, and the lines run the table's full height
    // and width.
    let xs: Vec<u32> = across.iter().map(|r| r.0).collect();
    assert!(
        xs.windows(2).all(|w| (40..=42).contains(&(w[1] - w[0]))),
        "{xs:?}"
    );
    let (top, bottom) = (down[0].0, down[3].0);
    for &(x, _) in &across {
        assert!(
            (top..=bottom).all(|y| page.is_black(x, y)),
            "line at x={x} is whole"
        );
    }
    for &(y, _) in &down {
        assert!(
            (xs[0]..=xs[3]).all(|x| page.is_black(x, y)),
            "line at y={y} is whole"
        );
    }

    // Thick lines stay thick, shared ones are drawn once.
    let thick = grid_table("td { border: 4px solid black }", 2, 2);
    assert_eq!(lengths(&row_runs(&thick, 20)), [4, 4, 4]);
    assert_eq!(lengths(&column_runs(&thick, 20)), [4, 4, 4]);
}

#[test]
fn collapsed_league_table_prints_its_rules() {
    // Only bottom borders, a thicker one under the header, as a league
    // table has them: Blitz alone prints none of these.
    let rows = "<tr><td></td><td></td></tr>".repeat(3);
    let page = bare(&format!(
        "<style>body {{ margin: 0 }} table {{ border-collapse: collapse; width: 100% }} \
         th {{ border-bottom: 3px solid black; height: 30px }} \
         td {{ border-bottom: 1px solid #000; height: 30px }}</style>\
         <table><thead><tr><th></th><th></th></tr></thead><tbody>{rows}</tbody></table>"
    ));
    let down = column_runs(&page, 370);
    assert_eq!(
        lengths(&down),
        [3, 1, 1, 1],
        "rules under every row: {down:?}"
    );
    // They cross the whole table; there are no vertical lines.
    for &(y, _) in &down {
        assert!(
            (0..384).all(|x| page.is_black(x, y)),
            "rule at y={y} is full width"
        );
    }
    assert!(row_runs(&page, down[1].0 + 15).is_empty());
}

#[test]
fn collapsed_row_and_table_borders_print() {
    // Borders on rows: horizontal lines only.
    let page = grid_table("tr { border-bottom: 2px solid black }", 3, 2);
    assert_eq!(lengths(&column_runs(&page, 20)), [2, 2, 2]);
    assert!(row_runs(&page, 15).is_empty(), "no vertical lines");
    // A border on the table alone: a frame.
    let frame = grid_table("table { border: 4px solid black }", 2, 2);
    let across = row_runs(&frame, 30);
    assert_eq!(lengths(&across), [4, 4], "{across:?}");
    assert_eq!(lengths(&column_runs(&frame, 30)), [4, 4]);
    assert_eq!(
        across[1].0 + 4 - across[0].0,
        2 * 40 + 8,
        "the frame holds the cells"
    );
    // The table's frame and thin cell lines: the wider wins on the edge.
    let both = grid_table(
        "table { border: 4px solid black } td { border: 1px solid black }",
        2,
        2,
    );
    assert_eq!(lengths(&row_runs(&both, 20)), [4, 1, 4]);
    assert_eq!(lengths(&column_runs(&both, 20)), [4, 1, 4]);
    // One thick cell among thin ones: its edges are thick, the rest thin.
    let page = bare(
        "<style>body { margin: 0 } table { border-collapse: collapse } \
         td { width: 40px; height: 30px; padding: 0; border: 1px solid black } \
         td.x { border: 5px solid black }</style>\
         <table><tr><td class='x'></td><td></td></tr><tr><td></td><td></td></tr></table>",
    );
    assert_eq!(lengths(&row_runs(&page, 20)), [5, 5, 1]);
    let second_row = column_runs(&page, 60);
    assert_eq!(lengths(&second_row), [1, 1, 1]);
    let y = second_row[1].0 + 15;
    assert_eq!(lengths(&row_runs(&page, y)), [1, 1, 1]);
}
