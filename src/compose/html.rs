//! HTML to pixels with Blitz, and pixels to a 1-bit page.
//!
//! One document per render: parsed by blitz-html with a 384 px viewport,
//! the shared font context and a [`DocumentNet`] of its own; styled and laid
//! out by blitz-dom; painted by blitz-paint into anyrender's vello_cpu
//! renderer at the document's full height (cut at 10,000 rows); then turned
//! into a page by the raster code (Floyd–Steinberg or threshold).
//!
//! Where Blitz 0.3 differs from browsers, this module evens it out: a user
//! agent stylesheet for the presentational attributes of tables and for
//! list markers, tables with `border-collapse: collapse` drawn as separate
//! borders with no spacing (Blitz draws only the first cell's border), and
//! inline SVG with text re-parsed against the embedded fonts.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Instant;

use anyrender::ImageRenderer as _;
use anyrender_vello_cpu::VelloCpuImageRenderer;
use blitz_dom::node::{ImageData, SpecialElementData, SvgImageData};
use blitz_dom::{BaseDocument, DocumentConfig, NodeId, StyleThreading, UserAgentStylesheet};
use blitz_html::HtmlDocument;
use blitz_traits::shell::{ColorScheme, Viewport};
use image::{DynamicImage, RgbaImage};

use super::net::DocumentNet;
use super::{RenderError, Rendered, fonts};
use crate::raster::{Dither, MAX_HEIGHT, PRINTER_WIDTH, page_from_image};

/// The height of the viewport the document is laid out in (`vh` units).
/// Pages grow to the document's height whatever this is; a short viewport
/// keeps `height: 100%` documents from printing a long blank tail.
pub const VIEWPORT_HEIGHT: u32 = 100;

/// What one render may do.
pub(crate) struct RenderJob<'a> {
    pub html: &'a str,
    pub dither: Dither,
    pub agent: Option<ureq::Agent>,
    /// When waiting for pictures stops.
    pub fetch_deadline: Instant,
    pub max_rows: u32,
}

/// The user-agent stylesheet added after Blitz's own.
fn ua_stylesheet() -> &'static str {
    static CSS: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    CSS.get_or_init(|| {
        let mut css = String::from(
            "/* Sirius: presentational attributes Blitz does not map. */\n\
             table[border]:not([border=\"0\"]) { border: 1px outset gray; }\n\
             table[border]:not([border=\"0\"]) > * > tr > td,\n\
             table[border]:not([border=\"0\"]) > * > tr > th,\n\
             table[border]:not([border=\"0\"]) > tr > td,\n\
             table[border]:not([border=\"0\"]) > tr > th { border: 1px inset gray; }\n\
             /* Ordered-list markers keep a gap from their text, as wide as\n\
                the space browsers put after the number: Blitz puts the\n\
                marker's end at the item's border box. */\n\
             ol > li { margin-inline-start: -0.32em; padding-inline-start: 0.32em; }\n",
        );
        for n in 2..=10 {
            let _ = writeln!(
                css,
                "table[border=\"{n}\"] {{ border-width: {n}px; }}"
            );
        }
        for n in 0..=20 {
            let _ = writeln!(
                css,
                "table[cellpadding=\"{n}\"] > * > tr > td, table[cellpadding=\"{n}\"] > * > tr > th, \
                 table[cellpadding=\"{n}\"] > tr > td, table[cellpadding=\"{n}\"] > tr > th \
                 {{ padding: {n}px; }}\n\
                 table[cellspacing=\"{n}\"] {{ border-spacing: {n}px; }}"
            );
        }
        css
    })
}

