//! OAuth 1.0a request signing (RFC 5849), HMAC-SHA1 only — what Twitter's
//! sign-in speaks. Pure: strings in, strings out; the nonce and time are
//! the caller's ([`Signer::authorization`] takes them, so the published
//! worked examples can be reproduced exactly).
//!
//! * Percent-encoding is RFC 3986's: every byte of the UTF-8 text but the
//!   unreserved `A-Z a-z 0-9 - . _ ~` becomes `%XX` (upper-case hex), spaces
//!   included (`%20`, never `+`) — RFC 5849 §3.6.
//! * The signature base string is `METHOD&enc(base URL)&enc(parameters)`,
//!   where the base URL is scheme, host (both lower-case), the port only
//!   when it is not the scheme's default, and the path, without the query
//!   (§3.4.1.2); the parameters are every query and form-body pair plus the
//!   `oauth_*` protocol parameters except `oauth_signature`, each name and
//!   value encoded, sorted by name then value, joined as `n=v&n=v`
//!   (§3.4.1.3).
//! * The key is `enc(consumer secret)&enc(token secret)` (the token secret
//!   empty before there is a token), and the signature is the base64 of the
//!   HMAC-SHA1 of the base string under it (§3.4.2).

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;

/// Percent-encodes `s` as RFC 5849 §3.6 says (RFC 3986 unreserved kept).
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3 / 2);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The base string URI of `url` (§3.4.1.2): scheme and host lower-cased,
/// the default port (80 for http, 443 for https) left out, no query or
/// fragment. `None` when `url` is not an absolute http(s) URL.
pub fn base_url(url: &str) -> Option<String> {
    let uri: hyper::Uri = url.parse().ok()?;
    let scheme = uri.scheme_str()?.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    let host = uri.host()?.to_ascii_lowercase();
    let port = match uri.port_u16() {
        Some(p) if p != default_port => format!(":{p}"),
        _ => String::new(),
    };
    let path = match uri.path() {
        "" => "/",
        p => p,
    };
    Some(format!("{scheme}://{host}{port}{path}"))
}

