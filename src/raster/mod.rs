//! Pixels, pure: decoded images to 1-bit printer pages, and pages to PNG.
//!
//! * [`bitmap`]: the 1-bit [`Page`].
//! * [`convert`]: image bytes (PNG, JPEG, GIF, WebP, sniffed) to a page:
//!   scaled down or padded to 384, greyscale, Floyd–Steinberg or threshold.

pub mod bitmap;
pub mod convert;
pub mod samples;

pub use bitmap::{MAX_HEIGHT, MAX_PIXELS, PRINTER_WIDTH, Page, PageError};
pub use convert::{
    Dither, ImageError, PageImage, decode_image, page_from_image, page_from_image_bytes,
    page_to_png, raw_page_from_image,
};