/// Renders HTML to a 384-wide page.
pub(crate) fn render(job: RenderJob<'_>) -> Result<Rendered, RenderError> {
    let net = DocumentNet::new(job.agent.clone());
    let config = DocumentConfig {
        viewport: Some(Viewport::new(
            PRINTER_WIDTH,
            VIEWPORT_HEIGHT,
            1.0,
            ColorScheme::Light,
        )),
        ua_stylesheets: vec![
            UserAgentStylesheet::default_sheet(),
            UserAgentStylesheet::parse(ua_stylesheet()),
        ],
        net_provider: Some(net.clone() as Arc<dyn blitz_traits::net::NetProvider>),
        font_ctx: Some(fonts::font_context()),
        style_threading: StyleThreading::Sequential,
        ..Default::default()
    };
    let mut doc: BaseDocument = HtmlDocument::from_html(job.html, config).into_inner();
    doc.resolve(0.0);
    net.allow(picture_urls(&doc));
    // Pictures may reveal more (a background found by layout): a few rounds.
    for _ in 0..3 {
        let finished = net.wait_idle(job.fetch_deadline);
        doc.handle_messages();
        doc.resolve(0.0);
        if !finished || !net.start_queued() {
            break;
        }
    }
    net.close();
    if fix_tables(&mut doc) {
        doc.resolve(0.0);
    }
    fix_svg_text(&mut doc);

    let root = doc.root_element();
    let layout = *root.final_layout();
    let overflow = layout.scrollable_overflow_rect;
    let full = layout.size.height.max(overflow.bottom).ceil();
    let full = if full.is_finite() { full.max(1.0) } else { 1.0 } as u64;
    let max_rows = job.max_rows.clamp(1, MAX_HEIGHT);
    let truncated = full > u64::from(max_rows);
    let height = full.min(u64::from(max_rows)) as u32;

    let mut renderer = VelloCpuImageRenderer::new(PRINTER_WIDTH, height);
    let mut buffer = Vec::new();
    renderer.render_to_vec(
        |scene| blitz_paint::paint_scene(scene, &mut doc, 1.0, PRINTER_WIDTH, height, 0, 0),
        &mut buffer,
    );
    let image = RgbaImage::from_raw(PRINTER_WIDTH, height, buffer)
        .ok_or_else(|| RenderError::Html("the renderer returned a short buffer".into()))?;
    let page = page_from_image(&DynamicImage::ImageRgba8(image), job.dither);
    Ok(Rendered {
        page: page.page,
        truncated: truncated || page.truncated,
    })
}

/// Every node id of the document, depth first.
fn node_ids(doc: &BaseDocument) -> Vec<NodeId> {
    let mut out = Vec::new();
    let mut stack = vec![doc.root_node().id];
    while let Some(id) = stack.pop() {
        out.push(id);
        if let Some(node) = doc.get_node(id) {
            stack.extend(node.children.iter().rev().copied());
        }
    }
    out
}

fn tag_is(node: &blitz_dom::node::Node, tag: &str) -> bool {
    node.element_data().is_some_and(|e| &*e.name.local == tag)
}

/// The remote URLs the document shows as pictures: `<img src>` and
/// `url()`s in picture-valued declarations of style attributes and
/// `<style>` elements. Anything else (stylesheets, fonts, frames) is not
/// fetched.
fn picture_urls(doc: &BaseDocument) -> HashSet<String> {
    let base = doc.base_url().clone();
    let mut urls = HashSet::new();
    let mut add = |raw: &str| {
        if let Ok(u) = base.join(raw.trim())
            && matches!(u.scheme(), "http" | "https")
        {
            urls.insert(u.to_string());
        }
    };
    for id in node_ids(doc) {
        let Some(node) = doc.get_node(id) else {
            continue;
        };
        let Some(el) = node.element_data() else {
            continue;
        };
        if &*el.name.local == "img"
            && let Some(src) = el.attr(blitz_dom::local_name!("src"))
        {
            add(src);
        }
        if let Some(style) = el.attr(blitz_dom::local_name!("style")) {
            css_picture_urls(style, &mut add);
        }
        if &*el.name.local == "style" {
            css_picture_urls(&node.text_content(), &mut add);
        }
    }
    urls
}

/// Calls `add` with each `url(...)` in a picture-valued declaration.
fn css_picture_urls(css: &str, add: &mut impl FnMut(&str)) {
    let lower = css.to_ascii_lowercase();
    let mut from = 0;
    while let Some(pos) = lower[from..].find("url(") {
        let start = from + pos;
        let decl_start = lower[..start].rfind([';', '{']).map_or(0, |p| p + 1);
        let property = lower[decl_start..start].trim_start();
        let inner_start = start + 4;
        let Some(end) = lower[inner_start..].find(')') else {
            break;
        };
        let inner = css[inner_start..inner_start + end]
            .trim()
            .trim_matches(['"', '\'']);
        if [
            "background",
            "list-style",
            "content",
            "border-image",
            "mask",
        ]
        .iter()
        .any(|p| property.starts_with(p))
        {
            add(inner);
        }
        from = inner_start + end;
    }
}

