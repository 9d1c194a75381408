//! The 1-bit [`Page`]: what a Little Printer prints.
//!
//! Pixels are kept as one flat bit sequence in row-major order (bit set =
//! black), 64 to a word. That makes a 384 × 10,000 page 480 KB, and lets the
//! printer codec find runs a word at a time, across row ends, in either
//! direction.

use std::fmt;

/// Dots across the print head.
pub const PRINTER_WIDTH: u32 = 384;
/// The tallest page we print (the earlier server cut pages here too).
pub const MAX_HEIGHT: u32 = 10_000;
/// The most pixels a page may hold: a full-width page of the maximum height.
pub const MAX_PIXELS: usize = PRINTER_WIDTH as usize * MAX_HEIGHT as usize;

/// Why a page of a given size cannot exist.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PageError {
    #[error("a page must be at least 1 × 1 pixels, not {width} × {height}")]
    Empty { width: u32, height: u32 },
    #[error(
        "a page of {width} × {height} pixels is too large: at most {MAX_PIXELS} pixels (384 × 10,000)"
    )]
    TooLarge { width: u32, height: u32 },
}

/// A 1-bit image, white unless set. Printer pages are 384 wide; the codec
/// takes any width.
#[derive(Clone, PartialEq, Eq)]
pub struct Page {
    width: u32,
    height: u32,
    bits: Vec<u64>,
}

impl Page {
    /// An all-white page.
    pub fn white(width: u32, height: u32) -> Result<Page, PageError> {
        if width == 0 || height == 0 {
            return Err(PageError::Empty { width, height });
        }
        let pixels = width as usize * height as usize;
        if pixels > MAX_PIXELS {
            return Err(PageError::TooLarge { width, height });
        }
        Ok(Page {
            width,
            height,
            bits: vec![0; pixels.div_ceil(64)],
        })
    }

    /// A page from a function of (x, y) that says whether a pixel is black.
    pub fn from_fn(
        width: u32,
        height: u32,
        mut black: impl FnMut(u32, u32) -> bool,
    ) -> Result<Page, PageError> {
        let mut page = Page::white(width, height)?;
        let mut i = 0usize;
        for y in 0..height {
            for x in 0..width {
                if black(x, y) {
                    page.bits[i / 64] |= 1 << (i % 64);
                }
                i += 1;
            }
        }
        Ok(page)
    }

    pub fn width(&self) -> u32 {
        self.width
    }

    pub fn height(&self) -> u32 {
        self.height
    }

    /// width × height.
    pub fn pixel_count(&self) -> usize {
        self.width as usize * self.height as usize
    }

    /// Whether the pixel at (x, y) is black. Panics outside the page.
    pub fn is_black(&self, x: u32, y: u32) -> bool {
        assert!(x < self.width && y < self.height, "pixel outside the page");
        self.bit(y as usize * self.width as usize + x as usize)
    }

    /// Sets the pixel at (x, y). Panics outside the page.
    pub fn set_black(&mut self, x: u32, y: u32, black: bool) {
        assert!(x < self.width && y < self.height, "pixel outside the page");
        let i = y as usize * self.width as usize + x as usize;
        if black {
            self.bits[i / 64] |= 1 << (i % 64);
        } else {
            self.bits[i / 64] &= !(1 << (i % 64));
        }
    }

    /// Number of black pixels.
    pub fn black_count(&self) -> usize {
        self.bits.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// The same pixels, read as a page of another width (same pixel count).
    pub fn reshaped(mut self, width: u32) -> Option<Page> {
        let pixels = self.pixel_count();
        if width == 0 || !pixels.is_multiple_of(width as usize) {
            return None;
        }
        self.height = (pixels / width as usize) as u32;
        self.width = width;
        Some(self)
    }

    /// The pages stacked top to bottom, for previews. `None` if widths differ
    /// or there are none.
    pub fn stack(pages: &[Page]) -> Option<Page> {
        let width = pages.first()?.width;
        if pages.iter().any(|p| p.width != width) {
            return None;
        }
        let height: u32 = pages.iter().map(|p| p.height).sum();
        let mut out = Page {
            width,
            height,
            bits: vec![0; (width as usize * height as usize).div_ceil(64)],
        };
        let mut offset = 0usize;
        for p in pages {
            for i in 0..p.pixel_count() {
                if p.bit(i) {
                    let j = offset + i;
                    out.bits[j / 64] |= 1 << (j % 64);
                }
            }
            offset += p.pixel_count();
        }
        Some(out)
    }

    #[inline]
    pub(crate) fn bit(&self, i: usize) -> bool {
        self.bits[i / 64] >> (i % 64) & 1 == 1
    }

    /// The flat bit sequence (row-major, bit i of the page at word i / 64,
    /// bit i % 64; bits past the last pixel are zero).
    pub(crate) fn words(&self) -> &[u64] {
        &self.bits
    }

    /// A page of `pixels` pixels in one row, built from its words. The
    /// caller guarantees the size limits and that bits past the end are zero.
    pub(crate) fn from_words(width: u32, height: u32, bits: Vec<u64>) -> Page {
        debug_assert_eq!(bits.len(), (width as usize * height as usize).div_ceil(64));
        Page {
            width,
            height,
            bits,
        }
    }
}

impl fmt::Debug for Page {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Page({} × {}, {} black)",
            self.width,
            self.height,
            self.black_count()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_checked() {
        assert!(Page::white(384, 10_000).is_ok());
        assert_eq!(
            Page::white(384, 10_001),
            Err(PageError::TooLarge {
                width: 384,
                height: 10_001
            })
        );
        assert!(matches!(Page::white(0, 5), Err(PageError::Empty { .. })));
        assert!(Page::white(1, 1).is_ok());
    }

    #[test]
    fn pixels_round_trip() {
        let mut p = Page::white(3, 2).unwrap();
        p.set_black(2, 1, true);
        p.set_black(0, 0, true);
        assert!(p.is_black(2, 1) && p.is_black(0, 0) && !p.is_black(1, 0));
        assert_eq!(p.black_count(), 2);
        p.set_black(0, 0, false);
        assert_eq!(p.black_count(), 1);
        let tall = p.clone().reshaped(1).unwrap();
        assert_eq!((tall.width(), tall.height()), (1, 6));
        assert!(tall.is_black(0, 5));
        let s = Page::stack(&[p.clone(), p]).unwrap();
        assert_eq!((s.width(), s.height()), (3, 4));
        assert!(s.is_black(2, 3) && s.is_black(2, 1));
    }
}
