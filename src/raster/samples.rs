//! Synthetic pages for benchmarks, load tests and tests: deterministic for a
//! seed, no randomness from the OS.

use super::bitmap::{MAX_HEIGHT, PRINTER_WIDTH, Page};

/// A small deterministic generator (xorshift64*).
struct Xorshift(u64);

impl Xorshift {
    fn new(seed: u64) -> Self {
        Xorshift(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u32) -> u32 {
        (self.next() >> 33) as u32 % n
    }
}

/// Random noise: every pixel black or white by a coin toss. The worst case
/// for the run-length code (runs of 2 on average).
pub fn noise_page(width: u32, height: u32, seed: u64) -> Page {
    let mut rng = Xorshift::new(seed);
    Page::from_fn(width, height, |_, _| rng.next() >> 63 == 1).expect("valid size")
}

/// Something like printed text: lines 36 rows apart, each a band of 24 rows
/// of "words" (clusters of short strokes) across most of the width, with
/// white between the lines and a ragged right edge.
pub fn text_like_page(height: u32, seed: u64) -> Page {
    let mut rng = Xorshift::new(seed);
    let height = height.min(MAX_HEIGHT);
    let mut page = Page::white(PRINTER_WIDTH, height).expect("valid size");
    let mut top = 8;
    while top + 24 < height {
        let line_end = 300 + rng.below(80);
        let mut x = 8;
        while x < line_end {
            let word = 20 + rng.below(60);
            for y in top..top + 24 {
                let mut cx = x;
                while cx < (x + word).min(PRINTER_WIDTH) {
                    let stroke = 1 + rng.below(3);
                    for sx in cx..(cx + stroke).min(PRINTER_WIDTH) {
                        page.set_black(sx, y, true);
                    }
                    cx += stroke + 1 + rng.below(6);
                }
            }
            x += word + 10;
        }
        top += 36;
    }
    page
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_plausible() {
        assert_eq!(noise_page(384, 10, 1), noise_page(384, 10, 1));
        let t = text_like_page(1000, 3);
        let share = t.black_count() as f64 / t.pixel_count() as f64;
        assert!((0.05..0.4).contains(&share), "{share}");
    }
}
