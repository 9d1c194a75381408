//! The printer codec on the two pages the issue names: 384 × 10,000 random
//! noise (the worst case) and 384 × 10,000 of text-like strokes, from page
//! to base64 DeviceCommand JSON and back.

use criterion::{Criterion, criterion_group, criterion_main};
use sirius::protocol::CommandKind;
use sirius::protocol::commands::{decode_device_command, print_command};
use sirius::raster::Page;
use sirius::raster::samples::{noise_page, text_like_page};

const BRIDGE: &str = "000d6f0001b3719d";
const DEVICE: &str = "000d6f000273ce0b";

fn encode(page: &Page) -> String {
    print_command(
        BRIDGE,
        DEVICE,
        7,
        CommandKind::SetDeliveryAndPrint,
        std::slice::from_ref(page),
    )
    .expect("one page")
}

fn codec(c: &mut Criterion) {
    let pages = [
        ("noise_384x10000", noise_page(384, 10_000, 1)),
        ("text_384x10000", text_like_page(10_000, 1)),
    ];
    let mut group = c.benchmark_group("codec");
    group.sample_size(30);
    for (name, page) in &pages {
        let json = encode(page);
        group.bench_function(format!("encode_{name}"), |b| b.iter(|| encode(page)));
        group.bench_function(format!("decode_{name}"), |b| {
            b.iter(|| decode_device_command(&json, 384).expect("valid"))
        });
    }
    group.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
