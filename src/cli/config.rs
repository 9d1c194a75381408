//! Settings, one surface: every setting of `sirius serve` is a flag and an
//! environment variable (clap's `env = …`), and this module owns what is
//! said about them as a whole — `sirius config` (the effective settings
//! and where each came from: default, environment or flag, secrets
//! masked), `sirius config --default-file` (the package's
//! `/etc/default/sirius`, every setting commented out at its default), and
//! the warning about `SIRIUS_*` variables that name no setting (a typo must
//! not silently do nothing).
//!
//! Nothing here keeps its own list of settings: they are read from the clap
//! command tree (the arguments of `serve` that have an environment
//! variable, plus the global `--db`), so a new flag shows up by itself.
//! The one setting outside clap is `SIRIUS_LOG`, the log filter read when
//! logging starts.

use std::ffi::OsString;

use clap::parser::ValueSource;
use clap::{ArgMatches, Args, CommandFactory as _};
use serde_json::json;

use super::{Cli, Outcome, serve::ServeArgs};

/// The log filter, read by `init_logging` (not a clap argument).
pub const LOG_ENV: &str = "SIRIUS_LOG";
const LOG_DEFAULT: &str = "info";
const LOG_HELP: &str = "What the log shows: a level (error, warn, info, debug, trace) or a \
    filter such as sirius=debug,info.";

/// Words that make a setting secret: its value is never printed.
const SECRET_WORDS: &[&str] = &["SECRET", "PASSWORD", "KEY"];

#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// Print the package's /etc/default/sirius instead: every setting with
    /// its help, commented out at its default.
    #[arg(long)]
    pub default_file: bool,
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// One setting of `sirius serve`, as clap describes it.
#[derive(Debug, Clone)]
pub struct Setting {
    /// The clap argument id (the field name).
    pub id: String,
    /// The environment variable, e.g. `SIRIUS_LISTEN`.
    pub env: String,
    /// The long flag with its dashes, e.g. `--listen`.
    pub flag: Option<String>,
    /// The default as clap would use it; `None`: unset by default.
    pub default: Option<String>,
    /// The help text, plain.
    pub help: String,
    /// The values it accepts, when clap knows them (e.g. `public, all, none`).
    pub choices: Vec<String>,
    /// Never printed: the name holds SECRET, PASSWORD or KEY.
    pub secret: bool,
    /// A switch (`--no-mdns`): no value on the command line, `true`/`false`
    /// in the environment.
    pub switch: bool,
}

/// The command tree with global arguments propagated to subcommands.
fn built_command() -> clap::Command {
    let mut cmd = Cli::command();
    cmd.build();
    cmd
}

/// The settings of `sirius serve`, in the order `serve --help` lists them:
/// every argument of `serve` that has an environment variable (the global
/// `--db` included).
pub fn serve_settings() -> Vec<Setting> {
    let cmd = built_command();
    let serve = cmd
        .find_subcommand("serve")
        .expect("the command tree has `serve`");
    let mut settings: Vec<Setting> = serve
        .get_arguments()
        .filter_map(|arg| {
            let env = arg.get_env()?.to_string_lossy().into_owned();
            let id = arg.get_id().to_string();
            let upper = format!("{} {}", env, id.to_ascii_uppercase());
            let switch = matches!(
                arg.get_action(),
                clap::ArgAction::SetTrue | clap::ArgAction::SetFalse
            );
            let help = arg
                .get_long_help()
                .or(arg.get_help())
                .map(|h| h.to_string())
                .unwrap_or_default();
            let choices = if switch {
                Vec::new()
            } else {
                arg.get_possible_values()
                    .iter()
                    .filter(|v| !v.is_hide_set())
                    .map(|v| v.get_name().to_string())
                    .collect()
            };
            Some(Setting {
                flag: arg.get_long().map(|l| format!("--{l}")),
                default: arg
                    .get_default_values()
                    .first()
                    .map(|v| v.to_string_lossy().into_owned()),
                help,
                choices,
                secret: SECRET_WORDS.iter().any(|w| upper.contains(w)),
                switch,
                env,
                id,
            })
        })
        .collect();
    // The global --db first: it is where everything else lives.
    settings.sort_by_key(|s| s.id != "db");
    settings
}

