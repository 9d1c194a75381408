//! From content to a page: a message (HTML, text or a picture) and its
//! envelope (sender, time) go through the message template to HTML, Blitz
//! turns the HTML into pixels at 384 px wide with the embedded fonts, and the
//! raster code turns pixels into the 1-bit [`Page`] the printer prints.
//!
//! [`Renderer`] is the one entry point: cheap to share (`Arc`), it keeps the
//! font context and HTTP client across renders, runs renders off the async
//! runtime with bounded concurrency and a time limit, and answers with an
//! error a sender can read, never a hang.
//!
//! * [`template`]: the message template and the [`Envelope`].
//! * [`fonts`]: the embedded DejaVu and Noto Emoji fonts and those of a
//!   `--fonts` folder, registered for HTML and SVG.
//! * [`net`]: what a render may load (`data:` URIs, public pictures).
//! * `html`: Blitz, the fixes for its quirks, pixels to a page.

pub mod fonts;
mod html;
pub mod net;
pub mod template;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use image::{DynamicImage, ImageFormat};

pub use fonts::Fonts;
pub use net::FetchPolicy;
pub use template::{Envelope, MessageFont};

use crate::raster::{Dither, ImageError, MAX_HEIGHT, PRINTER_WIDTH, Page, decode_image};

/// What a message says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// An HTML fragment or document, shown as the message body.
    Html(String),
    /// Plain text: escaped, line breaks kept, long words wrapped.
    Text(String),
    /// A picture (PNG, JPEG, GIF or WebP, recognised by its bytes), full width.
    Image(Vec<u8>),
}

/// A rendered page, and whether it was cut at the row limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub page: Page,
    /// The document was taller than the row limit and was cut.
    pub truncated: bool,
}

/// Why a message could not become a page. The messages are for the sender.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("the HTML could not be rendered: {0}")]
    Html(String),
    #[error("rendering took longer than {} s", .0.as_secs_f64())]
    TimedOut(Duration),
    #[error("the image is not a PNG, JPEG, GIF or WebP ({0})")]
    NotAnImage(String),
    #[error("the image could not be read: {0}")]
    Image(String),
    #[error("the message template is broken: {0}")]
    Template(String),
    #[error("the server is shutting down; try again")]
    ShuttingDown,
    #[error("the server is busy rendering other messages; try again in a minute")]
    Busy,
}

impl From<ImageError> for RenderError {
    fn from(e: ImageError) -> Self {
        match e {
            ImageError::UnsupportedFormat(what) => {
                RenderError::NotAnImage(format!("the data looks like {what}"))
            }
            other => RenderError::Image(other.to_string()),
        }
    }
}

/// How renders are done.
#[derive(Debug, Clone)]
pub struct RenderConfig {
    /// Which remote pictures in HTML may be fetched.
    pub fetch_images: FetchPolicy,
    /// Renders running at once (default: one per core).
    pub concurrency: usize,
    /// Longest a render may take before the sender gets an error.
    pub time_limit: Duration,
    /// Rows after which a page is cut (at most 10,000).
    pub max_rows: u32,
    /// Grey to black and white.
    pub dither: Dither,
    /// A folder whose `message.html` replaces the embedded template.
    pub templates_dir: Option<PathBuf>,
    /// A folder of TTF/OTF/TTC files added to the embedded fonts.
    pub fonts_dir: Option<PathBuf>,
}

impl Default for RenderConfig {
    fn default() -> Self {
        RenderConfig {
            fetch_images: FetchPolicy::Public,
            concurrency: std::thread::available_parallelism().map_or(1, |n| n.get()),
            time_limit: Duration::from_secs(10),
            max_rows: MAX_HEIGHT,
            dither: Dither::FloydSteinberg,
            templates_dir: None,
            fonts_dir: None,
        }
    }
}

/// A typeface a message may be printed in, for the compose page's choice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FontFamily {
    /// The choice, as an envelope takes it (`sans`, `serif`, `mono`, or
    /// the family's name).
    pub font: MessageFont,
    /// The family's name, e.g. `DejaVu Serif`.
    pub name: String,
}

/// Turns messages into pages. Cheap to clone, `Send + Sync`.
#[derive(Clone)]
pub struct Renderer {
    inner: Arc<Inner>,
}

