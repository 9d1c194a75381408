//! The `inspect` and `render` tools, run as a person runs them: the real
//! binary, real files, standard input, exit codes.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use image::{DynamicImage, ImageFormat, Rgba, RgbaImage};
use serde_json::Value;
use sirius::protocol::commands::decode_device_command;
use sirius::raster::{decode_image, raw_page_from_image};

fn sirius(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sirius"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    // A tool that needs no input may exit before reading it (broken pipe).
    let _ = input.write_all(stdin.unwrap_or_default());
    drop(input);
    child.wait_with_output().unwrap()
}

fn json_lines(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sirius-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write_png(path: &Path, img: &RgbaImage) {
    DynamicImage::ImageRgba8(img.clone())
        .save_with_format(path, ImageFormat::Png)
        .unwrap();
}

#[test]
fn claim_codes_every_input_answered_exit_1_on_any_invalid() {
    let out = sirius(
        &[
            "inspect",
            "claim-code",
            "--json",
            "N5RY P6X6 KTH7 7HC4",
            "n5ry-p6x6-kth7-7hc5",
            "-",
        ],
        Some(b"6xwh-441j-8115-zyrh\nabcd\n"),
    );
    assert_eq!(out.status.code(), Some(1));
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 4, "{lines:?}");
    assert_eq!(lines[0]["code"], "n5ry-p6x6-kth7-7hc4");
    assert_eq!(lines[0]["hardware_xor"], 7586148);
    assert_eq!(lines[0]["secret"], "eb1ba696a0");
    assert_eq!(lines[0]["link_key"], "3WIhM48TFaHGsQPZPpTF+Q==");
    assert_eq!(lines[1]["input"], "n5ry-p6x6-kth7-7hc5");
    assert!(
        lines[1]["error"]
            .as_str()
            .unwrap()
            .contains("probably a typo")
    );
    assert_eq!(lines[2]["link_key"], "F7D9bmztHV32+WJScGZR0g==");
    assert_eq!(lines[3]["input"], "abcd");
    let err = lines[3]["error"].as_str().unwrap();
    assert!(err.contains("'a'") && err.contains("position 1"), "{err}");

    let ok = sirius(&["inspect", "claim-code", "n5ry-p6x6-kth7-7hc4"], None);
    assert_eq!(ok.status.code(), Some(0));
    let text = String::from_utf8_lossy(&ok.stdout);
    assert!(
        text.contains("7586148") && text.contains("eb1ba696a0"),
        "{text}"
    );
}