/// Every environment variable the command tree knows (any subcommand's
/// arguments), plus `SIRIUS_LOG`.
pub fn known_env_names() -> Vec<String> {
    fn walk(cmd: &clap::Command, out: &mut Vec<String>) {
        for arg in cmd.get_arguments() {
            if let Some(env) = arg.get_env() {
                out.push(env.to_string_lossy().into_owned());
            }
        }
        for sub in cmd.get_subcommands() {
            walk(sub, out);
        }
    }
    let mut out = vec![LOG_ENV.to_string()];
    walk(&built_command(), &mut out);
    out.sort();
    out.dedup();
    out
}

/// The `SIRIUS_*` variables in `vars` that name no setting, each with the
/// closest known name.
pub fn unknown_env(vars: impl IntoIterator<Item = OsString>) -> Vec<(String, String)> {
    let known = known_env_names();
    let mut unknown: Vec<(String, String)> = vars
        .into_iter()
        .filter_map(|name| name.into_string().ok())
        .filter(|name| name.starts_with("SIRIUS_") && !known.contains(name))
        .map(|name| {
            let closest = known
                .iter()
                .filter(|k| k.starts_with("SIRIUS_"))
                .min_by_key(|k| edit_distance(&name, k))
                .cloned()
                .unwrap_or_default();
            (name, closest)
        })
        .collect();
    unknown.sort();
    unknown
}

/// Warns, in the log, about every `SIRIUS_*` variable of this process that
/// names no setting. Run at the start of every command.
pub fn warn_unknown_env() {
    for (name, closest) in unknown_env(std::env::vars_os().map(|(k, _)| k)) {
        tracing::warn!(
            "the environment variable {name} is not a Sirius setting and is ignored; did you mean {closest}? (`sirius config` lists the settings)"
        );
    }
}

/// Levenshtein distance between two names (insertions, deletions and
/// substitutions of one character each cost 1).
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

/// Where a setting's effective value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Default,
    Environment,
    Flag,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Default => "default",
            Source::Environment => "environment",
            Source::Flag => "flag",
        }
    }
}

/// A setting with its effective value.
#[derive(Debug, Clone)]
pub struct Effective {
    pub setting: Setting,
    /// `None`: not set (and no default).
    pub value: Option<String>,
    pub source: Source,
}

impl Effective {
    /// The value as it may be shown: secrets masked.
    pub fn shown(&self) -> Option<String> {
        match &self.value {
            Some(v) if self.setting.secret && !v.is_empty() => {
                Some(format!("******** (set, {} characters)", v.chars().count()))
            }
            other => other.clone(),
        }
    }
}

/// The effective settings in `matches` (the matches of `sirius config`,
/// which takes the same flags as `serve`), plus `SIRIUS_LOG` from the
/// environment.
pub fn effective(matches: &ArgMatches) -> Vec<Effective> {
    let mut out: Vec<Effective> = serve_settings()
        .into_iter()
        .map(|setting| {
            let source = match matches.try_get_raw(&setting.id).ok().flatten() {
                Some(_) => match matches.value_source(&setting.id) {
                    Some(ValueSource::CommandLine) => Source::Flag,
                    Some(ValueSource::EnvVariable) => Source::Environment,
                    _ => Source::Default,
                },
                None => Source::Default,
            };
            let value = matches
                .try_get_raw(&setting.id)
                .ok()
                .flatten()
                .map(|values| {
                    values
                        .map(|v| v.to_string_lossy().into_owned())
                        .collect::<Vec<_>>()
                        .join(",")
                });
            Effective {
                setting,
                value,
                source,
            }
        })
        .collect();
    let log = std::env::var(LOG_ENV).ok();
    out.push(Effective {
        setting: log_setting(),
        source: if log.is_some() {
            Source::Environment
        } else {
            Source::Default
        },
        value: Some(log.unwrap_or_else(|| LOG_DEFAULT.to_string())),
    });
    out
}

