//! The fonts pages are printed with. Embedded in the binary: DejaVu Sans,
//! Serif and Sans Mono, each regular, bold, italic and bold italic (see
//! `assets/fonts/LICENSE-DejaVu.txt`), and Google's monochrome Noto Emoji
//! (`assets/fonts/LICENSE-NotoEmoji.txt`) as the last fallback, so emoji
//! print as black-and-white pictures instead of empty boxes. A folder given
//! as `--fonts` adds more (a CJK font, a favourite typeface) without a
//! rebuild. Host fonts are never consulted, so a preview on a laptop and
//! the print on a Pi are identical.
//!
//! A [`Fonts`] registers them twice: once in a Parley [`FontContext`] (HTML
//! text; built once per renderer and shared by every document, which is
//! what keeps a render under a few milliseconds) and once in a usvg font
//! database (text inside inline `<svg>`). In both, the CSS generic families
//! and the common proprietary names (Arial, Helvetica, Times New Roman,
//! Courier New, …) map to the matching DejaVu family, as fontconfig does on a
//! Linux desktop.
//!
//! Fallback, for a character the chosen font lacks: the other DejaVu
//! families, then the added fonts (in the order of their family names),
//! then Noto Emoji. The same order follows every named family too (CSS
//! `font-family: Georgia` with Japanese in it finds the added CJK font).

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use parley::FontContext;
use parley::fontique::{
    Blob, Collection, CollectionOptions, FallbackKey, FamilyId, FontInfoOverride, GenericFamily,
    Script, ScriptExt as _, SourceCache,
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
    Emoji,
}

/// The embedded text families, in fallback order.
const TEXT_FAMILIES: [Family; 3] = [Family::Sans, Family::Serif, Family::Mono];

impl Family {
    fn name(self) -> &'static str {
        match self {
            Family::Sans => "DejaVu Sans",
            Family::Serif => "DejaVu Serif",
            Family::Mono => "DejaVu Sans Mono",
            Family::Emoji => EMOJI_FAMILY,
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
            Family::Emoji => &[],
        }
    }
}

/// The family name of the embedded emoji font.
pub const EMOJI_FAMILY: &str = "Noto Emoji";

macro_rules! font {
    ($family:ident, $file:literal) => {
        FontFile {
            family: Family::$family,
            bytes: include_bytes!(concat!("../../assets/fonts/", $file)),
        }
    };
}

static FONTS: [FontFile; 13] = [
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
    // One weight: bold text (the header) gets it emboldened by Parley.
    font!(Emoji, "NotoEmoji-Regular.ttf"),
];

/// The family names the embedded text fonts answer to, generic names aside.
pub fn family_names() -> Vec<&'static str> {
    TEXT_FAMILIES
        .iter()
        .flat_map(|f| std::iter::once(f.name()).chain(f.aliases().iter().copied()))
        .collect()
}

/// Font bytes shared between Parley and usvg.
type FontData = Arc<dyn AsRef<[u8]> + Send + Sync>;

/// The fonts of one renderer: the embedded ones and those of a `--fonts`
/// folder, ready for HTML and for SVG.
pub struct Fonts {
    context: FontContext,
    svg_db: Arc<usvg::fontdb::Database>,
    added: Vec<String>,
    warnings: Vec<String>,
}

impl std::fmt::Debug for Fonts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fonts")
            .field("added", &self.added)
            .field("warnings", &self.warnings)
            .finish_non_exhaustive()
    }
}

/// A font file of a `--fonts` folder, read.
struct AddedFile {
    path: PathBuf,
    data: FontData,
}

/// File name endings of the font files a `--fonts` folder may hold.
const FONT_EXTENSIONS: [&str; 4] = ["ttf", "otf", "ttc", "otc"];

/// How deep a `--fonts` folder is searched (a folder per family is common).
const MAX_DEPTH: usize = 4;

impl Fonts {
    /// The embedded fonts alone: built on first use and shared.
    pub fn embedded() -> Arc<Fonts> {
        static EMBEDDED: OnceLock<Arc<Fonts>> = OnceLock::new();
        EMBEDDED
            .get_or_init(|| Arc::new(Fonts::build(Vec::new(), Vec::new())))
            .clone()
    }

    /// The embedded fonts and, with `dir`, every TTF, OTF, TTC or OTC file
    /// in it (and its subfolders). A folder or file that cannot be read, or
    /// a file that is not a font, is a warning naming it (see
    /// [`Fonts::warnings`]), never an error: the server still prints.
    pub fn load(dir: Option<&Path>) -> Arc<Fonts> {
        let Some(dir) = dir else {
            return Fonts::embedded();
        };
        let mut warnings = Vec::new();
        let mut paths = Vec::new();
        find_font_files(dir, 0, &mut paths, &mut warnings);
        paths.sort();
        let files = paths
            .into_iter()
            .filter_map(|path| match std::fs::read(&path) {
                Ok(bytes) => Some(AddedFile {
                    path,
                    data: Arc::new(bytes),
                }),
                Err(e) => {
                    warnings.push(format!(
                        "the font file {} could not be read ({e}); it is left out",
                        path.display()
                    ));
                    None
                }
            })
            .collect();
        Arc::new(Fonts::build(files, warnings))
    }

