//! The printer payload of a DeviceCommand (PROTOCOL §6): command header,
//! image blocks, and the run-length code the printer reads.
//!
//! Encoding takes pages of any width exactly as given: P = width × height
//! pixels, n = P / 8 rounded down, runs over all P pixels. Scaling and
//! padding to 384 happen earlier, when an image becomes a page
//! ([`crate::raster`]). Decoding checks every length and refuses anything
//! the encoder would not have produced.

use std::fmt;

use crate::raster::{MAX_PIXELS, PRINTER_WIDTH, Page};

/// The print commands of PROTOCOL §6, each with the number of images it
/// carries. (0xF000, firmware update, is never sent and not listed.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CommandKind {
    SetDeliveryAndPrint,
    SetDelivery,
    SetDeliveryAndPrintNoFace,
    SetDeliveryNoFace,
    SetPersonalityWithMessage,
    SetPersonality,
    SetQuip,
}

impl CommandKind {
    pub const ALL: [CommandKind; 7] = [
        CommandKind::SetDeliveryAndPrint,
        CommandKind::SetDelivery,
        CommandKind::SetDeliveryAndPrintNoFace,
        CommandKind::SetDeliveryNoFace,
        CommandKind::SetPersonalityWithMessage,
        CommandKind::SetPersonality,
        CommandKind::SetQuip,
    ];

    /// The u16 in the payload header.
    pub fn code(self) -> u16 {
        match self {
            CommandKind::SetDeliveryAndPrint => 0x0001,
            CommandKind::SetDelivery => 0x0002,
            CommandKind::SetDeliveryAndPrintNoFace => 0x0011,
            CommandKind::SetDeliveryNoFace => 0x0012,
            CommandKind::SetPersonalityWithMessage => 0x0101,
            CommandKind::SetPersonality => 0x0102,
            CommandKind::SetQuip => 0x0202,
        }
    }

    pub fn from_code(code: u16) -> Option<CommandKind> {
        Self::ALL.into_iter().find(|k| k.code() == code)
    }

    /// The command's name as in PROTOCOL §6, e.g. `set_delivery_and_print`.
    pub fn name(self) -> &'static str {
        match self {
            CommandKind::SetDeliveryAndPrint => "set_delivery_and_print",
            CommandKind::SetDelivery => "set_delivery",
            CommandKind::SetDeliveryAndPrintNoFace => "set_delivery_and_print_no_face",
            CommandKind::SetDeliveryNoFace => "set_delivery_no_face",
            CommandKind::SetPersonalityWithMessage => "set_personality_with_message",
            CommandKind::SetPersonality => "set_personality",
            CommandKind::SetQuip => "set_quip",
        }
    }

    pub fn from_name(name: &str) -> Option<CommandKind> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// How many images the command carries.
    pub fn image_count(self) -> usize {
        match self {
            CommandKind::SetPersonalityWithMessage => 5,
            CommandKind::SetPersonality => 4,
            CommandKind::SetQuip => 3,
            _ => 1,
        }
    }

    /// What the images are, in order, for messages to people.
    pub fn image_roles(self) -> &'static [&'static str] {
        match self {
            CommandKind::SetPersonalityWithMessage => &[
                "face",
                "nothing to print",
                "cannot see bridge",
                "cannot see internet",
                "message",
            ],
            CommandKind::SetPersonality => &[
                "face",
                "nothing to print",
                "cannot see bridge",
                "cannot see internet",
            ],
            CommandKind::SetQuip => &["quip 1", "quip 2", "quip 3"],
            _ => &["message"],
        }
    }
}

impl fmt::Display for CommandKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a payload cannot be built or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    #[error("{command} takes {expected} image(s) ({roles}), not {given}")]
    ImageCount {
        command: CommandKind,
        expected: usize,
        given: usize,
        roles: String,
    },
    #[error("payload is truncated: {0}")]
    Truncated(String),
    #[error("device type is {0}, but a Little Printer payload has device type 1")]
    DeviceType(u8),
    #[error("the reserved byte after the device type is {0}, should be 0")]
    Reserved(u8),
    #[error("command 0x{0:04x} is a firmware update, which this server never sends or reads")]
    Firmware(u16),
    #[error("unknown command 0x{0:04x}")]
    UnknownCommand(u16),
    #[error("the CRC field is {0:#x}; it is unused and always 0")]
    Crc(u32),
    #[error("length field says {declared} bytes follow the header, but {actual} do")]
    Length { declared: u32, actual: usize },
    #[error("image {image}: {problem}")]
    Image { image: usize, problem: String },
}

