//! Images to printer pages, and pages to PNG.
//!
//! An image becomes a page in four steps: composite over white (transparent
//! pixels count as white) and take the luma; scale down to 384 wide if wider
//! (keeping the aspect ratio), or centre it on white if narrower (never
//! black); cut at 10,000 rows; then Floyd–Steinberg dithering (the default)
//! or a plain threshold at 50 % grey. A pure black-and-white image 384 wide
//! comes out pixel for pixel unchanged either way.
//!
//! Input formats are recognised by their bytes, never by a file name or a
//! MIME type: PNG, JPEG, GIF (first frame) and WebP.

use std::io::Cursor;

use image::{DynamicImage, GrayImage, ImageDecoder, ImageFormat, ImageReader, Limits, Luma};

use super::bitmap::{MAX_HEIGHT, PRINTER_WIDTH, Page, PageError};

/// How grey becomes black or white.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Dither {
    /// Floyd–Steinberg error diffusion: photos keep their tones.
    #[default]
    FloydSteinberg,
    /// Darker than 50 % grey is black: crisp for line art and text.
    Threshold,
}

/// Why image bytes could not become a page.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error(
        "not a picture this server reads: expected PNG, JPEG, GIF or WebP, and the data looks like {0}"
    )]
    UnsupportedFormat(String),
    #[error("the {format} image could not be decoded: {reason}")]
    Decode {
        format: &'static str,
        reason: String,
    },
    #[error(
        "pixel ({x}, {y}) is neither pure black nor pure white; --raw takes only black-and-white images"
    )]
    NotBlackAndWhite { x: u32, y: u32 },
    #[error("{0}")]
    Page(#[from] PageError),
}

/// Largest decoded image accepted, per side, and memory a decoder may use:
/// enough for any camera, a guard against decompression bombs.
const MAX_SIDE: u32 = 20_000;
const MAX_DECODE_BYTES: u64 = 512 * 1024 * 1024;

fn format_name(f: ImageFormat) -> &'static str {
    match f {
        ImageFormat::Png => "PNG",
        ImageFormat::Jpeg => "JPEG",
        ImageFormat::Gif => "GIF",
        ImageFormat::WebP => "WebP",
        _ => "image",
    }
}

/// Decodes PNG, JPEG, GIF or WebP bytes, recognised by their content. JPEG
/// EXIF orientation is applied, so phone photos come out upright.
pub fn decode_image(bytes: &[u8]) -> Result<DynamicImage, ImageError> {
    let format = match image::guess_format(bytes) {
        Ok(f @ (ImageFormat::Png | ImageFormat::Jpeg | ImageFormat::Gif | ImageFormat::WebP)) => f,
        Ok(other) => return Err(ImageError::UnsupportedFormat(format!("{other:?}"))),
        Err(_) => return Err(ImageError::UnsupportedFormat(sniff_description(bytes))),
    };
    let decode_err = |e: image::ImageError| ImageError::Decode {
        format: format_name(format),
        reason: e.to_string(),
    };
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(decode_err)?;
    let orientation = decoder.orientation().map_err(decode_err)?;
    let mut image = DynamicImage::from_decoder(decoder).map_err(decode_err)?;
    image.apply_orientation(orientation);
    Ok(image)
}

/// A few words about bytes that are no image we know, for the error.
fn sniff_description(bytes: &[u8]) -> String {
    let head = &bytes[..bytes.len().min(64)];
    if bytes.is_empty() {
        "nothing (it is empty)".into()
    } else if head
        .iter()
        .all(|b| b.is_ascii_graphic() || b.is_ascii_whitespace())
    {
        "text".into()
    } else {
        "unknown binary data".into()
    }
}

/// A page made from an image, and whether it had to be cut at 10,000 rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageImage {
    pub page: Page,
    /// The image was taller than 10,000 rows (after scaling) and was cut.
    pub truncated: bool,
}

/// Luma of an RGBA pixel composited over white, 0 (black) to 255 (white).
#[inline]
fn grey_of(p: [u8; 4]) -> u8 {
    let [r, g, b, a] = p.map(u32::from);
    let luma = (299 * r + 587 * g + 114 * b + 500) / 1000;
    ((luma * a + 255 * (255 - a) + 127) / 255) as u8
}

/// An image as grey composited over white (transparent is white), with
/// the luma weights of [`grey_over_white`]. Common opaque formats are read
/// directly, without an RGBA copy of a possibly huge photo.
pub fn grey_over_white(image: &DynamicImage) -> GrayImage {
    let (w, h) = (image.width(), image.height());
    match image {
        // Already grey and opaque: no conversion needed.
        DynamicImage::ImageLuma8(g) => g.clone(),
        DynamicImage::ImageRgb8(rgb) => {
            let mut grey = GrayImage::new(w, h);
            for (dst, src) in grey.pixels_mut().zip(rgb.pixels()) {
                let [r, g, b] = src.0;
                *dst = Luma([grey_of([r, g, b, 255])]);
            }
            grey
        }
        _ => {
            let rgba = image.to_rgba8();
            let mut grey = GrayImage::new(w, h);
            for (dst, src) in grey.pixels_mut().zip(rgba.pixels()) {
                *dst = Luma([grey_of(src.0)]);
            }
            grey
        }
    }
}

