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
//! list markers, tables with `border-collapse: collapse` drawn with the
//! borders a browser resolves for them (Blitz draws every line with the
//! first cell's border, or none), and
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
use style::values::computed::BorderStyle;

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
    pub fonts: &'a fonts::Fonts,
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
        font_ctx: Some(job.fonts.font_context()),
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
        // Blitz rebuilds a table's layout only when its display, float,
        // position or font changes, never for `border-collapse`: without a
        // full rebuild the table keeps its collapsed layout and the cells'
        // new borders are never drawn. One non-incremental pass rebuilds
        // every box.
        doc.set_incremental_layout(false);
        doc.resolve(0.0);
        doc.set_incremental_layout(true);
    }
    fix_svg_text(&mut doc, job.fonts);

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

/// One side of a box's border, as the collapsing border model compares
/// them.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Side {
    width: f32,
    style: BorderStyle,
    /// sRGB, 0–1.
    color: [f32; 4],
}

impl Side {
    const NONE: Side = Side {
        width: 0.0,
        style: BorderStyle::None,
        color: [0.0; 4],
    };

    /// Whether `self` wins over `other` (CSS 2.1 §17.6.2.1): `hidden`
    /// wins over everything, `none` loses to everything, then the wider,
    /// then by style (double, solid, dashed, dotted, ridge, outset, groove,
    /// inset). A tie keeps `other`, the one met first: candidates are met
    /// cell first, then row, row group, table; left and top first.
    fn beats(&self, other: &Side) -> bool {
        if other.style == BorderStyle::Hidden {
            return false;
        }
        if self.style == BorderStyle::Hidden {
            return true;
        }
        if self.is_none() {
            return false;
        }
        if other.is_none() {
            return true;
        }
        if self.width != other.width {
            return self.width > other.width;
        }
        style_rank(self.style) > style_rank(other.style)
    }

    fn is_none(&self) -> bool {
        matches!(self.style, BorderStyle::None | BorderStyle::Hidden) || self.width <= 0.0
    }

    /// The strongest of `candidates`.
    fn resolve(candidates: impl IntoIterator<Item = Side>) -> Side {
        candidates
            .into_iter()
            .fold(Side::NONE, |best, s| if s.beats(&best) { s } else { best })
    }

    /// The CSS value of a `border-top` (…) shorthand drawing this side.
    fn css(&self) -> String {
        if self.is_none() {
            return "0 none".into();
        }
        let [r, g, b, a] = self.color;
        let c = |v: f32| (v.clamp(0.0, 1.0) * 255.0).round() as u8;
        format!(
            "{}px {} rgba({}, {}, {}, {})",
            self.width,
            style_name(self.style),
            c(r),
            c(g),
            c(b),
            a.clamp(0.0, 1.0)
        )
    }
}

fn style_rank(style: BorderStyle) -> u8 {
    match style {
        BorderStyle::Double => 8,
        BorderStyle::Solid => 7,
        BorderStyle::Dashed => 6,
        BorderStyle::Dotted => 5,
        BorderStyle::Ridge => 4,
        BorderStyle::Outset => 3,
        BorderStyle::Groove => 2,
        BorderStyle::Inset => 1,
        BorderStyle::None | BorderStyle::Hidden => 0,
    }
}

fn style_name(style: BorderStyle) -> &'static str {
    match style {
        BorderStyle::Double => "double",
        BorderStyle::Solid => "solid",
        BorderStyle::Dashed => "dashed",
        BorderStyle::Dotted => "dotted",
        BorderStyle::Ridge => "ridge",
        BorderStyle::Outset => "outset",
        BorderStyle::Groove => "groove",
        BorderStyle::Inset => "inset",
        BorderStyle::None => "none",
        BorderStyle::Hidden => "hidden",
    }
}

/// The four sides of an element's computed border: top, right, bottom,
/// left.
fn border_sides(doc: &BaseDocument, id: NodeId) -> [Side; 4] {
    let Some(s) = doc.tree()[id].primary_styles() else {
        return [Side::NONE; 4];
    };
    let b = s.get_border();
    let current = s.clone_color();
    let side = |width: f32, style: BorderStyle, color: &style::values::computed::Color| Side {
        width: if matches!(style, BorderStyle::None | BorderStyle::Hidden) {
            0.0
        } else {
            width
        },
        style,
        color: *color
            .resolve_to_absolute(&current)
            .to_color_space(style::color::ColorSpace::Srgb)
            .raw_components(),
    };
    [
        side(
            b.border_top_width.0.to_f32_px(),
            b.border_top_style,
            &b.border_top_color,
        ),
        side(
            b.border_right_width.0.to_f32_px(),
            b.border_right_style,
            &b.border_right_color,
        ),
        side(
            b.border_bottom_width.0.to_f32_px(),
            b.border_bottom_style,
            &b.border_bottom_color,
        ),
        side(
            b.border_left_width.0.to_f32_px(),
            b.border_left_style,
            &b.border_left_color,
        ),
    ]
}