/// The normalised parameters (§3.4.1.3.2): each name and value encoded,
/// sorted by encoded name, then encoded value, joined with `&`.
pub fn normalized_parameters(params: &[(&str, &str)]) -> String {
    let mut encoded: Vec<(String, String)> =
        params.iter().map(|(k, v)| (encode(k), encode(v))).collect();
    encoded.sort();
    encoded
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// The signature base string (§3.4.1): `method` upper-cased, the base
/// string URI of `url` (already without its query; see [`base_url`]),
/// and every parameter — query, form body and `oauth_*` alike, decoded.
pub fn base_string(method: &str, base_url: &str, params: &[(&str, &str)]) -> String {
    format!(
        "{}&{}&{}",
        method.to_ascii_uppercase(),
        encode(base_url),
        encode(&normalized_parameters(params))
    )
}

/// HMAC-SHA1 of `base_string` under `enc(consumer_secret)&enc(token_secret)`,
/// base64 (§3.4.2).
pub fn hmac_sha1(base_string: &str, consumer_secret: &str, token_secret: &str) -> String {
    let key = format!("{}&{}", encode(consumer_secret), encode(token_secret));
    let mut mac = <Hmac<Sha1> as KeyInit>::new_from_slice(key.as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(base_string.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// The client's credentials, and the token (with its secret) of the step.
#[derive(Clone, Copy)]
pub struct Signer<'a> {
    pub consumer_key: &'a str,
    pub consumer_secret: &'a str,
    /// The request token or the access token, with its secret; `None`
    /// when asking for a request token.
    pub token: Option<(&'a str, &'a str)>,
}

impl Signer<'_> {
    /// The `Authorization: OAuth …` header of a request to `url` (whose
    /// query pairs are `query`, decoded) with the extra protocol parameters
    /// `extra` (`oauth_callback`, `oauth_verifier`), at `timestamp` (unix
    /// seconds) with `nonce`. Every value in the header is encoded.
    pub fn authorization(
        &self,
        method: &str,
        base_url: &str,
        query: &[(&str, &str)],
        extra: &[(&str, &str)],
        timestamp: u64,
        nonce: &str,
    ) -> String {
        let timestamp = timestamp.to_string();
        let mut oauth: Vec<(&str, &str)> = vec![
            ("oauth_consumer_key", self.consumer_key),
            ("oauth_nonce", nonce),
            ("oauth_signature_method", "HMAC-SHA1"),
            ("oauth_timestamp", &timestamp),
            ("oauth_version", "1.0"),
        ];
        if let Some((token, _)) = self.token {
            oauth.push(("oauth_token", token));
        }
        oauth.extend_from_slice(extra);
        let mut all = oauth.clone();
        all.extend_from_slice(query);
        let token_secret = self.token.map(|t| t.1).unwrap_or("");
        let signature = hmac_sha1(
            &base_string(method, base_url, &all),
            self.consumer_secret,
            token_secret,
        );
        oauth.push(("oauth_signature", &signature));
        oauth.sort();
        let fields: Vec<String> = oauth
            .iter()
            .map(|(k, v)| format!("{}=\"{}\"", encode(k), encode(v)))
            .collect();
        format!("OAuth {}", fields.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_keeps_only_the_unreserved_characters() {
        assert_eq!(
            encode("Hello Ladies + Gentlemen, a signed OAuth request!"),
            "Hello%20Ladies%20%2B%20Gentlemen%2C%20a%20signed%20OAuth%20request%21"
        );
        assert_eq!(encode("Az09-._~"), "Az09-._~");
        assert_eq!(encode("☃"), "%E2%98%83");
        assert_eq!(encode("a=b&c/d%"), "a%3Db%26c%2Fd%25");
    }

    #[test]
    fn base_urls_are_normalised() {
        assert_eq!(
            base_url("HTTP://Example.COM:80/r%20v/X?id=123").as_deref(),
            Some("http://example.com/r%20v/X")
        );
        assert_eq!(
            base_url("https://www.example.net:8080/?q=1").as_deref(),
            Some("https://www.example.net:8080/")
        );
        assert_eq!(
            base_url("https://api.twitter.com:443/oauth/request_token").as_deref(),
            Some("https://api.twitter.com/oauth/request_token")
        );
        assert_eq!(base_url("ftp://example.com/x"), None);
        assert_eq!(base_url("/relative"), None);
    }

    /// RFC 5849 §3.4.1.1: the example request's base string, byte for
    /// byte (duplicate names sorted by value, `%`, `=`, `@` and spaces in
    /// names and values). Its signature under the §3.4.1 example's
    /// client and token secrets (`j49sk3j29djd`, `dh893hdasih9`) is
    /// checked too (the value `openssl dgst -sha1 -hmac` gives).
    #[test]
    fn rfc_5849_base_string_example() {
        let params = [
            // The query of `/request?b5=%3D%253D&a3=a&c%40=&a2=r%20b`, decoded.
            ("b5", "=%3D"),
            ("a3", "a"),
            ("c@", ""),
            ("a2", "r b"),
            // The form body `c2&a3=2+q`, decoded.
            ("c2", ""),
            ("a3", "2 q"),
            ("oauth_consumer_key", "9djdj82h48djs9d2"),
            ("oauth_token", "kkk9d7dh3k39sjv7"),
            ("oauth_signature_method", "HMAC-SHA1"),
            ("oauth_timestamp", "137131201"),
            ("oauth_nonce", "7d8f3e4a"),
        ];
        let url = base_url("http://example.com/request?b5=%3D%253D&a3=a&c%40=&a2=r%20b").unwrap();
        let base = base_string("post", &url, &params);
        assert_eq!(
            base,
            "POST&http%3A%2F%2Fexample.com%2Frequest&a2%3Dr%2520b%26a3%3D2%2520q%26a3%3Da%26b5%3D%253D%25253D%26c%2540%3D%26c2%3D%26oauth_consumer_key%3D9djdj82h48djs9d2%26oauth_nonce%3D7d8f3e4a%26oauth_signature_method%3DHMAC-SHA1%26oauth_timestamp%3D137131201%26oauth_token%3Dkkk9d7dh3k39sjv7"
        );
        assert_eq!(
            hmac_sha1(&base, "j49sk3j29djd", "dh893hdasih9"),
            "r6/TJjbCOr97/+UU0NsvSne7s5g="
        );
    }

    /// Twitter's "Creating a signature" worked example (POST
    /// statuses/update.json): the base string and the signature, with the
    /// published keys, nonce and time.
    #[test]
    fn twitter_creating_a_signature_example() {
        let params = [
            (
                "status",
                "Hello Ladies + Gentlemen, a signed OAuth request!",
            ),
            ("include_entities", "true"),
            ("oauth_consumer_key", "xvz1evFS4wEEPTGEFPHBog"),
            ("oauth_nonce", "kYjzVBB8Y0ZFabxSWbWovY3uYSQ2pTgmZeNu2VS4cg"),
            ("oauth_signature_method", "HMAC-SHA1"),
            ("oauth_timestamp", "1318622958"),
            (
                "oauth_token",
                "370773112-GmHxMAgYyLbNEtIKZeRNFsMKPR9EyMZeS9weJAEb",
            ),
            ("oauth_version", "1.0"),
        ];
        let base = base_string(
            "POST",
            "https://api.twitter.com/1.1/statuses/update.json",
            &params,
        );
        assert_eq!(
            base,
            "POST&https%3A%2F%2Fapi.twitter.com%2F1.1%2Fstatuses%2Fupdate.json&include_entities%3Dtrue%26oauth_consumer_key%3Dxvz1evFS4wEEPTGEFPHBog%26oauth_nonce%3DkYjzVBB8Y0ZFabxSWbWovY3uYSQ2pTgmZeNu2VS4cg%26oauth_signature_method%3DHMAC-SHA1%26oauth_timestamp%3D1318622958%26oauth_token%3D370773112-GmHxMAgYyLbNEtIKZeRNFsMKPR9EyMZeS9weJAEb%26oauth_version%3D1.0%26status%3DHello%2520Ladies%2520%252B%2520Gentlemen%252C%2520a%2520signed%2520OAuth%2520request%2521"
        );
        assert_eq!(
            hmac_sha1(
                &base,
                "kAcSOqF21Fu85e7zjz7ZN2U4ZRhfV3WpwPAoE3Z7kBw",
                "LswwdoUaIvS8ltyTt5jkRh4J50vUPVVHtR2YPi5kE"
            ),
            "hCtSmYh+iHYCEqBWrE7C7hYmtUk="
        );
    }

    /// The request-token and access-token examples of Twitter's earlier
    /// OAuth documentation (dev.twitter.com/docs/auth/oauth): the two
    /// steps of sign-in, through the header builder.
    #[test]
    fn twitter_sign_in_steps_example() {
        let consumer_secret = "MCD8BKwGdgPHvAuvgvz4EQpqDAtx89grbuNMRd7Eh98";
        let request = Signer {
            consumer_key: "GDdmIQH6jhtmLUypg82g",
            consumer_secret,
            token: None,
        }
        .authorization(
            "POST",
            "https://api.twitter.com/oauth/request_token",
            &[],
            &[(
                "oauth_callback",
                "http://localhost:3005/the_dance/process_callback?service_provider_id=11",
            )],
            1272323042,
            "QP70eNmVz8jvdPevU3oJD2AfF7R7odC2XJcn4XlZJqk",
        );
        assert!(
            request.contains("oauth_signature=\"8wUi7m5HFQy76nowoCThusfgB%2BQ%3D\""),
            "{request}"
        );
        assert!(request.starts_with("OAuth oauth_callback=\"http%3A%2F%2Flocalhost%3A3005%2F"));
        let access = Signer {
            consumer_key: "GDdmIQH6jhtmLUypg82g",
            consumer_secret,
            token: Some((
                "8ldIZyxQeVrFZXFOZH5tAwj6vzJYuLQpl0WUEYtWc",
                "x6qpRnlEmW9JbQn4PQVVeVG8ZLPEx6A0TOebgwcuA",
            )),
        }
        .authorization(
            "POST",
            "https://api.twitter.com/oauth/access_token",
            &[],
            &[(
                "oauth_verifier",
                "pDNg57prOHapMbhv25RNf75lVRd6JDsni1AJJIDYoTY",
            )],
            1272323047,
            "9zWH6qe0qG7Lc1telCn7FhUbLyVdjEaL3MO5uHxn8",
        );
        assert!(
            access.contains("oauth_signature=\"PUw%2FdHA4fnlJYM6RhXk5IU%2F0fCc%3D\""),
            "{access}"
        );
        assert!(access.contains("oauth_token=\"8ldIZyxQeVrFZXFOZH5tAwj6vzJYuLQpl0WUEYtWc\""));
    }
}