fn log_setting() -> Setting {
    Setting {
        id: "log".into(),
        env: LOG_ENV.into(),
        flag: None,
        default: Some(LOG_DEFAULT.into()),
        help: LOG_HELP.into(),
        choices: Vec::new(),
        secret: false,
        switch: false,
    }
}

/// The text of the package's `/etc/default/sirius`: a header, then every
/// setting with its help, commented out at its default.
pub fn default_file() -> String {
    let mut out = String::from(
        "# /etc/default/sirius: the settings of the Sirius service (`sirius serve`).\n\
         #\n\
         # systemd reads this file when it starts the service. Every setting is\n\
         # listed here at its default, commented out. To change one, remove the\n\
         # '#' in front of it, edit the value, then: systemctl restart sirius\n\
         # Each is also a flag of `sirius serve` (see `sirius serve --help`).\n\
         # `sirius config` prints the settings in effect and where each came from.\n\
         #\n\
         # Generated by `sirius config --default-file`; do not add settings by\n\
         # hand that are not listed: an unknown SIRIUS_* name is only warned about.\n",
    );
    let mut settings = serve_settings();
    settings.push(log_setting());
    for s in settings {
        out.push('\n');
        let mut help = s.help.trim().to_string();
        if !help.is_empty() && !help.ends_with(['.', '!', '?']) {
            help.push('.');
        }
        if !s.choices.is_empty() {
            help.push_str(&format!(" One of: {}.", s.choices.join(", ")));
        }
        for line in wrap(&help, 76) {
            out.push_str(&format!("# {line}\n").replace("# \n", "#\n"));
        }
        if let Some(flag) = &s.flag {
            let example = if s.switch {
                flag.clone()
            } else {
                format!("{flag} VALUE")
            };
            out.push_str(&format!("# (As a flag: sirius serve {example})\n"));
        }
        let default = s.default.clone().unwrap_or_default();
        out.push_str(&format!("#{}={}\n", s.env, default));
    }
    out
}

/// Wraps text at `width` columns, keeping paragraphs.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    for (i, paragraph) in text.split("\n\n").enumerate() {
        if i > 0 {
            lines.push(String::new());
        }
        let mut line = String::new();
        for word in paragraph.split_whitespace() {
            if !line.is_empty() && line.len() + 1 + word.len() > width {
                lines.push(std::mem::take(&mut line));
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
        if !line.is_empty() {
            lines.push(line);
        }
    }
    lines
}

