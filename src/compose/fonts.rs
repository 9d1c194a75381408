//! The fonts pages are printed with: DejaVu Sans, Serif and Sans Mono, each
//! regular, bold, italic and bold italic, embedded in the binary (see
//! `assets/fonts/LICENSE-DejaVu.txt`). Host fonts are never consulted, so a
//! preview on a laptop and the print on a Pi are identical.
//!
//! The fonts are registered twice: once in a Parley [`FontContext`] (HTML
//! text; built once and shared by every document, which is what keeps a
//! render under a few milliseconds) and once in a usvg font database (text
//! inside inline `<svg>`). In both, the CSS generic families and the common
//! proprietary names (Arial, Helvetica, Times New Roman, Courier New, …) map
//! to the matching DejaVu family, as fontconfig does on a Linux desktop.

use std::sync::{Arc, OnceLock};

use parley::FontContext;
use parley::fontique::{
    Blob, Collection, CollectionOptions, FontInfoOverride, GenericFamily, SourceCache,
};

/// One embedded font file.
struct FontFile {
    family: Family,
    bytes: &'static [u8],
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Family {
    Sans,
    Serif,
    Mono,
}

impl Family {
    fn name(self) -> &'static str {
        match self {
            Family::Sans => "DejaVu Sans",
            Family::Serif => "DejaVu Serif",
            Family::Mono => "DejaVu Sans Mono",
        }
    }

    /// Other names this family answers to, as fontconfig aliases them.
    fn aliases(self) -> &'static [&'static str] {
        match self {
            Family::Sans => &[
                "Arial",
                "Helvetica",
                "Helvetica Neue",
                "Verdana",
                "Tahoma",
                "Segoe UI",
                "Roboto",
                "Open Sans",
                "Liberation Sans",
            ],
            Family::Serif => &["Times New Roman", "Times", "Georgia", "Liberation Serif"],
            Family::Mono => &[
                "Courier New",
                "Courier",
                "Menlo",
                "Monaco",
                "Consolas",
                "Liberation Mono",
            ],
        }
    }
}

macro_rules! font {
    ($family:ident, $file:literal) => {
        FontFile {
            family: Family::$family,
            bytes: include_bytes!(concat!("../../assets/fonts/", $file)),
        }
    };
}

static FONTS: [FontFile; 12] = [
    font!(Sans, "DejaVuSans.ttf"),
    font!(Sans, "DejaVuSans-Bold.ttf"),
    font!(Sans, "DejaVuSans-Oblique.ttf"),
    font!(Sans, "DejaVuSans-BoldOblique.ttf"),
    font!(Serif, "DejaVuSerif.ttf"),
    font!(Serif, "DejaVuSerif-Bold.ttf"),
    font!(Serif, "DejaVuSerif-Italic.ttf"),
    font!(Serif, "DejaVuSerif-BoldItalic.ttf"),
    font!(Mono, "DejaVuSansMono.ttf"),
    font!(Mono, "DejaVuSansMono-Bold.ttf"),
    font!(Mono, "DejaVuSansMono-Oblique.ttf"),
    font!(Mono, "DejaVuSansMono-BoldOblique.ttf"),
];

/// The family names the embedded fonts answer to, generic names aside.
pub fn family_names() -> Vec<&'static str> {
    [Family::Sans, Family::Serif, Family::Mono]
        .iter()
        .flat_map(|f| std::iter::once(f.name()).chain(f.aliases().iter().copied()))
        .collect()
}

/// The shared font context: built on first use, cloned (cheaply: the
/// collection and source cache are shared) into every document.
pub fn font_context() -> FontContext {
    static CTX: OnceLock<FontContext> = OnceLock::new();
    CTX.get_or_init(build_font_context).clone()
}

fn build_font_context() -> FontContext {
    let mut collection = Collection::new(CollectionOptions {
        shared: true,
        system_fonts: false,
    });
    for font in &FONTS {
        let blob = Blob::new(Arc::new(font.bytes) as _);
        collection.register_fonts(blob.clone(), None);
        for alias in font.family.aliases() {
            collection.register_fonts(
                blob.clone(),
                Some(FontInfoOverride {
                    family_name: Some(alias),
                    ..Default::default()
                }),
            );
        }
    }
    // List markers: Blitz draws bullets with its own small font.
    collection.register_fonts(Blob::new(Arc::new(blitz_dom::BULLET_FONT) as _), None);
    let id = |c: &mut Collection, f: Family| c.family_id(f.name()).expect("embedded font");
    let sans = id(&mut collection, Family::Sans);
    let serif = id(&mut collection, Family::Serif);
    let mono = id(&mut collection, Family::Mono);
    for &generic in GenericFamily::all() {
        let first = match generic {
            GenericFamily::Serif => serif,
            GenericFamily::Monospace | GenericFamily::UiMonospace => mono,
            _ => sans,
        };
        // The other families after the first: wider coverage for fallback.
        let order: Vec<_> = [first, sans, serif, mono]
            .into_iter()
            .enumerate()
            .filter(|&(i, f)| i == 0 || f != first)
            .map(|(_, f)| f)
            .collect();
        collection.set_generic_families(generic, order.into_iter());
    }
    FontContext {
        collection,
        source_cache: SourceCache::new_shared(),
    }
}

/// The usvg font database for text inside inline SVG, holding the same
/// fonts and the same generic and alias mapping.
pub fn svg_font_db() -> Arc<usvg::fontdb::Database> {
    static DB: OnceLock<Arc<usvg::fontdb::Database>> = OnceLock::new();
    DB.get_or_init(|| {
        let mut db = usvg::fontdb::Database::new();
        for font in &FONTS {
            db.load_font_data(font.bytes.to_vec());
        }
        let originals: Vec<_> = db.faces().cloned().collect();
        for face in originals {
            let family = [Family::Sans, Family::Serif, Family::Mono]
                .into_iter()
                .find(|f| face.families.iter().any(|(n, _)| n == f.name()));
            let Some(family) = family else { continue };
            for alias in family.aliases() {
                let mut info = face.clone();
                info.families = vec![(
                    alias.to_string(),
                    usvg::fontdb::Language::English_UnitedStates,
                )];
                db.push_face_info(info);
            }
        }
        db.set_sans_serif_family(Family::Sans.name());
        db.set_serif_family(Family::Serif.name());
        db.set_monospace_family(Family::Mono.name());
        db.set_cursive_family(Family::Sans.name());
        db.set_fantasy_family(Family::Sans.name());
        Arc::new(db)
    })
    .clone()
}
