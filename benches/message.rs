//! Messages to DeviceCommand JSON, as the server does it: a typical message
//! (template + ~100 words + a list) through Blitz, and a 3000 × 2000 JPEG
//! photo to a dithered 384-wide page.

use std::hint::black_box;
use std::io::Cursor;

use criterion::{Criterion, criterion_group, criterion_main};
use image::{DynamicImage, ImageFormat, Rgb, RgbImage};
use sirius::compose::{Content, Envelope, RenderConfig, Renderer};
use sirius::protocol::CommandKind;
use sirius::protocol::commands::print_command;

const WORDS: &str = "The quick brown fox jumps over the lazy dog while the little printer \
    hums along on the kitchen shelf, printing the news of the day, a shopping list, \
    and a note from a friend who lives far away. Paper curls gently as the thermal head \
    warms each dot, and the words appear one line at a time, black on white, crisp and \
    clear, waiting to be torn off and pinned to the fridge next to last week's crossword \
    and a photograph of the cat asleep in a sunbeam.";

fn typical_message() -> String {
    format!(
        "<h2>Good morning!</h2><p>{WORDS}</p><ul><li>Eggs</li><li>Milk</li>\
         <li>Bread</li><li>Coffee</li></ul><p><b>Have a nice day.</b></p>"
    )
}

fn photo_jpeg() -> Vec<u8> {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let img = RgbImage::from_fn(3000, 2000, |x, y| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let noise = (seed % 24) as i32 - 12;
        let base = ((x * 255 / 3000 + y * 255 / 2000) / 2) as i32;
        let v = |o: i32| (base + o + noise).clamp(0, 255) as u8;
        Rgb([v(0), v(20), v(-20)])
    });
    let mut out = Vec::new();
    DynamicImage::ImageRgb8(img)
        .write_to(&mut Cursor::new(&mut out), ImageFormat::Jpeg)
        .unwrap();
    out
}

fn envelope() -> Envelope {
    Envelope {
        sender: "Key abcd".into(),
        at: jiff::Timestamp::from_second(1_795_511_100).unwrap(),
        time_zone: jiff::tz::TimeZone::UTC,
        font: Default::default(),
        dither: None,
    }
}

fn to_command(renderer: &Renderer, content: &Content) -> String {
    let page = renderer
        .render_message_blocking(content, &envelope())
        .unwrap()
        .page;
    print_command(
        "000d6f0001b3719d",
        "000d6f000273ce0b",
        1,
        CommandKind::SetDeliveryAndPrint,
        &[page],
    )
    .unwrap()
}

fn benches(c: &mut Criterion) {
    let renderer = Renderer::new(RenderConfig::default());
    let html = Content::Html(typical_message());
    c.bench_function(
        "message: template + 100 words + list → DeviceCommand",
        |b| b.iter(|| black_box(to_command(&renderer, &html))),
    );
    let photo = Content::Image(photo_jpeg());
    c.bench_function("message: 3000×2000 JPEG → dithered DeviceCommand", |b| {
        b.iter(|| black_box(to_command(&renderer, &photo)))
    });
}

criterion_group! {
    name = message;
    config = Criterion::default().sample_size(20);
    targets = benches
}
criterion_main!(message);