struct Inner {
    config: RenderConfig,
    /// Loaded on first use: a server that only relays bridges never
    /// touches the fonts (about 7 MB of the binary) or the TLS roots.
    fonts: std::sync::OnceLock<Arc<Fonts>>,
    agent: std::sync::OnceLock<Option<ureq::Agent>>,
    /// Renders running (one per core by default).
    permits: Arc<tokio::sync::Semaphore>,
    /// Renders let in at once, running or waiting (with their bodies).
    admissions: Arc<tokio::sync::Semaphore>,
    /// Renders that overran and were left to finish on their own.
    abandoned: std::sync::atomic::AtomicUsize,
}

/// Longest wait for pictures, whatever the time limit.
const FETCH_WAIT: Duration = Duration::from_secs(6);

impl Renderer {
    /// A renderer with the embedded fonts and those of `config.fonts_dir`.
    /// The fonts are read on first use (the first render, the compose
    /// page's font list); [`Renderer::load_fonts`] reads them now. A fonts
    /// folder or file that cannot be used is logged as a warning then (and
    /// kept in [`Renderer::font_warnings`]); rendering goes on without it.
    pub fn new(config: RenderConfig) -> Renderer {
        let permits = Arc::new(tokio::sync::Semaphore::new(config.concurrency.max(1)));
        let admissions = Arc::new(tokio::sync::Semaphore::new(
            (config.concurrency.max(1) * 4).max(4),
        ));
        Renderer {
            inner: Arc::new(Inner {
                config,
                fonts: std::sync::OnceLock::new(),
                agent: std::sync::OnceLock::new(),
                permits,
                admissions,
                abandoned: std::sync::atomic::AtomicUsize::new(0),
            }),
        }
    }

    pub fn config(&self) -> &RenderConfig {
        &self.inner.config
    }

    /// The fonts, read (and their warnings logged) the first time.
    pub fn load_fonts(&self) -> &Arc<Fonts> {
        self.inner.fonts.get_or_init(|| {
            let fonts = Fonts::load(self.inner.config.fonts_dir.as_deref());
            for warning in fonts.warnings() {
                tracing::warn!("{warning}");
            }
            if !fonts.added_families().is_empty() {
                tracing::info!(families = ?fonts.added_families(), "fonts added");
            }
            fonts
        })
    }

    /// The client for pictures the HTML names, made the first time.
    fn agent(&self) -> Option<ureq::Agent> {
        self.inner
            .agent
            .get_or_init(|| net::http_agent(self.inner.config.fetch_images))
            .clone()
    }

    /// The typefaces a message may choose: DejaVu Sans (`sans`, the
    /// default), DejaVu Serif (`serif`), DejaVu Sans Mono (`mono`), then
    /// the families added with `--fonts`, by name.
    pub fn font_families(&self) -> Vec<FontFamily> {
        let embedded = [
            (MessageFont::Sans, "DejaVu Sans"),
            (MessageFont::Serif, "DejaVu Serif"),
            (MessageFont::Mono, "DejaVu Sans Mono"),
        ]
        .map(|(font, name)| FontFamily {
            font,
            name: name.into(),
        });
        // Without a fonts folder there is nothing to add, and nothing to
        // load on the caller's (often async) thread.
        let added: &[String] = match self.inner.config.fonts_dir {
            Some(_) => self.load_fonts().added_families(),
            None => &[],
        };
        let added = added.iter().map(|name| FontFamily {
            font: MessageFont::Family(name.clone()),
            name: name.clone(),
        });
        embedded.into_iter().chain(added).collect()
    }

    /// What could not be loaded from the fonts folder, naming each file.
    pub fn font_warnings(&self) -> &[String] {
        self.load_fonts().warnings()
    }

    /// The CSS `font-family` of a message body in `font`: an unknown
    /// family is sans.
    fn font_css(&self, font: &MessageFont) -> String {
        match font {
            MessageFont::Sans => "sans-serif".into(),
            MessageFont::Serif => "serif".into(),
            MessageFont::Mono => "monospace".into(),
            MessageFont::Family(name) => {
                let added = self.load_fonts().added_families();
                match added.iter().find(|a| a.eq_ignore_ascii_case(name.trim())) {
                    Some(family) => format!("{}, sans-serif", template::css_family(family)),
                    None => match MessageFont::parse(name) {
                        MessageFont::Family(_) => "sans-serif".into(),
                        builtin => self.font_css(&builtin),
                    },
                }
            }
        }
    }