#[test]
fn claim_code_encoding() {
    let out = sirius(
        &[
            "inspect",
            "claim-code",
            "--xor",
            "74565",
            "--secret",
            "6789abcdef",
            "--json",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(json_lines(&out)[0]["code"], "c1zp-g2ec-sqqh-28t5");
    let bad = sirius(
        &[
            "inspect",
            "claim-code",
            "--xor",
            "16777216",
            "--secret",
            "00",
            "--json",
        ],
        None,
    );
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        json_lines(&bad)[0]["error"]
            .as_str()
            .unwrap()
            .contains("24 bits")
    );
}

#[test]
fn addresses() {
    let out = sirius(
        &[
            "inspect",
            "address",
            "--json",
            "000d6f000273ce0b",
            "CC18AFF27ED5CF3D",
            "nope",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    let lines = json_lines(&out);
    assert_eq!(lines[0]["device_address"], "000d6f000273ce0b");
    assert_eq!(lines[0]["hardware_xor"], 7586148);
    assert_eq!(lines[1]["device_address"], "cc18aff27ed5cf3d");
    assert_eq!(lines[1]["hardware_xor"], 15444370);
    assert_eq!(lines[2]["input"], "nope");
}

#[test]
fn messages_one_line_out_per_line_in() {
    let mut stream = String::new();
    let captures = fixtures().join("captures");
    let mut names: Vec<_> = std::fs::read_dir(&captures)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    for path in &names {
        let v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        stream.push_str(&v.to_string());
        stream.push('\n');
    }
    stream.push_str("{\"type\": \"DeviceEvent\", \"bridge_address\": \"000d6f0001b3719d\", \"device_address\": \"000d6f000273ce0b\", \"binary_payload\": \"AQAAAAAABAAAABQA\"}\n");
    stream.push_str("not json at all\n");
    stream.push_str("{\"type\": \"Telepathy\"}\n");
    let out = sirius(
        &["inspect", "message", "--json", "-"],
        Some(stream.as_bytes()),
    );
    assert_eq!(out.status.code(), Some(1), "a malformed line means exit 1");
    let lines = json_lines(&out);
    assert_eq!(lines.len(), names.len() + 3);
    let n = names.len();
    assert_eq!(lines[n]["kind"], "malformed");
    assert_eq!(lines[n]["bridge_address"], "000d6f0001b3719d");
    assert_eq!(lines[n]["device_address"], "000d6f000273ce0b");
    assert!(lines[n]["error"].as_str().unwrap().contains("header"));
    assert_eq!(lines[n + 1]["kind"], "malformed");
    assert_eq!(lines[n + 2]["kind"], "unknown");
    assert!(
        lines[n + 2]["reason"]
            .as_str()
            .unwrap()
            .contains("Telepathy")
    );
    let kinds: Vec<&str> = lines[..n]
        .iter()
        .map(|l| l["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"did_power_on") && kinds.contains(&"bridge_log"));

    // A pretty-printed capture file is one message.
    let one = sirius(
        &[
            "inspect",
            "message",
            "--json",
            captures
                .join("DeviceEvent-did_power_on.json")
                .to_str()
                .unwrap(),
        ],
        None,
    );
    assert_eq!(one.status.code(), Some(0));
    let l = json_lines(&one);
    assert_eq!(l.len(), 1);
    assert_eq!(l[0]["firmware_build_version"], "v0.5-12-g26e82f0");
    assert_eq!(l[0]["loader_build_version"], "v0.5-0-g14859cb");
    assert_eq!(l[0]["reset_cause"], "Power on");
    assert_eq!(l[0]["protocol_version"], 4);
}

#[test]
fn payloads_decoded_and_written_as_pngs() {
    let vectors: Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("vectors.json")).unwrap())
            .unwrap();
    let quip = vectors["device_commands"]["set_quip (3 images)"]
        .as_str()
        .unwrap();
    let dir = temp_dir("payload");
    let command = format!(
        "{{\"type\": \"DeviceCommand\", \"bridge_address\": \"b\", \"device_address\": \"d\", \"command_id\": 1, \"timestamp\": \"0\", \"binary_payload\": \"{quip}\"}}\n{quip}\nAAAA\n"
    );
    let out = sirius(
        &[
            "inspect",
            "payload",
            "--json",
            "--width",
            "2",
            "-o",
            dir.to_str().unwrap(),
        ],
        Some(command.as_bytes()),
    );
    assert_eq!(out.status.code(), Some(1), "the last line is not a payload");
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 3);
    for l in &lines[..2] {
        assert_eq!(l["command"], "set_quip");
        assert_eq!(l["file_id"], 1);
        assert_eq!(l["pages"].as_array().unwrap().len(), 3);
        assert_eq!(l["pages"][0]["width"], 2);
        assert_eq!(l["pages"][0]["height"], 2);
    }
    assert!(lines[2]["error"].as_str().unwrap().contains("truncated"));
    for n in 1..=3 {
        let png = std::fs::read(dir.join(format!("1-{n}.png"))).unwrap();
        let page = raw_page_from_image(&decode_image(&png).unwrap()).unwrap();
        assert!(!page.is_black(0, 0) && page.is_black(1, 0));
        assert!(page.is_black(0, 1) && !page.is_black(1, 1));
    }
}

fn black_and_white_384(height: u32) -> RgbaImage {
    RgbaImage::from_fn(384, height, |x, y| {
        // The first pixel is black: the case the earlier server got wrong.
        if (x / 3 + y / 2) % 4 == 0 || (x * x + y) % 11 == 0 {
            Rgba([0, 0, 0, 255])
        } else {
            Rgba([255, 255, 255, 255])
        }
    })
}

#[test]
fn render_black_and_white_comes_out_pixel_for_pixel() {
    let dir = temp_dir("render");
    let img = black_and_white_384(97);
    assert_eq!(img.get_pixel(0, 0).0, [0, 0, 0, 255]);
    let input = dir.join("in.png");
    write_png(&input, &img);
    let preview = dir.join("preview.png");
    let out = sirius(
        &[
            "render",
            "--image",
            input.to_str().unwrap(),
            "--command",
            "set_delivery_and_print_no_face",
            "--command-id",
            "42",
            "--device",
            "000d6f000273ce0b",
            "--bridge",
            "000d6f0001b3719d",
            "-o",
            preview.to_str().unwrap(),
            "--json",
        ],
        None,
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 1);
    let cmd = &lines[0];
    let keys: Vec<&String> = cmd.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "type",
            "bridge_address",
            "device_address",
            "command_id",
            "timestamp",
            "binary_payload"
        ]
    );
    assert_eq!(cmd["timestamp"], "0");
    assert_eq!(cmd["command_id"], 42);
    let decoded = decode_device_command(&cmd.to_string(), 384).unwrap();
    assert_eq!(decoded.payload.file_id, 42);
    assert_eq!(
        decoded.payload.command.name(),
        "set_delivery_and_print_no_face"
    );
    let page = &decoded.payload.pages[0];
    assert_eq!((page.width(), page.height()), (384, 97));
    for (x, y, p) in img.enumerate_pixels() {
        assert_eq!(page.is_black(x, y), p.0[0] == 0, "pixel ({x}, {y})");
    }
    // The preview is exactly what was encoded.
    let shown =
        raw_page_from_image(&decode_image(&std::fs::read(&preview).unwrap()).unwrap()).unwrap();
    assert_eq!(&shown, page);
}

