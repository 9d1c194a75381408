//! A small HTTP browser for the web app's tests: real requests over TCP
//! (through [`super::http`]), cookies kept between them, forms posted with
//! the page's CSRF token and a same-origin `Origin`, as a browser would.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;

use sirius::server::RunningServer;

/// One answer: status, headers (lowercased names), body as text.
#[derive(Debug, Clone)]
pub struct Page {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Page {
    pub fn header(&self, name: &str) -> Option<&str> {
        super::header(&self.headers, name)
    }

    /// Every `Set-Cookie` header.
    pub fn set_cookies(&self) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k == "set-cookie")
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// Where a redirect goes.
    pub fn location(&self) -> Option<&str> {
        self.header("location")
    }

    /// The value of the first `<input name="csrf" value="…">`.
    pub fn csrf(&self) -> Option<String> {
        let at = self.body.find("name=\"csrf\" value=\"")?;
        let rest = &self.body[at + "name=\"csrf\" value=\"".len()..];
        Some(rest[..rest.find('"')?].to_string())
    }

    pub fn contains(&self, text: &str) -> bool {
        self.body.contains(text)
    }
}

/// URL-encodes a form value.
pub fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else if b == b' ' {
            out.push('+');
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub fn form_body(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// A browser: an address and a cookie jar.
#[derive(Debug, Clone)]
pub struct Browser {
    pub addr: SocketAddr,
    pub cookies: BTreeMap<String, String>,
    /// The last CSRF token seen on a page.
    pub csrf: Option<String>,
}

impl Browser {
    pub fn new(s: &RunningServer) -> Browser {
        Browser {
            addr: s.addr,
            cookies: BTreeMap::new(),
            csrf: None,
        }
    }

    fn cookie_header(&self) -> Option<String> {
        (!self.cookies.is_empty()).then(|| {
            self.cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; ")
        })
    }

    /// Any request; cookies sent and kept.
    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Page {
        let cookie = self.cookie_header();
        let mut all: Vec<(&str, &str)> = headers.to_vec();
        if let Some(c) = &cookie {
            all.push(("Cookie", c));
        }
        let (status, headers, body) = super::http(self.addr, method, path, &all, body).await;
        let page = Page {
            status,
            headers,
            // minijinja escapes '/' in HTML; a browser reads it as '/'.
            body: String::from_utf8_lossy(&body).replace("&#x2f;", "/"),
        };
        for sc in page.set_cookies() {
            let first = sc.split(';').next().unwrap_or("");
            let Some((name, value)) = first.split_once('=') else {
                continue;
            };
            let gone = value.is_empty() || sc.to_ascii_lowercase().contains("max-age=0");
            if gone {
                self.cookies.remove(name.trim());
            } else {
                self.cookies
                    .insert(name.trim().to_string(), value.trim().to_string());
            }
        }
        if let Some(t) = page.csrf() {
            self.csrf = Some(t);
        }
        page
    }

    pub async fn get(&mut self, path: &str) -> Page {
        self.request("GET", path, &[], b"").await
    }

    /// Posts a form as a browser on this site would: `Origin` of the
    /// server itself, `Sec-Fetch-Site: same-origin`, and the last CSRF
    /// token seen (unless `fields` has one).
    pub async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        let mut fields: Vec<(&str, &str)> = fields.to_vec();
        let token = self.csrf.clone().unwrap_or_default();
        if !fields.iter().any(|(k, _)| *k == "csrf") {
            fields.push(("csrf", &token));
        }
        self.post_raw(path, &fields, true).await
    }

    /// Posts a `multipart/form-data` form (the compose page's), with the
    /// page's token and the headers a browser adds; `file` is an
    /// `(field, filename, bytes)` upload.
    pub async fn post_multipart(
        &mut self,
        path: &str,
        fields: &[(&str, &str)],
        file: Option<(&str, &str, &[u8])>,
    ) -> Page {
        let boundary = "----siriustestboundary7MA4YWxkTrZu0gW";
        let mut body: Vec<u8> = Vec::new();
        let token = self.csrf.clone().unwrap_or_default();
        let mut all: Vec<(&str, &str)> = fields.to_vec();
        if !all.iter().any(|(k, _)| *k == "csrf") {
            all.push(("csrf", &token));
        }
        for (k, v) in all {
            body.extend_from_slice(
                format!(
                    "--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n"
                )
                .as_bytes(),
            );
        }
        if let Some((field, filename, bytes)) = file {
            body.extend_from_slice(
                format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n")
                    .as_bytes(),
            );
            body.extend_from_slice(bytes);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        let origin = format!("http://{}", self.addr);
        let content_type = format!("multipart/form-data; boundary={boundary}");
        let headers = [
            ("Content-Type", content_type.as_str()),
            ("Origin", origin.as_str()),
            ("Sec-Fetch-Site", "same-origin"),
        ];
        self.request("POST", path, &headers, &body).await
    }

    /// Posts exactly `fields`, with (`same_origin`) or without the
    /// headers a browser adds.
    pub async fn post_raw(
        &mut self,
        path: &str,
        fields: &[(&str, &str)],
        same_origin: bool,
    ) -> Page {
        let origin = format!("http://{}", self.addr);
        let mut headers = vec![("Content-Type", "application/x-www-form-urlencoded")];
        if same_origin {
            headers.push(("Origin", origin.as_str()));
            headers.push(("Sec-Fetch-Site", "same-origin"));
        }
        let body = form_body(fields);
        self.request("POST", path, &headers, body.as_bytes()).await
    }
}

/// Makes the first account (an administrator) on a fresh server and
/// returns its signed-in browser.
pub async fn first_admin(s: &RunningServer, username: &str, password: &str) -> Browser {
    let mut b = Browser::new(s);
    let page = b.get("/").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.contains("Create the first account"), "{}", page.body);
    let done = b
        .post("/signup", &[("username", username), ("password", password)])
        .await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert!(b.cookies.contains_key("sirius_session"));
    b
}

/// Signs up on an open-signup server on a new browser, signed in after.
pub async fn sign_up(s: &RunningServer, username: &str, password: &str) -> Browser {
    let mut b = Browser::new(s);
    b.get("/signup").await;
    b.post("/signup", &[("username", username), ("password", password)])
        .await;
    b
}

/// Signs in with a username and password on a new browser.
pub async fn sign_in(s: &RunningServer, username: &str, password: &str) -> Browser {
    let mut b = Browser::new(s);
    let page = b.get("/login").await;
    assert_eq!(page.status, 200, "{}", page.body);
    let done = b
        .post("/login", &[("username", username), ("password", password)])
        .await;
    assert_eq!(done.status, 303, "{}", done.body);
    b.get("/").await;
    b
}
