//! The compose pipeline end to end: real Blitz renders, real pixels. Only
//! loopback addresses are ever contacted.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use image::{DynamicImage, ImageFormat, Rgba, RgbaImage};
use sirius::compose::{Content, Envelope, FetchPolicy, RenderConfig, RenderError, Renderer};
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
