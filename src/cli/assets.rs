//! `sirius generate-assets DIR` (hidden): writes the files the .deb ships
//! beside the binary, generated from the command line itself so they never
//! drift from it — a man page per command (`DIR/man/sirius.1`,
//! `DIR/man/sirius-serve.1`, …; the top page also names the package's
//! files) and shell completions for bash, zsh and fish
//! (`DIR/completions/`). `packaging/build-deb` calls it.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::{Args, CommandFactory};
use clap_complete::Shell;

use super::{Cli, Outcome};

#[derive(Debug, Args)]
pub struct AssetsArgs {
    /// The folder to write `man/` and `completions/` into (created if
    /// missing; files in it are replaced).
    pub dir: PathBuf,
}

/// What the package installs and where, for the FILES section of sirius(1).
const FILES_SECTION: &[(&str, &str)] = &[
    (
        "/etc/default/sirius",
        "Settings for the service: one SIRIUS_* variable per line, every one listed \
         with its default. Change one, then run systemctl restart sirius.",
    ),
    (
        "/var/lib/sirius/sirius.db",
        "The database of the service (users, printers, print keys, messages). \
         Tools run against it as the service's user: \
         sudo -u sirius sirius --db /var/lib/sirius/sirius.db user list",
    ),
    (
        "/var/lib/sirius/backups/",
        "Daily copies of the database made by sirius-backup.timer \
         (off until systemctl enable --now sirius-backup.timer).",
    ),
    (
        "/usr/lib/systemd/system/sirius.service",
        "The service. Its log: journalctl -u sirius.",
    ),
];

pub fn run(args: AssetsArgs, json: bool) -> anyhow::Result<Outcome> {
    let mut written = Vec::new();
    let man_dir = args.dir.join("man");
    let completions_dir = args.dir.join("completions");
    for dir in [&man_dir, &completions_dir] {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("could not create the folder {}", dir.display()))?;
    }
    written.extend(write_man_pages(&man_dir)?);
    written.extend(write_completions(&completions_dir)?);
    for path in &written {
        if json {
            println!("{}", serde_json::json!({"written": path}));
        } else {
            println!("wrote {}", path.display());
        }
    }
    Ok(Outcome::AllValid)
}

/// One page per visible command: sirius(1), sirius-serve(1), sirius-user-add(1), …
fn write_man_pages(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    let mut written = Vec::new();
    let mut todo = vec![cmd];
    while let Some(cmd) = todo.pop() {
        todo.extend(cmd.get_subcommands().filter(|s| !s.is_hide_set()).cloned());
        let is_top = cmd.get_name() == "sirius";
        let man = clap_mangen::Man::new(cmd).manual("Sirius");
        let path = dir.join(man.get_filename());
        let mut page = Vec::new();
        if is_top {
            man.render_title(&mut page)?;
            man.render_name_section(&mut page)?;
            man.render_synopsis_section(&mut page)?;
            man.render_description_section(&mut page)?;
            man.render_options_section(&mut page)?;
            man.render_subcommands_section(&mut page)?;
            page.extend_from_slice(files_section().as_bytes());
            man.render_version_section(&mut page)?;
        } else {
            man.render(&mut page)?;
        }
        write_file(&path, &page)?;
        written.push(path);
    }
    written.sort();
    Ok(written)
}

/// The FILES and SEE ALSO sections of sirius(1), in roff.
fn files_section() -> String {
    let mut roff = String::from(".SH FILES\n.nh\n");
    for (path, what) in FILES_SECTION {
        roff.push_str(&format!(
            ".TP\n\\fI{}\\fR\n{}\n",
            roff_escape(path),
            roff_escape(what)
        ));
    }
    roff.push_str(".SH \"SEE ALSO\"\n");
    roff.push_str(
        "Each command has its own page, e.g. \\fBsirius\\-serve\\fR(1), \
         \\fBsirius\\-user\\fR(1); \\fBsystemctl\\fR(1), \\fBjournalctl\\fR(1).\n",
    );
    roff
}

/// Escapes what roff would read as commands: backslashes, and dashes so
/// they print as ASCII hyphens (copy-pastable commands and options).
fn roff_escape(text: &str) -> String {
    text.replace('\\', "\\e").replace('-', "\\-")
}

fn write_completions(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let mut cmd = Cli::command();
        let path =
            clap_complete::generate_to(shell, &mut cmd, "sirius", dir).with_context(|| {
                format!(
                    "could not write the {shell} completions into {}",
                    dir.display()
                )
            })?;
        written.push(path);
    }
    Ok(written)
}

fn write_file(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut file = std::fs::File::create(path)
        .with_context(|| format!("could not create {}", path.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.flush())
        .with_context(|| format!("could not write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_gets_a_man_page_and_every_shell_its_completions() {
        let dir = std::env::temp_dir().join(format!(
            "sirius-assets-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        run(AssetsArgs { dir: dir.clone() }, false).unwrap();
        let top = std::fs::read_to_string(dir.join("man/sirius.1")).unwrap();
        assert!(
            top.starts_with(".ie") || top.contains(".TH sirius 1"),
            "{top}"
        );
        assert!(top.contains("/etc/default/sirius"), "FILES section: {top}");
        assert!(top.contains("serve"), "subcommands listed: {top}");
        let serve = std::fs::read_to_string(dir.join("man/sirius-serve.1")).unwrap();
        assert!(serve.contains("SIRIUS_LISTEN"), "{serve}");
        assert!(dir.join("man/sirius-user-add.1").exists());
        // The hidden command documents nothing.
        assert!(!dir.join("man/sirius-generate-assets.1").exists());
        let bash = std::fs::read_to_string(dir.join("completions/sirius.bash")).unwrap();
        assert!(bash.contains("complete -F") && bash.contains("serve"));
        let zsh = std::fs::read_to_string(dir.join("completions/_sirius")).unwrap();
        assert!(zsh.starts_with("#compdef sirius"));
        let fish = std::fs::read_to_string(dir.join("completions/sirius.fish")).unwrap();
        assert!(fish.contains("complete -c sirius"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