/// The setup sent before every image: max speed, acceleration, peak current,
/// max intensity.
const PRINTER_SETUP: [u8; 13] = [
    0x1d, 0x73, 0x03, 0xe8, 0x1d, 0x61, 0xd0, 0x1d, 0x2f, 0x0f, 0x1d, 0x44, 0x80,
];
const HEADER_LEN: usize = 16;
/// u32 L, u8 0, u8 0, u32 21, 13 setup bytes, 8 bitmap bytes.
const BLOCK_PREFIX_LEN: usize = 4 + 1 + 1 + 4 + 13 + 8;
/// u8 compression type, u32 length of the run bytes.
const RLE_PREFIX_LEN: usize = 5;

/// The chunks a long run is cut into, largest first, with their codes.
const CHUNKS: [(usize, u8); 5] = [
    (1536, 0xff),
    (1152, 0xfe),
    (768, 0xfd),
    (384, 0xfc),
    (251, 0xfb),
];

/// Appends one run: 0–251 as one byte; longer runs cut into the largest
/// chunks that fit, an empty run of the other colour (`00`) between chunks,
/// and a remainder r > 0 written as `00 r`.
#[inline]
fn push_run(out: &mut Vec<u8>, mut n: usize) {
    if n <= 251 {
        out.push(n as u8);
        return;
    }
    let mut first = true;
    while n > 251 {
        let &(size, code) = CHUNKS
            .iter()
            .find(|(size, _)| n >= *size)
            .expect("n > 251 fits a chunk");
        if !first {
            out.push(0);
        }
        out.push(code);
        n -= size;
        first = false;
    }
    if n > 0 {
        out.push(0);
        out.push(n as u8);
    }
}

/// Run bytes for a list of run lengths (alternating white, black, …,
/// starting with white), as [`encode_runs`] writes them.
pub fn encode_run_lengths(lengths: &[usize]) -> Vec<u8> {
    let mut out = Vec::new();
    for &n in lengths {
        push_run(&mut out, n);
    }
    out
}

/// Appends the run bytes of a page: rotated 180° (last pixel first), runs
/// alternating white, black, …, starting with white (an empty white run
/// when the first pixel is black).
///
/// The scan walks the flat bit sequence from the top down, a word at a
/// time: `x` holds the unread bits of the current word aligned to bit 63,
/// flipped so that set bits mark the colour *other* than the current run's;
/// its leading zeros are the rest of the run within this word.
fn push_runs(out: &mut Vec<u8>, page: &Page) {
    let words = page.words();
    let total = page.pixel_count();
    let mut index = (total - 1) / 64;
    let mut avail = (total - 1) % 64 + 1; // unread bits in words[index]
    let mut black = false;
    let mut x = words[index] << (64 - avail);
    let mut run = 0usize;
    loop {
        let lz = x.leading_zeros() as usize;
        if lz >= avail {
            // The rest of this word continues the run.
            run += avail;
            if index == 0 {
                push_run(out, run);
                return;
            }
            index -= 1;
            avail = 64;
            x = if black { !words[index] } else { words[index] };
            continue;
        }
        run += lz;
        push_run(out, run);
        run = 0;
        // The next run has the other colour: drop what was read and flip.
        // (lz < avail <= 64, so the shift is in range.)
        x = !(x << lz);
        avail -= lz;
        black = !black;
    }
}

/// The run bytes of a page (see [`push_runs`]).
pub fn encode_runs(page: &Page) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    push_runs(&mut out, page);
    out
}

/// The RLE block of a page: compression type 1, the length of the run
/// bytes, the run bytes.
pub fn rle_block(page: &Page) -> Vec<u8> {
    let runs = encode_runs(page);
    let mut out = Vec::with_capacity(RLE_PREFIX_LEN + runs.len());
    out.push(0x01);
    out.extend_from_slice(&(runs.len() as u32).to_le_bytes());
    out.extend_from_slice(&runs);
    out
}