    /// HTML to a page, on this thread. `bare` renders the document as given;
    /// otherwise it goes through the message template with `envelope`.
    pub fn render_html_blocking(
        &self,
        html: &str,
        bare: bool,
        envelope: &Envelope,
    ) -> Result<Rendered, RenderError> {
        if bare {
            self.render_document(html)
        } else {
            self.render_message_blocking(&Content::Html(html.to_owned()), envelope)
        }
    }

    /// A whole HTML document to a page, as given (no template).
    pub fn render_document(&self, html: &str) -> Result<Rendered, RenderError> {
        self.render_document_with(html, self.inner.config.dither)
    }

    /// [`Renderer::render_document`] with its own way of turning grey into
    /// black and white.
    pub fn render_document_with(
        &self,
        html: &str,
        dither: Dither,
    ) -> Result<Rendered, RenderError> {
        let started = Instant::now();
        let wait = FETCH_WAIT.min(self.inner.config.time_limit / 2);
        let job = html::RenderJob {
            html,
            dither,
            agent: self.agent(),
            fetch_deadline: started + wait,
            max_rows: self.inner.config.max_rows,
            fonts: self.load_fonts(),
        };
        // Blitz is young: a panic inside it is an error for this message,
        // not a crash of the server.
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| html::render(job))).unwrap_or_else(
            |panic| {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "the renderer failed".into());
                Err(RenderError::Html(what))
            },
        )
    }

    /// A message through the template to a page, on this thread.
    pub fn render_message_blocking(
        &self,
        content: &Content,
        envelope: &Envelope,
    ) -> Result<Rendered, RenderError> {
        let dir = self.inner.config.templates_dir.as_deref();
        let family = self.font_css(&envelope.font);
        let src;
        let body = match content {
            Content::Html(h) => template::Body::Html(h),
            Content::Text(t) => template::Body::Text(t),
            Content::Image(bytes) => {
                src = picture_data_uri(bytes)?;
                template::Body::Image(&src)
            }
        };
        let html = template::render_message_html(body, envelope, &family, dir)?;
        self.render_document_with(&html, envelope.dither.unwrap_or(self.inner.config.dither))
    }

    /// Takes a place among the renders let in at once (four per render
    /// thread), waiting at most the time limit. Take it before reading a
    /// big request body: at most that many bodies are held in memory.
    pub async fn admit(&self) -> Result<Admission, RenderError> {
        let limit = self.inner.config.time_limit;
        match tokio::time::timeout(limit, Arc::clone(&self.inner.admissions).acquire_owned()).await
        {
            Ok(Ok(permit)) => Ok(Admission { _permit: permit }),
            Ok(Err(_)) => Err(RenderError::ShuttingDown),
            Err(_) => Err(RenderError::Busy),
        }
    }

    /// A message to a page, off the async runtime: at most `concurrency`
    /// renders at once, each within the time limit.
    ///
    /// Takes the content by value: a picture may be megabytes, and is not
    /// copied on its way to the render thread.
    pub async fn render_message(
        &self,
        content: Content,
        envelope: Envelope,
    ) -> Result<Rendered, RenderError> {
        let admission = self.admit().await?;
        self.render_message_admitted(admission, content, envelope)
            .await
    }

    /// [`Renderer::render_message`] with a place already taken.
    pub async fn render_message_admitted(
        &self,
        admission: Admission,
        content: Content,
        envelope: Envelope,
    ) -> Result<Rendered, RenderError> {
        let this = self.clone();
        self.run_limited(admission, move || {
            this.render_message_blocking(&content, &envelope)
        })
        .await
    }

    /// Runs a blocking render on a render thread within the time limit.
    ///
    /// A render that overruns gets an error for its sender, and its slot is
    /// given back at once so others can render; its thread is abandoned —
    /// Blitz can't be interrupted — and ends by itself when the render
    /// finishes (its result is dropped). The blocking pool starts a new
    /// thread for the next render, so the pool is replenished. At most
    /// `concurrency` renders are abandoned at a time: past that, an overrun
    /// keeps its slot until it finishes, so a flood of hostile documents
    /// slows rendering down instead of piling up threads.
    async fn run_limited(
        &self,
        admission: Admission,
        work: impl FnOnce() -> Result<Rendered, RenderError> + Send + 'static,
    ) -> Result<Rendered, RenderError> {
        let limit = self.inner.config.time_limit;
        let deadline = tokio::time::Instant::now() + limit;
        let permit =
            tokio::time::timeout_at(deadline, Arc::clone(&self.inner.permits).acquire_owned())
                .await
                .map_err(|_| RenderError::TimedOut(limit))?
                .map_err(|_| RenderError::ShuttingDown)?;
        // The slot is shared with the render thread: whichever side is done
        // with it last lets it go.
        let slot = Arc::new(std::sync::Mutex::new(Some(permit)));
        let abandoned = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (tx, rx) = tokio::sync::oneshot::channel();
        let inner = Arc::clone(&self.inner);
        let (thread_slot, thread_abandoned) = (Arc::clone(&slot), Arc::clone(&abandoned));
        tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work))
                .unwrap_or_else(|_| Err(RenderError::Html("the renderer failed".into())));
            crate::metrics::global()
                .render_seconds
                .observe(started.elapsed().as_secs_f64());
            thread_slot.lock().unwrap_or_else(|e| e.into_inner()).take();
            if thread_abandoned.load(std::sync::atomic::Ordering::Acquire) {
                inner
                    .abandoned
                    .fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
                tracing::info!("an abandoned render finished; its thread ends");
            }
            let _ = tx.send(out);
        });
        let result = tokio::time::timeout_at(deadline, rx).await;
        drop(admission);
        match result {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(RenderError::Html("the renderer failed".into())),
            Err(_) => {
                let max = self.inner.config.concurrency.max(1);
                let taken = self.inner.abandoned.fetch_update(
                    std::sync::atomic::Ordering::AcqRel,
                    std::sync::atomic::Ordering::Acquire,
                    |n| (n < max).then_some(n + 1),
                );
                if taken.is_ok() {
                    abandoned.store(true, std::sync::atomic::Ordering::Release);
                    slot.lock().unwrap_or_else(|e| e.into_inner()).take();
                    tracing::warn!(
                        "a render ran over {} s: its sender gets an error, its slot goes to others, its thread is left to finish",
                        limit.as_secs_f64()
                    );
                } else {
                    tracing::warn!(
                        "a render ran over {} s while {max} others are still running over; it keeps its slot until it ends",
                        limit.as_secs_f64()
                    );
                }
                Err(RenderError::TimedOut(limit))
            }
        }
    }

    /// Free render slots, for tests and stats.
    pub fn available_slots(&self) -> usize {
        self.inner.permits.available_permits()
    }

    /// Renders that overran and are still running, abandoned.
    pub fn abandoned_renders(&self) -> usize {
        self.inner
            .abandoned
            .load(std::sync::atomic::Ordering::Acquire)
    }
}

/// A place among the renders let in at once ([`Renderer::admit`]); given
/// back when dropped.
#[derive(Debug)]
pub struct Admission {
    _permit: tokio::sync::OwnedSemaphorePermit,
}

/// A picture scaled to at most 384 wide, as a small grey PNG `data:` URI:
/// Blitz never sees the camera's megapixels.
fn picture_data_uri(bytes: &[u8]) -> Result<String, RenderError> {
    let image = decode_image(bytes)?;
    let small = scale_to_width(&image);
    let mut png = Vec::new();
    small
        .write_to(&mut std::io::Cursor::new(&mut png), ImageFormat::Png)
        .map_err(|e| RenderError::Image(e.to_string()))?;
    Ok(format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(&png)
    ))
}

/// Grey (over white), at most 384 wide; narrower pictures are scaled up by
/// the template's `width: 100%` like a browser would.
fn scale_to_width(image: &DynamicImage) -> DynamicImage {
    DynamicImage::ImageLuma8(crate::raster::convert::scale_down_to(
        crate::raster::convert::grey_over_white(image),
        PRINTER_WIDTH,
        MAX_HEIGHT + 1,
    ))
}