/// `sirius config`: the effective settings of `serve`, or the default file.
/// Exits 1 when `serve` would refuse these settings (saying why).
pub fn run(
    args: ConfigArgs,
    db: &std::path::Path,
    json: bool,
    matches: &ArgMatches,
) -> anyhow::Result<Outcome> {
    if args.default_file {
        print!("{}", default_file());
        return Ok(Outcome::AllValid);
    }
    let matches = matches
        .subcommand_matches("config")
        .expect("run is called for `sirius config`");
    let settings = effective(matches);
    if json {
        for e in &settings {
            println!(
                "{}",
                json!({
                    "setting": e.setting.env,
                    "flag": e.setting.flag,
                    "value": e.shown(),
                    "source": e.source.as_str(),
                    "secret": e.setting.secret,
                })
            );
        }
    } else {
        let name_width = settings
            .iter()
            .map(|e| e.setting.env.len())
            .max()
            .unwrap_or(0);
        let shown: Vec<String> = settings
            .iter()
            .map(|e| e.shown().unwrap_or_else(|| "(not set)".into()))
            .collect();
        let value_width = shown.iter().map(|v| v.len()).max().unwrap_or(0).min(40);
        for (e, value) in settings.iter().zip(&shown) {
            let from = match (e.source, &e.setting.flag) {
                (Source::Flag, Some(flag)) => format!("flag {flag}"),
                (source, _) => source.as_str().to_string(),
            };
            println!(
                "{:name_width$}  {:value_width$}  {}",
                e.setting.env, value, from
            );
        }
    }
    // The same checks `serve` makes before it starts.
    if let Err(e) = args.serve.config(db) {
        eprintln!("sirius serve would refuse these settings: {e:#}");
        return Ok(Outcome::SomeInvalid);
    }
    Ok(Outcome::AllValid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_counts_single_character_edits() {
        assert_eq!(edit_distance("SIRIUS_LISTEN", "SIRIUS_LISTEN"), 0);
        assert_eq!(edit_distance("SIRIUS_LISTN", "SIRIUS_LISTEN"), 1);
        assert_eq!(edit_distance("SIRIUS_LISTENN", "SIRIUS_LISTEN"), 1);
        assert_eq!(edit_distance("SIRIUS_LISTEM", "SIRIUS_LISTEN"), 1);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
    }

    #[test]
    fn settings_come_from_the_command_tree() {
        let settings = serve_settings();
        let envs: Vec<&str> = settings.iter().map(|s| s.env.as_str()).collect();
        assert_eq!(envs[0], "SIRIUS_DB");
        for env in [
            "SIRIUS_LISTEN",
            "SIRIUS_PUBLIC_URL",
            "SIRIUS_HISTORY",
            "SIRIUS_HOLD_DAYS",
            "SIRIUS_FETCH_IMAGES",
            "SIRIUS_TEMPLATES",
            "SIRIUS_TIME_ZONE",
        ] {
            assert!(envs.contains(&env), "{env} missing from {envs:?}");
        }
        let listen = settings.iter().find(|s| s.env == "SIRIUS_LISTEN").unwrap();
        assert_eq!(listen.flag.as_deref(), Some("--listen"));
        assert_eq!(listen.default.as_deref(), Some("0.0.0.0:5002"));
        assert!(!listen.secret);
        let no_mdns = settings.iter().find(|s| s.env == "SIRIUS_NO_MDNS").unwrap();
        assert!(no_mdns.switch);
        assert_eq!(no_mdns.default.as_deref(), Some("false"));
        assert!(known_env_names().contains(&"SIRIUS_LOG".to_string()));
    }

    #[test]
    fn unknown_variables_name_the_closest_setting() {
        let vars = [
            "SIRIUS_LISTN",
            "SIRIUS_DB",
            "SIRIUS_LOG",
            "PATH",
            "SIRIUS_HOLDDAYS",
        ]
        .map(OsString::from);
        assert_eq!(
            unknown_env(vars),
            [
                (
                    "SIRIUS_HOLDDAYS".to_string(),
                    "SIRIUS_HOLD_DAYS".to_string()
                ),
                ("SIRIUS_LISTN".to_string(), "SIRIUS_LISTEN".to_string()),
            ]
        );
    }

    #[test]
    fn secrets_are_masked() {
        let e = Effective {
            setting: Setting {
                id: "twitter_consumer_secret".into(),
                env: "TWITTER_CONSUMER_SECRET".into(),
                flag: Some("--twitter-consumer-secret".into()),
                default: None,
                help: String::new(),
                choices: Vec::new(),
                secret: true,
                switch: false,
            },
            value: Some("hunter2hunter2".into()),
            source: Source::Environment,
        };
        let shown = e.shown().unwrap();
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("set"), "{shown}");
    }

    /// The package's /etc/default/sirius is generated from the command
    /// tree; a new or changed flag must be regenerated into it.
    #[test]
    fn the_packaged_default_file_is_up_to_date() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/sirius.default");
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == default_file(),
            "packaging/sirius.default is not what `sirius config --default-file` prints \
             (a setting was added or changed). Regenerate it:\n    \
             cargo run -- config --default-file > packaging/sirius.default"
        );
    }
}