const TOP: usize = 0;
const RIGHT: usize = 1;
const BOTTOM: usize = 2;
const LEFT: usize = 3;

/// A cell of a collapsed table, placed on its grid.
struct GridCell {
    id: NodeId,
    row: usize,
    col: usize,
    rows: usize,
    cols: usize,
    border: [Side; 4],
}

/// A row of a collapsed table: its `<tr>`, its group (`<thead>`, …) if
/// any, and whether it is the first or last row of that group.
struct GridRow {
    id: NodeId,
    group: Option<NodeId>,
}

/// Tables with `border-collapse: collapse` are drawn as a browser draws
/// them, in Blitz's separated model: Blitz 0.3 lays a collapsed table's
/// borders out as gutters styled like its *first cell* and draws nothing
/// when that cell has no top border (a league table with only
/// `border-bottom` on its cells prints no lines at all), and it ignores the
/// borders of rows and of the table.
///
/// So every edge of the table's grid gets the border that wins the CSS
/// conflict resolution among the cells, rows, row groups and table that
/// meet there; each edge is then drawn once, by one cell (the cell above
/// a horizontal edge, left of a vertical one; the first row and column
/// also draw their top and left), and the table becomes `separate` with
/// no spacing and no border or padding of its own. A shared border sits
/// in one cell instead of straddling the line, at most half its width off
/// a browser's. Returns whether anything changed.
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
        collapse_table(doc, table, &mut changes);
    }
    let any = !changes.is_empty();
    for (id, name, value) in changes {
        doc.set_style_property(id, name, &value);
    }
    any
}