/// Appends the image block of a page. The runs are written in place and the
/// two length fields filled in afterwards, so nothing is copied.
fn push_image_block(out: &mut Vec<u8>, page: &Page) {
    let start = out.len();
    let n = page.pixel_count() / 8;
    out.extend_from_slice(&[0; 4]); // L, filled in below
    out.push(0);
    out.push(0);
    out.extend_from_slice(&21u32.to_le_bytes());
    out.extend_from_slice(&PRINTER_SETUP);
    out.extend_from_slice(&[
        0x1b,
        0x2a,
        (n & 0xff) as u8,
        ((n >> 8) & 0xff) as u8,
        (n >> 16) as u8,
        0x00,
        0x00,
        0x30,
    ]);
    out.push(0x01);
    out.extend_from_slice(&[0; 4]); // length of the run bytes, filled in below
    let runs_start = out.len();
    push_runs(out, page);
    let runs_len = out.len() - runs_start;
    let block_len = 26 + RLE_PREFIX_LEN + runs_len + 1;
    out[start..start + 4].copy_from_slice(&(block_len as u32).to_le_bytes());
    out[runs_start - 4..runs_start].copy_from_slice(&(runs_len as u32).to_le_bytes());
}

/// The image block of one page (PROTOCOL §6).
pub fn image_block(page: &Page) -> Vec<u8> {
    let mut out = Vec::new();
    push_image_block(&mut out, page);
    out
}

/// The whole binary payload of a print command. `file_id` is the command id.
pub fn encode_payload(
    command: CommandKind,
    file_id: u32,
    pages: &[Page],
) -> Result<Vec<u8>, PayloadError> {
    if pages.len() != command.image_count() {
        return Err(PayloadError::ImageCount {
            command,
            expected: command.image_count(),
            given: pages.len(),
            roles: command.image_roles().join(", "),
        });
    }
    let mut out = Vec::with_capacity(4096);
    out.push(0x01); // device type: Little Printer
    out.push(0x00);
    out.extend_from_slice(&command.code().to_le_bytes());
    out.extend_from_slice(&file_id.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes()); // CRC, unused
    out.extend_from_slice(&[0; 4]); // length of the rest, filled in below
    for page in pages {
        push_image_block(&mut out, page);
    }
    let rest = (out.len() - HEADER_LEN) as u32;
    out[12..16].copy_from_slice(&rest.to_le_bytes());
    Ok(out)
}

/// A payload read back: what the printer would be told to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedPayload {
    pub command: CommandKind,
    pub file_id: u32,
    pub pages: Vec<Page>,
}

/// Reads a payload back into its command, file id and pages. Each image's
/// pixels are laid out `width` wide (384 for a real printer); an image whose
/// pixel count is not a multiple of `width` comes back as a single row.
/// Every length is checked; allocation is bounded by [`MAX_PIXELS`] per
/// image and by the input size.
pub fn decode_payload(bytes: &[u8], width: u32) -> Result<DecodedPayload, PayloadError> {
    if bytes.len() < HEADER_LEN {
        return Err(PayloadError::Truncated(format!(
            "{} bytes, shorter than the 16-byte header",
            bytes.len()
        )));
    }
    if bytes[0] != 1 {
        return Err(PayloadError::DeviceType(bytes[0]));
    }
    if bytes[1] != 0 {
        return Err(PayloadError::Reserved(bytes[1]));
    }
    let code = u16::from_le_bytes([bytes[2], bytes[3]]);
    let command = match CommandKind::from_code(code) {
        Some(c) => c,
        None if code == 0xf000 => return Err(PayloadError::Firmware(code)),
        None => return Err(PayloadError::UnknownCommand(code)),
    };
    let file_id = le32(&bytes[4..8]);
    let crc = le32(&bytes[8..12]);
    if crc != 0 {
        return Err(PayloadError::Crc(crc));
    }
    let declared = le32(&bytes[12..16]);
    let mut rest = &bytes[HEADER_LEN..];
    if declared as usize != rest.len() {
        return Err(PayloadError::Length {
            declared,
            actual: rest.len(),
        });
    }
    let mut pages = Vec::new();
    while !rest.is_empty() {
        let image = pages.len() + 1;
        let err = |problem: String| PayloadError::Image { image, problem };
        if pages.len() == command.image_count() {
            return Err(err(format!(
                "{command} carries {} image(s), but more data follows",
                command.image_count()
            )));
        }
        let (page, used) = decode_image_block(rest, width).map_err(err)?;
        pages.push(page);
        rest = &rest[used..];
    }
    if pages.len() != command.image_count() {
        return Err(PayloadError::ImageCount {
            command,
            expected: command.image_count(),
            given: pages.len(),
            roles: command.image_roles().join(", "),
        });
    }
    Ok(DecodedPayload {
        command,
        file_id,
        pages,
    })
}