/// Tables with `border-collapse: collapse` become separate borders with no
/// spacing, a cell dropping its top (left) border where the cell above (to
/// the left) draws a bottom (right) one: Blitz 0.3 draws only the first
/// cell's border for every cell of a collapsed table. Returns whether
/// anything changed.
fn fix_tables(doc: &mut BaseDocument) -> bool {
    use style::properties::longhands::border_collapse::computed_value::T as Collapse;
    let mut tables = Vec::new();
    for id in node_ids(doc) {
        let node = &doc.tree()[id];
        if !tag_is(node, "table") {
            continue;
        }
        let collapsed = node
            .primary_styles()
            .is_some_and(|s| s.get_inherited_table().border_collapse == Collapse::Collapse);
        if collapsed {
            tables.push(id);
        }
    }
    let mut changes: Vec<(NodeId, &'static str, String)> = Vec::new();
    for &table in &tables {
        changes.push((table, "border-collapse", "separate".into()));
        changes.push((table, "border-spacing", "0".into()));
        // Rows of cells, in order (thead, tbody, tfoot or bare tr).
        let mut rows: Vec<Vec<NodeId>> = Vec::new();
        let t = &doc.tree()[table];
        for &child in &t.children {
            let c = &doc.tree()[child];
            let trs: Vec<NodeId> = if tag_is(c, "tr") {
                vec![child]
            } else {
                c.children
                    .iter()
                    .copied()
                    .filter(|&r| tag_is(&doc.tree()[r], "tr"))
                    .collect()
            };
            for tr in trs {
                let cells = doc.tree()[tr]
                    .children
                    .iter()
                    .copied()
                    .filter(|&c| tag_is(&doc.tree()[c], "td") || tag_is(&doc.tree()[c], "th"))
                    .collect();
                rows.push(cells);
            }
        }
        let widths = |id: NodeId| -> [f32; 4] {
            doc.tree()[id]
                .primary_styles()
                .map(|s| {
                    let b = s.get_border();
                    [
                        b.border_top_width.0.to_f32_px(),
                        b.border_right_width.0.to_f32_px(),
                        b.border_bottom_width.0.to_f32_px(),
                        b.border_left_width.0.to_f32_px(),
                    ]
                })
                .unwrap_or([0.0; 4])
        };
        for (r, row) in rows.iter().enumerate() {
            for (c, &cell) in row.iter().enumerate() {
                let w = widths(cell);
                if r > 0
                    && let Some(&above) = rows[r - 1].get(c)
                    && widths(above)[2] > 0.0
                    && w[0] > 0.0
                {
                    changes.push((cell, "border-top-width", "0".into()));
                }
                if c > 0 && widths(row[c - 1])[1] > 0.0 && w[3] > 0.0 {
                    changes.push((cell, "border-left-width", "0".into()));
                }
            }
        }
    }
    let any = !changes.is_empty();
    for (id, name, value) in changes {
        doc.set_style_property(id, name, &value);
    }
    any
}

/// Inline SVG that holds text is parsed again with the embedded fonts:
/// Blitz's SVG font database knows only the host's fonts, so `<text>` in
/// sans-serif or Arial disappears on a machine without them.
fn fix_svg_text(doc: &mut BaseDocument) {
    let mut found = Vec::new();
    for id in node_ids(doc) {
        let node = &doc.tree()[id];
        if !tag_is(node, "svg") {
            continue;
        }
        let is_svg_image = matches!(
            node.element_data().map(|e| &e.special_data),
            Some(SpecialElementData::Image(img)) if matches!(**img, ImageData::Svg(_))
        );
        if !is_svg_image {
            continue;
        }
        let mut source = node.outer_html();
        if !source.contains("<text") {
            continue;
        }
        if !source[..source.find('>').unwrap_or(0)].contains("xmlns=") {
            source = source.replacen("<svg", "<svg xmlns=\"http://www.w3.org/2000/svg\"", 1);
        }
        if source.contains("xlink:") && !source.contains("xmlns:xlink") {
            source = source.replacen(
                "<svg",
                "<svg xmlns:xlink=\"http://www.w3.org/1999/xlink\"",
                1,
            );
        }
        if let Some(color) = node.primary_styles().map(|s| s.clone_color()) {
            let [r, g, b, _] = color.raw_components().map(|c| (c * 255.0).round() as u8);
            let css = format!("#{r:02x}{g:02x}{b:02x}");
            source = source
                .replace("currentColor", &css)
                .replace("currentcolor", &css);
        }
        found.push((id, source));
    }
    if found.is_empty() {
        return;
    }
    let options = usvg::Options {
        fontdb: fonts::svg_font_db(),
        ..Default::default()
    };
    for (id, source) in found {
        match SvgImageData::from_data(source.as_bytes(), &options) {
            Ok(svg) => {
                if let Some(el) = doc.get_node_mut(id).and_then(|n| n.element_data_mut()) {
                    el.special_data = SpecialElementData::Image(Box::new(ImageData::Svg(svg)));
                }
            }
            Err(e) => tracing::info!(error = %e, "an inline SVG could not be parsed again"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picture_urls_in_css() {
        let mut got = Vec::new();
        css_picture_urls(
            "@import url(a.css); p { background-image: url('http://x/b.png'); } \
             @font-face { src: url(http://x/f.woff) } li { list-style: url(\"c.png\") }",
            &mut |u| got.push(u.to_string()),
        );
        assert_eq!(got, ["http://x/b.png", "c.png"]);
    }
}