fn collapse_table(
    doc: &BaseDocument,
    table: NodeId,
    changes: &mut Vec<(NodeId, &'static str, String)>,
) {
    // Rows in the order Blitz lays them out: header groups, then bodies
    // and bare rows, then footers.
    let t = &doc.tree()[table];
    let mut groups: [Vec<(NodeId, Option<NodeId>)>; 3] = Default::default();
    for &child in &t.children {
        let c = &doc.tree()[child];
        if tag_is(c, "tr") {
            groups[1].push((child, None));
            continue;
        }
        let order = if tag_is(c, "thead") {
            0
        } else if tag_is(c, "tfoot") {
            2
        } else if tag_is(c, "tbody") {
            1
        } else {
            continue;
        };
        for &r in &c.children {
            if tag_is(&doc.tree()[r], "tr") {
                groups[order].push((r, Some(child)));
            }
        }
    }
    let rows: Vec<GridRow> = groups
        .into_iter()
        .flatten()
        .map(|(id, group)| GridRow { id, group })
        .collect();
    if rows.is_empty() {
        return;
    }

    // Place the cells (colspan, rowspan) on the grid.
    let mut cells: Vec<GridCell> = Vec::new();
    let mut grid: Vec<Vec<Option<usize>>> = vec![Vec::new(); rows.len()];
    for (r, row) in rows.iter().enumerate() {
        let mut col = 0;
        for &cell in &doc.tree()[row.id].children {
            let node = &doc.tree()[cell];
            if !(tag_is(node, "td") || tag_is(node, "th")) {
                continue;
            }
            let span = |name| {
                node.attr(name)
                    .and_then(|v: &str| v.trim().parse::<usize>().ok())
            };
            let cols = span(blitz_dom::local_name!("colspan"))
                .unwrap_or(1)
                .clamp(1, 1000);
            let rows_left = rows.len() - r;
            let spanned = match span(blitz_dom::local_name!("rowspan")) {
                Some(0) => rows_left,
                Some(n) => n.min(rows_left),
                None => 1,
            };
            while grid[r].get(col).is_some_and(|slot| slot.is_some()) {
                col += 1;
            }
            let index = cells.len();
            for line in &mut grid[r..r + spanned] {
                if line.len() < col + cols {
                    line.resize(col + cols, None);
                }
                for slot in &mut line[col..col + cols] {
                    *slot = Some(index);
                }
            }
            cells.push(GridCell {
                id: cell,
                row: r,
                col,
                rows: spanned,
                cols,
                border: border_sides(doc, cell),
            });
            col += cols;
        }
    }
    let width = grid.iter().map(Vec::len).max().unwrap_or(0);
    if cells.is_empty() {
        return;
    }
    for line in &mut grid {
        line.resize(width, None);
    }
    let at = |r: usize, c: usize| -> Option<&GridCell> {
        grid.get(r)?.get(c).copied().flatten().map(|i| &cells[i])
    };
    let table_border = border_sides(doc, table);
    let row_borders: Vec<[Side; 4]> = rows.iter().map(|r| border_sides(doc, r.id)).collect();
    let group_border = |g: Option<NodeId>| g.map(|g| border_sides(doc, g));
    let first_of_group = |r: usize| r == 0 || rows[r - 1].group != rows[r].group;
    let last_of_group = |r: usize| r + 1 == rows.len() || rows[r + 1].group != rows[r].group;

    // The horizontal edge above grid row `y` (y = rows.len(): the bottom)
    // at column `c`.
    let horizontal = |y: usize, c: usize| -> Side {
        let above = if y > 0 { at(y - 1, c) } else { None };
        let below = at(y, c);
        if let (Some(a), Some(b)) = (above, below)
            && std::ptr::eq(a, b)
        {
            return Side::NONE; // inside a cell spanning rows
        }
        let mut candidates = Vec::with_capacity(7);
        candidates.extend(above.map(|a| a.border[BOTTOM]));
        candidates.extend(below.map(|b| b.border[TOP]));
        if y > 0 {
            candidates.push(row_borders[y - 1][BOTTOM]);
        }
        if y < rows.len() {
            candidates.push(row_borders[y][TOP]);
        }
        if y > 0 && last_of_group(y - 1) {
            candidates.extend(group_border(rows[y - 1].group).map(|g| g[BOTTOM]));
        }
        if y < rows.len() && first_of_group(y) {
            candidates.extend(group_border(rows[y].group).map(|g| g[TOP]));
        }
        if y == 0 {
            candidates.push(table_border[TOP]);
        }
        if y == rows.len() {
            candidates.push(table_border[BOTTOM]);
        }
        Side::resolve(candidates)
    };
    // The vertical edge left of grid column `x` (x = width: the right
    // edge) in row `r`.
    let vertical = |r: usize, x: usize| -> Side {
        let left = if x > 0 { at(r, x - 1) } else { None };
        let right = at(r, x);
        if let (Some(a), Some(b)) = (left, right)
            && std::ptr::eq(a, b)
        {
            return Side::NONE; // inside a cell spanning columns
        }
        let mut candidates = Vec::with_capacity(5);
        candidates.extend(left.map(|a| a.border[RIGHT]));
        candidates.extend(right.map(|b| b.border[LEFT]));
        if x == 0 || x == width {
            let side = if x == 0 { LEFT } else { RIGHT };
            candidates.push(row_borders[r][side]);
            candidates.extend(group_border(rows[r].group).map(|g| g[side]));
            candidates.push(table_border[side]);
        }
        Side::resolve(candidates)
    };

    for cell in &cells {
        let (r, c) = (cell.row, cell.col);
        let cols = c..c + cell.cols;
        let lines = r..r + cell.rows;
        // A cell draws its bottom and right edges, and its top and left
        // ones where no cell is above or to the left to draw them.
        let top = if r == 0 || cols.clone().any(|j| at(r - 1, j).is_none()) {
            Side::resolve(cols.clone().map(|j| horizontal(r, j)))
        } else {
            Side::NONE
        };
        let left = if c == 0 || lines.clone().any(|i| at(i, c - 1).is_none()) {
            Side::resolve(lines.clone().map(|i| vertical(i, c)))
        } else {
            Side::NONE
        };
        let bottom = Side::resolve(cols.map(|j| horizontal(r + cell.rows, j)));
        let right = Side::resolve(lines.map(|i| vertical(i, c + cell.cols)));
        for (name, side) in [
            ("border-top", top),
            ("border-right", right),
            ("border-bottom", bottom),
            ("border-left", left),
        ] {
            changes.push((cell.id, name, side.css()));
        }
    }
    let mut groups_done = Vec::new();
    for row in &rows {
        changes.push((row.id, "border", "0 none".into()));
        if let Some(g) = row.group
            && !groups_done.contains(&g)
        {
            groups_done.push(g);
            changes.push((g, "border", "0 none".into()));
        }
    }
    changes.push((table, "border-collapse", "separate".into()));
    changes.push((table, "border-spacing", "0".into()));
    changes.push((table, "border", "0 none".into()));
    changes.push((table, "padding", "0".into()));
}

/// Inline SVG that holds text is parsed again with the embedded fonts:
/// Blitz's SVG font database knows only the host's fonts, so `<text>` in
/// sans-serif or Arial disappears on a machine without them.
fn fix_svg_text(doc: &mut BaseDocument, fonts: &fonts::Fonts) {
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
        fontdb: fonts.svg_font_db(),
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