/// One image block at the start of `b`: the page and the bytes it took.
fn decode_image_block(b: &[u8], width: u32) -> Result<(Page, usize), String> {
    if b.len() < BLOCK_PREFIX_LEN + RLE_PREFIX_LEN {
        return Err(format!(
            "block is truncated: {} bytes, the fixed part alone is {}",
            b.len(),
            BLOCK_PREFIX_LEN + RLE_PREFIX_LEN
        ));
    }
    let block_len = le32(&b[0..4]) as usize;
    if b[4] != 0 || b[5] != 0 {
        return Err(format!(
            "bytes 4 and 5 of the block are {:02x} {:02x}, should be 00 00",
            b[4], b[5]
        ));
    }
    let setup_len = le32(&b[6..10]);
    if setup_len != 21 {
        return Err(format!("setup length is {setup_len}, should be 21"));
    }
    if b[10..23] != PRINTER_SETUP {
        return Err(format!(
            "printer setup bytes are {}, should be {}",
            hex(&b[10..23]),
            hex(&PRINTER_SETUP)
        ));
    }
    let esc = &b[23..31];
    if esc[0] != 0x1b || esc[1] != 0x2a || esc[5] != 0 || esc[6] != 0 || esc[7] != 0x30 {
        return Err(format!(
            "bitmap command is {}, should be 1b 2a n1 n2 n3 00 00 30",
            hex(esc)
        ));
    }
    let n = usize::from(esc[2]) | usize::from(esc[3]) << 8 | usize::from(esc[4]) << 16;
    let rle = &b[BLOCK_PREFIX_LEN..];
    if rle[0] != 0x01 {
        return Err(format!(
            "compression type is {}, only 1 (run lengths) exists",
            rle[0]
        ));
    }
    let runs_len = le32(&rle[1..5]) as usize;
    let available = rle.len() - RLE_PREFIX_LEN;
    if runs_len > available {
        return Err(format!(
            "run bytes are truncated: {runs_len} declared, {available} present"
        ));
    }
    let expected_block_len = 26 + RLE_PREFIX_LEN + runs_len + 1;
    if block_len != expected_block_len {
        return Err(format!(
            "block length field is {block_len}, should be {expected_block_len} (26 + RLE block + 1)"
        ));
    }
    let runs = &rle[RLE_PREFIX_LEN..RLE_PREFIX_LEN + runs_len];
    let page = decode_runs(runs, n, width)?;
    Ok((page, BLOCK_PREFIX_LEN + RLE_PREFIX_LEN + runs_len))
}

#[inline]
fn run_length(byte: u8) -> usize {
    match byte {
        0xfc => 384,
        0xfd => 768,
        0xfe => 1152,
        0xff => 1536,
        b => b as usize,
    }
}