#[test]
fn render_raw_reproduces_the_vectors() {
    let vectors: Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("vectors.json")).unwrap())
            .unwrap();
    let dir = temp_dir("raw");
    let tiny = dir.join("2x2.png");
    // Rows "10", "01" with 1 = white.
    let img = RgbaImage::from_fn(2, 2, |x, y| {
        if x == y {
            Rgba([255, 255, 255, 255])
        } else {
            Rgba([0, 0, 0, 255])
        }
    });
    write_png(&tiny, &img);
    let t = tiny.to_str().unwrap();
    for (key, expected) in vectors["device_commands"].as_object().unwrap() {
        if key == "about" {
            continue;
        }
        let name = key.split(' ').next().unwrap();
        let count = match name {
            "set_personality_with_message" => 5,
            "set_personality" => 4,
            "set_quip" => 3,
            _ => 1,
        };
        let mut args = vec!["render", "--raw", "--command", name, "--json"];
        args.extend([
            "--bridge",
            "some-bridge-address",
            "--device",
            "some-device-address",
        ]);
        for _ in 0..count {
            args.extend(["--image", t]);
        }
        let out = sirius(&args, None);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let cmd = &json_lines(&out)[0];
        assert_eq!(cmd["binary_payload"], *expected, "{name}");
        assert_eq!(cmd["bridge_address"], "some-bridge-address");
    }

    // Wrong image count, grey pixels and unreadable files are errors.
    let wrong = sirius(
        &["render", "--raw", "--command", "set_quip", "--image", t],
        None,
    );
    assert_eq!(wrong.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("takes 3 image"));
    let grey = dir.join("grey.png");
    write_png(
        &grey,
        &RgbaImage::from_pixel(4, 4, Rgba([100, 100, 100, 255])),
    );
    let out = sirius(
        &["render", "--raw", "--image", grey.to_str().unwrap()],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("neither pure black nor pure white"));
    let text = dir.join("notes.txt");
    std::fs::write(&text, "hello").unwrap();
    let out = sirius(
        &["render", "--image", text.to_str().unwrap(), "--json"],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        json_lines(&out)[0]["error"]
            .as_str()
            .unwrap()
            .contains("PNG, JPEG, GIF or WebP")
    );
    let zero = sirius(&["render", "--image", t, "--command-id", "0"], None);
    assert_eq!(zero.status.code(), Some(2), "a usage error");
}

