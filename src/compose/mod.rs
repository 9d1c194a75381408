//! TEMPORARY STUB (replaced by the render branch).
use crate::raster::Page;
#[derive(Debug, Clone)]
pub enum Content {
    Html(String),
    Text(String),
    Image(Vec<u8>),
}
pub struct Envelope {
    pub sender: String,
    pub at: jiff::Timestamp,
    pub time_zone: jiff::tz::TimeZone,
}
pub struct Rendered {
    pub page: Page,
    pub truncated: bool,
}
#[derive(Debug, thiserror::Error)]
#[error("stub")]
pub struct RenderError;
#[derive(Default, Debug, Clone)]
pub struct RenderConfig;
pub struct Renderer;
impl Renderer {
    pub fn new(_: RenderConfig) -> Renderer {
        Renderer
    }
    pub async fn render_message(
        &self,
        content: &Content,
        _e: &Envelope,
    ) -> Result<Rendered, RenderError> {
        let h = match content {
            Content::Text(t) => 10 + t.len() as u32,
            _ => 20,
        };
        Ok(Rendered {
            page: Page::from_fn(384, h, |x, y| (x + y) % 7 == 0).unwrap(),
            truncated: false,
        })
    }
}
