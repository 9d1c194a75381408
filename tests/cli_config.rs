//! `sirius config` and the warning about unknown `SIRIUS_*` variables, as a
//! self-hoster meets them: the real binary with a real environment.

use std::process::{Command, Output};

use serde_json::Value;

fn sirius(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sirius"));
    cmd.args(args);
    // Only what the test sets: no SIRIUS_* or Twitter keys from outside.
    for (k, _) in std::env::vars() {
        if k.starts_with("SIRIUS_") || k.starts_with("TWITTER_") {
            cmd.env_remove(k);
        }
    }
    cmd.envs(env.iter().copied());
    cmd.output().unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The line of one setting in the text output.
fn line_of<'a>(text: &'a str, env: &str) -> &'a str {
    text.lines()
        .find(|l| l.split_whitespace().next() == Some(env))
        .unwrap_or_else(|| panic!("no {env} in\n{text}"))
}

#[test]
fn config_says_each_value_and_where_it_came_from() {
    let out = sirius(
        &["config", "--history", "50"],
        &[
            ("SIRIUS_LISTEN", "127.0.0.1:6000"),
            ("SIRIUS_DB", "/var/lib/sirius/sirius.db"),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let listen = line_of(&text, "SIRIUS_LISTEN");
    assert!(
        listen.contains("127.0.0.1:6000") && listen.ends_with("environment"),
        "{listen}"
    );
    let history = line_of(&text, "SIRIUS_HISTORY");
    assert!(
        history.contains("50") && history.ends_with("flag --history"),
        "{history}"
    );
    let hold = line_of(&text, "SIRIUS_HOLD_DAYS");
    assert!(hold.contains(" 7 ") && hold.ends_with("default"), "{hold}");
    let db = line_of(&text, "SIRIUS_DB");
    assert!(
        db.contains("/var/lib/sirius/sirius.db") && db.ends_with("environment"),
        "{db}"
    );
    let url = line_of(&text, "SIRIUS_PUBLIC_URL");
    assert!(url.contains("(not set)"), "{url}");
    assert!(line_of(&text, "SIRIUS_LOG").contains("info"));
    assert!(line_of(&text, "SIRIUS_NO_MDNS").contains("false"));

    // A flag beats the environment.
    let out = sirius(
        &["config", "--listen", "0.0.0.0:7000", "--json"],
        &[("SIRIUS_LISTEN", "127.0.0.1:6000")],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let rows: Vec<Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let listen = rows
        .iter()
        .find(|r| r["setting"] == "SIRIUS_LISTEN")
        .unwrap();
    assert_eq!(listen["value"], "0.0.0.0:7000");
    assert_eq!(listen["source"], "flag");
    assert_eq!(listen["flag"], "--listen");
    // Every setting of serve is listed, each once.
    let help = stdout(&sirius(&["serve", "--help"], &[]));
    for row in &rows {
        if let Some(flag) = row["flag"].as_str() {
            assert!(help.contains(flag), "{flag} is a serve flag");
        }
    }
    let mut names: Vec<&str> = rows
        .iter()
        .map(|r| r["setting"].as_str().unwrap())
        .collect();
    let n = names.len();
    names.dedup();
    assert_eq!(names.len(), n);
}

#[test]
fn secrets_are_never_printed() {
    // Whatever settings hold secrets (names with SECRET, PASSWORD or KEY):
    // set each to a known value; the value never appears.
    let rows: Vec<Value> = stdout(&sirius(&["config", "--json"], &[]))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let secret_names: Vec<String> = rows
        .iter()
        .map(|r| r["setting"].as_str().unwrap().to_string())
        .filter(|n| ["SECRET", "PASSWORD", "KEY"].iter().any(|w| n.contains(w)))
        .collect();
    for row in &rows {
        let name = row["setting"].as_str().unwrap();
        assert_eq!(
            row["secret"],
            secret_names.iter().any(|n| n == name),
            "{name}"
        );
    }
    let value = "s3cr3t-value-that-must-not-show";
    let env: Vec<(&str, &str)> = secret_names.iter().map(|n| (n.as_str(), value)).collect();
    let out = sirius(&["config"], &env);
    assert!(!stdout(&out).contains(value), "{}", stdout(&out));
    assert!(!stderr(&out).contains(value), "{}", stderr(&out));
    for name in &secret_names {
        assert!(line_of(&stdout(&out), name).contains("set"), "{name}");
    }
}

#[test]
fn settings_serve_would_refuse_are_an_error() {
    let out = sirius(&["config"], &[("SIRIUS_TIME_ZONE", "Mars/Olympus_Mons")]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("unknown time zone"),
        "{}",
        stderr(&out)
    );
    // Still prints what it found.
    assert!(line_of(&stdout(&out), "SIRIUS_TIME_ZONE").contains("Mars/Olympus_Mons"));
}

#[test]
fn a_mistyped_variable_is_a_warning_naming_the_right_one() {
    for args in [
        &["config"][..],
        &["inspect", "claim-code", "n5ry-p6x6-kth7-7hc4"][..],
    ] {
        let out = sirius(
            args,
            &[("SIRIUS_LISTN", "0.0.0.0:80"), ("SIRIUS_HOLD_DAYS", "3")],
        );
        assert!(out.status.success(), "{}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains("SIRIUS_LISTN"), "{args:?}: {err}");
        assert!(
            err.contains("did you mean SIRIUS_LISTEN"),
            "{args:?}: {err}"
        );
        // Known ones are not warned about.
        assert!(!err.contains("SIRIUS_HOLD_DAYS"), "{err}");
    }
    let clean = sirius(&["config"], &[("SIRIUS_LOG", "warn")]);
    assert!(
        !stderr(&clean).contains("not a Sirius setting"),
        "{}",
        stderr(&clean)
    );
}

#[test]
fn the_default_file_lists_every_setting_commented_out() {
    let out = sirius(
        &["config", "--default-file"],
        &[("SIRIUS_LISTEN", "1.2.3.4:5")],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let file = stdout(&out);
    // Independent of the environment it is generated in.
    assert!(file.contains("#SIRIUS_LISTEN=0.0.0.0:5002\n"), "{file}");
    assert!(!file.contains("1.2.3.4"));
    let rows: Vec<Value> = stdout(&sirius(&["config", "--json"], &[]))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for row in rows {
        let name = row["setting"].as_str().unwrap();
        assert!(file.contains(&format!("\n#{name}=")), "{name} missing");
    }
    // Nothing is set by it: every line is a comment or blank.
    assert!(file.lines().all(|l| l.is_empty() || l.starts_with('#')));
    // Read as a shell file (as the README suggests), it sets nothing.
    let sourced = Command::new("sh")
        .arg("-c")
        .arg("set -a; . /dev/stdin; env | grep -c '^SIRIUS_' || true")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .env_clear()
        .spawn()
        .and_then(|mut child| {
            use std::io::Write as _;
            child.stdin.take().unwrap().write_all(file.as_bytes())?;
            child.wait_with_output()
        })
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&sourced.stdout).trim(), "0");
}