#[test]
fn render_sniffs_the_format_not_the_name() {
    let dir = temp_dir("sniff");
    let img = black_and_white_384(10);
    // A PNG named .jpg, read from standard input too.
    let path = dir.join("really-a-png.jpg");
    write_png(&path, &img);
    let bytes = std::fs::read(&path).unwrap();
    for args in [
        vec!["render", "--image", path.to_str().unwrap(), "--json"],
        vec!["render", "--image", "-", "--json"],
    ] {
        let out = sirius(&args, Some(&bytes));
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let cmd = &json_lines(&out)[0];
        let decoded = decode_device_command(&cmd.to_string(), 384).unwrap();
        assert_eq!(decoded.payload.pages[0].height(), 10);
    }
}

#[test]
fn render_html_text_and_bare_through_blitz() {
    let dir = std::env::temp_dir().join(format!("sirius-render-html-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let html = dir.join("m.html");
    std::fs::write(&html, "<p>Hello <b>there</b></p><ol><li>one</li></ol>").unwrap();
    let preview = |name: &str| dir.join(name);
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_sirius"))
            .arg("render")
            .args(args)
            .output()
            .unwrap()
    };
    let at = [
        "--at",
        "2026-11-24T09:05:00Z",
        "--time-zone",
        "Europe/London",
    ];
    let a = preview("a.png");
    let out = run(&[
        &[
            "--html",
            html.to_str().unwrap(),
            "--from",
            "Ada",
            "-o",
            a.to_str().unwrap(),
        ][..],
        &at[..],
    ]
    .concat());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cmd: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(cmd["type"], "DeviceCommand");
    // The same message again, as unix seconds: the same preview.
    let b = preview("b.png");
    let out = run(&[
        &[
            "--html",
            html.to_str().unwrap(),
            "--from",
            "Ada",
            "-o",
            b.to_str().unwrap(),
        ][..],
        &["--at", "1795511100", "--time-zone", "Europe/London"][..],
    ]
    .concat());
    assert!(out.status.success());
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    let page = sirius::raster::decode_image(&std::fs::read(&a).unwrap()).unwrap();
    assert_eq!(page.width(), 384);
    // Bare: no header, no 80 px margin, so shorter.
    let c = preview("c.png");
    let out = run(&[
        "--html",
        html.to_str().unwrap(),
        "--bare",
        "-o",
        c.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let bare = sirius::raster::decode_image(&std::fs::read(&c).unwrap()).unwrap();
    assert!(bare.height() + 80 < page.height());
    // Text and html together: two pages stacked (html first).
    let d = preview("d.png");
    let out = run(&[
        &[
            "--html",
            html.to_str().unwrap(),
            "--text",
            "hi",
            "-o",
            d.to_str().unwrap(),
        ][..],
        &at[..],
    ]
    .concat());
    assert!(out.status.success());
    let both = sirius::raster::decode_image(&std::fs::read(&d).unwrap()).unwrap();
    assert!(both.height() > page.height() + 100);
    // A bad time is refused with a clear message.
    let out = run(&["--text", "x", "--at", "yesterday"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("RFC 3339"));
    std::fs::remove_dir_all(dir).unwrap();
}