/// Scales a grey image down to `width` (keeping its aspect ratio, at most
/// `max_height` rows) if it is wider; narrower images are left as they are.
pub fn scale_down_to(grey: GrayImage, width: u32, max_height: u32) -> GrayImage {
    let (w, h) = grey.dimensions();
    if w <= width {
        return grey;
    }
    let new_h = ((u64::from(h) * u64::from(width) + u64::from(w) / 2) / u64::from(w))
        .clamp(1, u64::from(max_height)) as u32;
    image::imageops::resize(&grey, width, new_h, image::imageops::FilterType::Triangle)
}

/// Turns a decoded image into a 384-wide printer page.
pub fn page_from_image(image: &DynamicImage, dither: Dither) -> PageImage {
    let grey = scale_down_to(grey_over_white(image), PRINTER_WIDTH, u32::MAX);
    let (w, h) = grey.dimensions();
    let truncated = h > MAX_HEIGHT;
    let height = h.clamp(1, MAX_HEIGHT);
    let left = (PRINTER_WIDTH - w.min(PRINTER_WIDTH)) / 2;
    // Page-sized grey buffer: white padding around the picture.
    let mut values = vec![255u8; PRINTER_WIDTH as usize * height as usize];
    for y in 0..height.min(h) {
        let row = &grey.as_raw()[(y * w) as usize..((y + 1) * w) as usize];
        let start = (y * PRINTER_WIDTH + left) as usize;
        values[start..start + w as usize].copy_from_slice(row);
    }
    let page = match dither {
        Dither::Threshold => Page::from_fn(PRINTER_WIDTH, height, |x, y| {
            values[(y * PRINTER_WIDTH + x) as usize] < 128
        }),
        Dither::FloydSteinberg => floyd_steinberg(&values, PRINTER_WIDTH, height),
    }
    .expect("384 × at most 10,000 is a valid page");
    PageImage { page, truncated }
}

/// Floyd–Steinberg error diffusion, left to right on every row, to black
/// (< 128) or white.
fn floyd_steinberg(values: &[u8], width: u32, height: u32) -> Result<Page, PageError> {
    let w = width as usize;
    let mut page = Page::white(width, height)?;
    // Errors for this row and the next, with a cell of slack at each end.
    let mut this = vec![0i32; w + 2];
    let mut next = vec![0i32; w + 2];
    for y in 0..height as usize {
        let row = &values[y * w..(y + 1) * w];
        for x in 0..w {
            let old = i32::from(row[x]) + this[x + 1] / 16;
            let (black, new) = if old < 128 { (true, 0) } else { (false, 255) };
            if black {
                page.set_black(x as u32, y as u32, true);
            }
            let err = old - new;
            this[x + 2] += err * 7;
            next[x] += err * 3;
            next[x + 1] += err * 5;
            next[x + 2] += err;
        }
        std::mem::swap(&mut this, &mut next);
        next.iter_mut().for_each(|e| *e = 0);
    }
    Ok(page)
}

/// Decodes image bytes and turns them into a printer page.
pub fn page_from_image_bytes(bytes: &[u8], dither: Dither) -> Result<PageImage, ImageError> {
    Ok(page_from_image(&decode_image(bytes)?, dither))
}

/// A pure black-and-white image as a page of exactly its own size: no
/// scaling, padding or dithering. Transparent pixels count as white; any
/// other pixel that is not pure black or pure white is an error.
pub fn raw_page_from_image(image: &DynamicImage) -> Result<Page, ImageError> {
    let rgba = image.to_rgba8();
    let (w, h) = rgba.dimensions();
    let mut page = Page::white(w, h)?;
    for (x, y, p) in rgba.enumerate_pixels() {
        match p.0 {
            [_, _, _, 0] | [255, 255, 255, 255] => {}
            [0, 0, 0, 255] => page.set_black(x, y, true),
            _ => return Err(ImageError::NotBlackAndWhite { x, y }),
        }
    }
    Ok(page)
}