/// Turns run bytes back into a page, given the bitmap byte count `n` from
/// the image block (P / 8 rounded down).
pub fn decode_runs(runs: &[u8], n: usize, width: u32) -> Result<Page, String> {
    // First pass: the pixel count, bounded before anything is allocated.
    let mut total = 0usize;
    for &b in runs {
        total += run_length(b);
        if total > MAX_PIXELS {
            return Err(format!(
                "runs add up to more than {MAX_PIXELS} pixels (384 × 10,000)"
            ));
        }
    }
    if total == 0 {
        return Err("the image has no pixels".into());
    }
    if total / 8 != n {
        return Err(format!(
            "runs add up to {total} pixels, but the bitmap size says {n} bytes ({}–{} pixels)",
            n * 8,
            n * 8 + 7
        ));
    }
    // Second pass: fill black runs, from the end of the page backwards.
    let mut words = vec![0u64; total.div_ceil(64)];
    let mut pos = total;
    let mut black = false;
    for &b in runs {
        let len = run_length(b);
        if black {
            fill_ones(&mut words, pos - len, pos);
        }
        pos -= len;
        black = !black;
    }
    let (w, h) = if width > 0 && total.is_multiple_of(width as usize) {
        (width, (total / width as usize) as u32)
    } else {
        (total as u32, 1)
    };
    Ok(Page::from_words(w, h, words))
}

/// Sets bits [lo, hi).
fn fill_ones(words: &mut [u64], lo: usize, hi: usize) {
    if lo >= hi {
        return;
    }
    let (first, last) = (lo / 64, (hi - 1) / 64);
    let lo_mask = !0u64 << (lo % 64);
    let hi_mask = !0u64 >> (63 - (hi - 1) % 64);
    if first == last {
        words[first] |= lo_mask & hi_mask;
    } else {
        words[first] |= lo_mask;
        for w in &mut words[first + 1..last] {
            *w = !0;
        }
        words[last] |= hi_mask;
    }
}

fn le32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The width a decoded page is laid out at unless told otherwise.
pub const DEFAULT_DECODE_WIDTH: u32 = PRINTER_WIDTH;

#[cfg(test)]
mod tests {
    use super::*;

    use super::encode_run_lengths as runs_of;

    #[test]
    fn protocol_examples() {
        assert_eq!(runs_of(&[2000]), vec![0xff, 0x00, 0xfc, 0x00, 0x50]);
        assert_eq!(runs_of(&[0, 5, 300]), vec![0x00, 0x05, 0xfb, 0x00, 0x31]);
        assert_eq!(runs_of(&[251]), vec![0xfb]);
        assert_eq!(runs_of(&[252]), vec![0xfb, 0x00, 0x01]);
        assert_eq!(runs_of(&[384]), vec![0xfc]);
        assert_eq!(runs_of(&[635]), vec![0xfc, 0x00, 0xfb]);
    }

    #[test]
    fn first_pixel_black_starts_with_an_empty_white_run() {
        // A 384-wide page whose last pixel (the first the printer sees) is
        // black: after rotation the run list starts with a 0 white run.
        let mut p = Page::white(384, 2).unwrap();
        p.set_black(383, 1, true);
        // Runs: white 0, black 1, white 767 = 384 + 251 + 132.
        assert_eq!(
            encode_runs(&p),
            vec![0x00, 0x01, 0xfc, 0x00, 0xfb, 0x00, 0x84]
        );
    }

    #[test]
    fn round_trips_every_run_length_near_chunk_boundaries() {
        for len in (0..1600).chain([2000, 3072, 3073, 10_000, 100_000]) {
            let width = 384usize;
            let total: usize = len + 2; // one white pixel, the run, one white pixel
            let height = total.div_ceil(width);
            let page = Page::from_fn(width as u32, height as u32, |x, y| {
                let i = y as usize * width + x as usize;
                i >= 1 && i < 1 + len
            })
            .unwrap();
            let runs = encode_runs(&page);
            let back = decode_runs(&runs, page.pixel_count() / 8, 384).unwrap();
            assert_eq!(back, page, "run of {len}");
        }
    }

    #[test]
    fn lengths_are_checked_when_decoding() {
        let page = Page::white(384, 1).unwrap();
        let good = encode_payload(CommandKind::SetDeliveryAndPrint, 5, &[page]).unwrap();
        assert!(decode_payload(&good, 384).is_ok());
        let mut extra = good.clone();
        extra.push(0);
        assert!(matches!(
            decode_payload(&extra, 384),
            Err(PayloadError::Length { .. })
        ));
        for cut in 0..good.len() {
            assert!(decode_payload(&good[..cut], 384).is_err(), "cut at {cut}");
        }
    }
}