    fn build(files: Vec<AddedFile>, mut warnings: Vec<String>) -> Fonts {
        let mut collection = Collection::new(CollectionOptions {
            shared: true,
            system_fonts: false,
        });
        let mut db = usvg::fontdb::Database::new();
        for font in &FONTS {
            let data: FontData = Arc::new(font.bytes);
            collection.register_fonts(Blob::new(data.clone()), None);
            for alias in font.family.aliases() {
                collection.register_fonts(
                    Blob::new(data.clone()),
                    Some(FontInfoOverride {
                        family_name: Some(alias),
                        ..Default::default()
                    }),
                );
            }
            db.load_font_source(usvg::fontdb::Source::Binary(data));
        }
        // List markers: Blitz draws bullets with its own small font.
        collection.register_fonts(Blob::new(Arc::new(blitz_dom::BULLET_FONT) as _), None);

        let mut added_ids: Vec<(String, FamilyId)> = Vec::new();
        for file in files {
            let families = collection.register_fonts(Blob::new(file.data.clone()), None);
            if families.is_empty() {
                warnings.push(format!(
                    "{} is not a font Sirius can read (TrueType or OpenType); it is left out",
                    file.path.display()
                ));
                continue;
            }
            for (id, _) in families {
                let name = collection.family_name(id).unwrap_or_default().to_owned();
                if !added_ids.iter().any(|(_, known)| *known == id) {
                    added_ids.push((name, id));
                }
            }
            db.load_font_source(usvg::fontdb::Source::Binary(file.data));
        }
        added_ids.sort_by_key(|a| a.0.to_lowercase());
        // An added file of an embedded family (a newer DejaVu) is no new
        // choice.
        added_ids.retain(|(name, _)| {
            !TEXT_FAMILIES
                .iter()
                .chain(&[Family::Emoji])
                .any(|f| f.name().eq_ignore_ascii_case(name))
        });

        let id = |c: &mut Collection, f: Family| c.family_id(f.name()).expect("embedded font");
        let sans = id(&mut collection, Family::Sans);
        let serif = id(&mut collection, Family::Serif);
        let mono = id(&mut collection, Family::Mono);
        let emoji = id(&mut collection, Family::Emoji);
        let added: Vec<FamilyId> = added_ids.iter().map(|(_, id)| *id).collect();
        for &generic in GenericFamily::all() {
            if generic == GenericFamily::Emoji {
                collection.set_generic_families(generic, std::iter::once(emoji));
                continue;
            }
            let first = match generic {
                GenericFamily::Serif => serif,
                GenericFamily::Monospace | GenericFamily::UiMonospace => mono,
                _ => sans,
            };
            // The other families after the first: wider coverage for
            // fallback; the emoji last.
            let mut order = vec![first];
            order.extend([sans, serif, mono].into_iter().filter(|&f| f != first));
            order.extend(&added);
            order.push(emoji);
            collection.set_generic_families(generic, order.into_iter());
        }
        // Whatever family a document names, a character it lacks is looked
        // for in the same order (Parley asks by the script of the text).
        let fallbacks: Vec<FamilyId> = [sans, serif, mono]
            .into_iter()
            .chain(added.iter().copied())
            .chain([emoji])
            .collect();
        let scripts = Script::all_samples()
            .iter()
            .map(|(s, _)| *s)
            .chain([b"Zyyy", b"Zinh", b"Zzzz"].map(|b| Script::from_bytes(*b)));
        for script in scripts {
            collection.set_fallbacks(FallbackKey::new(script, None), fallbacks.iter().copied());
        }

        // SVG: aliases for the DejaVu families, and the generic names.
        let originals: Vec<_> = db.faces().cloned().collect();
        for face in originals {
            let family = TEXT_FAMILIES
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

        Fonts {
            context: FontContext {
                collection,
                source_cache: SourceCache::new_shared(),
            },
            svg_db: Arc::new(db),
            added: added_ids.into_iter().map(|(name, _)| name).collect(),
            warnings,
        }
    }

    /// A font context for one document: a cheap clone (the collection and
    /// source cache are shared).
    pub fn font_context(&self) -> FontContext {
        self.context.clone()
    }

    /// The usvg font database for text inside inline SVG, holding the same
    /// fonts and the same generic and alias mapping.
    pub fn svg_font_db(&self) -> Arc<usvg::fontdb::Database> {
        self.svg_db.clone()
    }

    /// The family names the `--fonts` folder added, sorted.
    pub fn added_families(&self) -> &[String] {
        &self.added
    }

    /// What could not be loaded from the `--fonts` folder, one sentence
    /// each, naming the file.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }
}

/// Collects the font files under `dir`, by their name's ending.
fn find_font_files(dir: &Path, depth: usize, out: &mut Vec<PathBuf>, warnings: &mut Vec<String>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            warnings.push(format!(
                "the fonts folder {} could not be read ({e}); its fonts are left out",
                dir.display()
            ));
            return;
        }
    };
    for entry in entries.flatten() {
        let path = entry.path();
        // Follows links, as a person putting fonts in a folder expects.
        if path.is_dir() {
            if depth < MAX_DEPTH {
                find_font_files(&path, depth + 1, out, warnings);
            }
            continue;
        }
        let is_font = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| FONT_EXTENSIONS.iter().any(|f| e.eq_ignore_ascii_case(f)));
        if is_font {
            out.push(path);
        }
    }
}