/// A page as a 1-bit greyscale PNG (black = 0).
pub fn page_to_png(page: &Page) -> Vec<u8> {
    let (w, h) = (page.width(), page.height());
    let stride = (w as usize).div_ceil(8);
    let mut data = vec![0u8; stride * h as usize];
    for y in 0..h {
        for x in 0..w {
            if !page.is_black(x, y) {
                data[y as usize * stride + x as usize / 8] |= 0x80 >> (x % 8);
            }
        }
    }
    let mut out = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut out, w, h);
        encoder.set_color(png::ColorType::Grayscale);
        encoder.set_depth(png::BitDepth::One);
        let mut writer = encoder.write_header().expect("writing to memory");
        writer
            .write_image_data(&data)
            .expect("data matches the header");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{Rgba, RgbaImage};

    fn png_of(img: &RgbaImage) -> Vec<u8> {
        let mut out = Vec::new();
        DynamicImage::ImageRgba8(img.clone())
            .write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
            .unwrap();
        out
    }

    #[test]
    fn black_and_white_384_is_unchanged_by_either_dither() {
        let img = RgbaImage::from_fn(384, 50, |x, y| {
            if (x * 7 + y * 13) % 5 < 2 {
                Rgba([0, 0, 0, 255])
            } else {
                Rgba([255, 255, 255, 255])
            }
        });
        for dither in [Dither::FloydSteinberg, Dither::Threshold] {
            let page = page_from_image_bytes(&png_of(&img), dither).unwrap().page;
            assert_eq!((page.width(), page.height()), (384, 50));
            for (x, y, p) in img.enumerate_pixels() {
                assert_eq!(page.is_black(x, y), p.0[0] == 0, "({x},{y}) {dither:?}");
            }
        }
    }

    #[test]
    fn narrow_images_are_padded_with_white_and_centred() {
        let img = RgbaImage::from_pixel(100, 10, Rgba([0, 0, 0, 255]));
        let page = page_from_image(&DynamicImage::ImageRgba8(img), Dither::Threshold).page;
        assert_eq!((page.width(), page.height()), (384, 10));
        assert_eq!(page.black_count(), 1000);
        assert!(!page.is_black(0, 0) && !page.is_black(383, 9));
        assert!(page.is_black(142, 0) && page.is_black(241, 9));
        assert!(!page.is_black(141, 0) && !page.is_black(242, 0));
    }

    #[test]
    fn wide_images_are_scaled_down_keeping_aspect() {
        let img = RgbaImage::from_pixel(768, 200, Rgba([0, 0, 0, 255]));
        let page = page_from_image(&DynamicImage::ImageRgba8(img), Dither::FloydSteinberg).page;
        assert_eq!((page.width(), page.height()), (384, 100));
        assert_eq!(page.black_count(), 384 * 100);
    }

    #[test]
    fn transparent_is_white() {
        let img = RgbaImage::from_pixel(384, 4, Rgba([0, 0, 0, 0]));
        let page = page_from_image(
            &DynamicImage::ImageRgba8(img.clone()),
            Dither::FloydSteinberg,
        );
        assert_eq!(page.page.black_count(), 0);
        assert_eq!(
            raw_page_from_image(&DynamicImage::ImageRgba8(img))
                .unwrap()
                .black_count(),
            0
        );
    }

    #[test]
    fn grey_dithers_to_about_half_black() {
        let img = RgbaImage::from_pixel(384, 100, Rgba([128, 128, 128, 255]));
        let page = page_from_image(&DynamicImage::ImageRgba8(img), Dither::FloydSteinberg).page;
        let share = page.black_count() as f64 / page.pixel_count() as f64;
        assert!((0.45..0.55).contains(&share), "{share}");
    }

    #[test]
    fn tall_images_are_cut_at_10000_rows() {
        let img = GrayImage::from_pixel(10, 10_050, Luma([255]));
        let out = page_from_image(&DynamicImage::ImageLuma8(img), Dither::Threshold);
        assert!(out.truncated);
        assert_eq!(out.page.height(), 10_000);
    }

    #[test]
    fn raw_refuses_grey() {
        let mut img = RgbaImage::from_pixel(5, 5, Rgba([255, 255, 255, 255]));
        img.put_pixel(3, 2, Rgba([10, 10, 10, 255]));
        assert!(matches!(
            raw_page_from_image(&DynamicImage::ImageRgba8(img)),
            Err(ImageError::NotBlackAndWhite { x: 3, y: 2 })
        ));
    }

    #[test]
    fn format_is_sniffed_not_trusted() {
        assert!(matches!(
            decode_image(b"hello, I am not a picture"),
            Err(ImageError::UnsupportedFormat(_))
        ));
        let img = RgbaImage::from_pixel(3, 3, Rgba([0, 0, 0, 255]));
        let mut jpeg = Vec::new();
        DynamicImage::ImageRgba8(img.clone())
            .to_rgb8()
            .write_to(&mut Cursor::new(&mut jpeg), ImageFormat::Jpeg)
            .unwrap();
        assert_eq!(decode_image(&jpeg).unwrap().width(), 3);
        let mut gif = Vec::new();
        DynamicImage::ImageRgba8(img)
            .write_to(&mut Cursor::new(&mut gif), ImageFormat::Gif)
            .unwrap();
        assert_eq!(decode_image(&gif).unwrap().height(), 3);
        // A truncated PNG is a decode error, not a panic.
        let png = png_of(&RgbaImage::from_pixel(20, 20, Rgba([1, 2, 3, 255])));
        assert!(matches!(
            decode_image(&png[..png.len() / 2]),
            Err(ImageError::Decode { .. })
        ));
    }

    #[test]
    fn png_round_trip_is_exact() {
        let page = Page::from_fn(13, 7, |x, y| (x * y) % 3 == 1).unwrap();
        let back = raw_page_from_image(&decode_image(&page_to_png(&page)).unwrap()).unwrap();
        assert_eq!(back, page);
    }
}
