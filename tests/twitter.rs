//! "Sign in with Twitter" end to end: the real server (port 0, a real
//! SQLite file) against a fake Twitter — a real HTTP server on 127.0.0.1
//! written here — that implements the four OAuth 1.0a endpoints the way
//! Twitter does and rejects any request whose HMAC-SHA1 signature
//! (computed here, independently of the server's code, from the consumer
//! secret and the token secret) is wrong, whose nonce was seen before, or
//! whose timestamp is more than 5 minutes off.
//!
//! A test browser (cookies, CSRF tokens) clicks the buttons; "signing in at
//! Twitter" is the fake's `/oauth/authenticate` sending it back to the
//! server's callback as the user the test chose.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use common::browser::{Browser, Page, first_admin, sign_in, sign_up};
use common::*;
use hmac::{Hmac, KeyInit, Mac};
use sirius::server::{RunningServer, ServeConfig, start};
use sirius::web::app::twitter::TwitterConfig;
use sirius::web::app::{SignupPolicy, WebConfig};

const CONSUMER_KEY: &str = "sirius-test-consumer-key";
const CONSUMER_SECRET: &str = "sirius test consumer secret/with+odd&chars";

// ---------------------------------------------------------------------
// The test's own OAuth 1.0a signature check (RFC 5849), independent of
// the server's implementation.

fn pct(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn unpct(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let Some(v) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

fn signature(
    method: &str,
    url: &str,
    params: &[(String, String)],
    consumer_secret: &str,
    token_secret: &str,
) -> String {
    let mut pairs: Vec<(String, String)> = params.iter().map(|(k, v)| (pct(k), pct(v))).collect();
    pairs.sort();
    let joined = pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let base = format!("{method}&{}&{}", pct(url), pct(&joined));
    let key = format!("{}&{}", pct(consumer_secret), pct(token_secret));
    let mut mac = <Hmac<sha1::Sha1> as KeyInit>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(base.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// The `key="value"` pairs of an `Authorization: OAuth …` header, decoded.
fn oauth_params(header: &str) -> Option<BTreeMap<String, String>> {
    let rest = header.strip_prefix("OAuth ")?;
    let mut out = BTreeMap::new();
    for part in rest.split(',') {
        let (k, v) = part.trim().split_once('=')?;
        let v = v.strip_prefix('"')?.strip_suffix('"')?;
        out.insert(unpct(k), unpct(v));
    }
    Some(out)
}

fn query_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (unpct(k), unpct(v))
        })
        .collect()
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

// ---------------------------------------------------------------------
// The fake Twitter.

struct RequestToken {
    secret: String,
    callback: String,
    verifier: Option<String>,
    user: Option<(String, String)>,
}

#[derive(Default)]
struct FakeState {
    nonces: HashSet<String>,
    request_tokens: HashMap<String, RequestToken>,
    access_tokens: HashMap<String, (String, String, String)>,
    /// Who "signs in at Twitter" next: (id, screen name).
    next_user: (String, String),
    /// Endpoints that accepted a signed call, in order.
    accepted: Vec<&'static str>,
    /// Why calls were refused.
    rejected: Vec<String>,
    /// The last accepted signed request: (method, path and query, Authorization).
    last: Option<(String, String, String)>,
}

struct FakeTwitter {
    addr: SocketAddr,
    /// The secret the fake believes the app has.
    consumer_secret: String,
    state: Mutex<FakeState>,
}

fn token() -> String {
    let bytes: [u8; 18] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn refuse(why: String) -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [("content-type", "application/json")],
        format!(r#"{{"errors":[{{"code":32,"message":"Could not authenticate you. ({why})"}}]}}"#),
    )
        .into_response()
}

impl FakeTwitter {
    async fn start(consumer_secret: &str) -> Arc<FakeTwitter> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let fake = Arc::new(FakeTwitter {
            addr: listener.local_addr().unwrap(),
            consumer_secret: consumer_secret.to_string(),
            state: Mutex::new(FakeState::default()),
        });
        let app = axum::Router::new()
            .route("/oauth/request_token", axum::routing::post(request_token))
            .route("/oauth/authenticate", axum::routing::get(authenticate))
            .route("/oauth/access_token", axum::routing::post(access_token))
            .route(
                "/1.1/account/verify_credentials.json",
                axum::routing::get(verify_credentials),
            )
            .with_state(Arc::clone(&fake));
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        fake
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn login_as(&self, id: &str, screen_name: &str) {
        self.state.lock().unwrap().next_user = (id.into(), screen_name.into());
    }

    fn accepted(&self) -> Vec<&'static str> {
        self.state.lock().unwrap().accepted.clone()
    }

    fn rejected(&self) -> Vec<String> {
        self.state.lock().unwrap().rejected.clone()
    }

    /// Checks a signed request: the consumer key, the method, the time,
    /// a fresh nonce and the signature with the secret of its
    /// `oauth_token` (`token_secret` looks it up; `Some("")` for none).
    /// Records what it accepted and refused. Returns the OAuth parameters.
    #[allow(clippy::result_large_err)] // the refusal is the answer
    fn check(
        &self,
        endpoint: &'static str,
        method: &Method,
        uri: &axum::http::Uri,
        headers: &HeaderMap,
        token_secret: impl FnOnce(&FakeState, Option<&str>) -> Option<String>,
    ) -> Result<BTreeMap<String, String>, Response> {
        let mut st = self.state.lock().unwrap();
        match self.verify(&st, method, uri, headers, token_secret) {
            Ok((oauth, header)) => {
                st.nonces.insert(oauth["oauth_nonce"].clone());
                st.accepted.push(endpoint);
                st.last = Some((
                    method.to_string(),
                    uri.path_and_query().unwrap().to_string(),
                    header,
                ));
                Ok(oauth)
            }
            Err(why) => {
                st.rejected.push(format!("{endpoint}: {why}"));
                Err(refuse(why))
            }
        }
    }

    fn verify(
        &self,
        st: &FakeState,
        method: &Method,
        uri: &axum::http::Uri,
        headers: &HeaderMap,
        token_secret: impl FnOnce(&FakeState, Option<&str>) -> Option<String>,
    ) -> Result<(BTreeMap<String, String>, String), String> {
        let header = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .ok_or("no Authorization header")?
            .to_string();
        let oauth = oauth_params(&header).ok_or(format!("not an OAuth header: {header}"))?;
        if oauth.get("oauth_consumer_key").map(String::as_str) != Some(CONSUMER_KEY) {
            return Err("wrong consumer key".into());
        }
        if oauth.get("oauth_signature_method").map(String::as_str) != Some("HMAC-SHA1") {
            return Err("not HMAC-SHA1".into());
        }
        if oauth.get("oauth_version").is_some_and(|v| v != "1.0") {
            return Err("not version 1.0".into());
        }
        let timestamp: u64 = oauth
            .get("oauth_timestamp")
            .and_then(|t| t.parse().ok())
            .ok_or("no timestamp")?;
        if timestamp.abs_diff(unix_now()) > 300 {
            return Err("timestamp more than 5 minutes off".into());
        }
        let nonce = oauth
            .get("oauth_nonce")
            .filter(|n| !n.is_empty())
            .ok_or("no nonce")?;
        if st.nonces.contains(nonce) {
            return Err("nonce used before".into());
        }
        let secret = token_secret(st, oauth.get("oauth_token").map(String::as_str))
            .ok_or("unknown token")?;
        let mut params: Vec<(String, String)> = oauth
            .iter()
            .filter(|(k, _)| *k != "oauth_signature")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        params.extend(query_pairs(uri.query().unwrap_or("")));
        let url = format!("http://{}{}", self.addr, uri.path());
        let expected = signature(
            method.as_str(),
            &url,
            &params,
            &self.consumer_secret,
            &secret,
        );
        if oauth.get("oauth_signature") != Some(&expected) {
            return Err("wrong signature".into());
        }
        Ok((oauth, header))
    }
}

async fn request_token(
    State(fake): State<Arc<FakeTwitter>>,
    method: Method,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Response {
    let oauth = match fake.check("request_token", &method, &uri, &headers, |_, t| {
        t.is_none().then(String::new)
    }) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let Some(callback) = oauth.get("oauth_callback").cloned() else {
        return refuse("no oauth_callback".into());
    };
    let (t, s) = (format!("rt-{}", token()), token());
    fake.state.lock().unwrap().request_tokens.insert(
        t.clone(),
        RequestToken {
            secret: s.clone(),
            callback,
            verifier: None,
            user: None,
        },
    );
    format!("oauth_token={t}&oauth_token_secret={s}&oauth_callback_confirmed=true").into_response()
}

/// The person "signs in at Twitter" as `next_user` and is sent back.
async fn authenticate(
    State(fake): State<Arc<FakeTwitter>>,
    axum::extract::Query(q): axum::extract::Query<HashMap<String, String>>,
) -> Response {
    let mut st = fake.state.lock().unwrap();
    let user = st.next_user.clone();
    let Some(t) = q.get("oauth_token") else {
        return (StatusCode::BAD_REQUEST, "no token").into_response();
    };
    let Some(rt) = st.request_tokens.get_mut(t) else {
        return (StatusCode::BAD_REQUEST, "unknown token").into_response();
    };
    let verifier = token();
    rt.verifier = Some(verifier.clone());
    rt.user = Some(user);
    let sep = if rt.callback.contains('?') { '&' } else { '?' };
    let to = format!(
        "{}{sep}oauth_token={}&oauth_verifier={}",
        rt.callback,
        pct(t),
        pct(&verifier)
    );
    (StatusCode::FOUND, [("location", to)]).into_response()
}

async fn access_token(
    State(fake): State<Arc<FakeTwitter>>,
    method: Method,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Response {
    let oauth = match fake.check("access_token", &method, &uri, &headers, |st, t| {
        st.request_tokens.get(t?).map(|rt| rt.secret.clone())
    }) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let mut st = fake.state.lock().unwrap();
    // A request token is traded once.
    let rt = st.request_tokens.remove(&oauth["oauth_token"]).unwrap();
    if rt.verifier.is_none() || oauth.get("oauth_verifier") != rt.verifier.as_ref() {
        return refuse("wrong verifier".into());
    }
    let (id, name) = rt.user.unwrap();
    let (t, s) = (format!("{id}-{}", token()), token());
    st.access_tokens
        .insert(t.clone(), (s.clone(), id.clone(), name.clone()));
    format!("oauth_token={t}&oauth_token_secret={s}&user_id={id}&screen_name={name}")
        .into_response()
}

async fn verify_credentials(
    State(fake): State<Arc<FakeTwitter>>,
    method: Method,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Response {
    let oauth = match fake.check("verify_credentials", &method, &uri, &headers, |st, t| {
        st.access_tokens.get(t?).map(|a| a.0.clone())
    }) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let st = fake.state.lock().unwrap();
    let (_, id, name) = &st.access_tokens[&oauth["oauth_token"]];
    let body = serde_json::json!({
        "id": id.parse::<u64>().unwrap(), "id_str": id, "screen_name": name, "name": name,
    });
    ([("content-type", "application/json")], body.to_string()).into_response()
}

// ---------------------------------------------------------------------
// The server and the browser's side of the dance.

async fn server(db: &Path, signup: SignupPolicy, fake: Option<&FakeTwitter>) -> RunningServer {
    server_ttl(db, signup, fake, Duration::from_secs(600)).await
}

async fn server_ttl(
    db: &Path,
    signup: SignupPolicy,
    fake: Option<&FakeTwitter>,
    flow_ttl: Duration,
) -> RunningServer {
    let mut config = ServeConfig::new("127.0.0.1:0".parse().unwrap(), db.to_path_buf());
    config.hub = fast_hub();
    config.mdns = false;
    config.web = WebConfig {
        signup,
        twitter: fake.map(|f| TwitterConfig {
            consumer_key: CONSUMER_KEY.into(),
            consumer_secret: CONSUMER_SECRET.into(),
            api_url: f.url(),
            flow_ttl,
        }),
        // The flood test speaks as other addresses through this "proxy".
        trusted_proxies: vec!["127.0.0.1".parse().unwrap()],
        ..WebConfig::default()
    };
    start(config).await.expect("server starts")
}

/// Clicks a Twitter button (`start`, a POST with the page's form token)
/// and returns where the server sends the browser (the fake's
/// authenticate URL, as a path on the fake).
async fn click(b: &mut Browser, fake: &FakeTwitter, start: &str) -> String {
    click_with(b, fake, start, &[]).await
}

async fn click_with(
    b: &mut Browser,
    fake: &FakeTwitter,
    start: &str,
    fields: &[(&str, &str)],
) -> String {
    let started = b.post(start, fields).await;
    assert_eq!(started.status, 303, "POST {start}: {}", started.body);
    let to = started.location().unwrap();
    let prefix = format!("{}/oauth/authenticate?oauth_token=", fake.url());
    assert!(to.starts_with(&prefix), "{to}");
    to[fake.url().len()..].to_string()
}

/// "Signs in at Twitter" as `(id, screen_name)`: the fake's answer, the
/// server's callback path and query.
async fn at_twitter(fake: &FakeTwitter, authenticate: &str, as_user: (&str, &str)) -> String {
    fake.login_as(as_user.0, as_user.1);
    let (status, headers, _) = http(fake.addr, "GET", authenticate, &[], b"").await;
    assert_eq!(status, 302);
    let back = header(&headers, "location").unwrap().to_string();
    let path = back.split_once("://").unwrap().1;
    path[path.find('/').unwrap()..].to_string()
}

/// The whole dance from a button: the server's answer to the callback.
async fn dance(b: &mut Browser, fake: &FakeTwitter, start: &str, as_user: (&str, &str)) -> Page {
    let authenticate = click(b, fake, start).await;
    let callback = at_twitter(fake, &authenticate, as_user).await;
    assert!(
        callback.starts_with("/login/twitter/callback?"),
        "{callback}"
    );
    b.get(&callback).await
}

fn signed_in(b: &Browser) -> bool {
    b.cookies.contains_key("sirius_session")
}

// ---------------------------------------------------------------------

#[test]
fn the_tests_signature_check_reproduces_twitters_worked_example() {
    // Twitter's "Creating a signature" example: the fake is only a proof
    // if its own check is right.
    let params: Vec<(String, String)> = [
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
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let url = "https://api.twitter.com/1.1/statuses/update.json";
    let (cs, ts) = (
        "kAcSOqF21Fu85e7zjz7ZN2U4ZRhfV3WpwPAoE3Z7kBw",
        "LswwdoUaIvS8ltyTt5jkRh4J50vUPVVHtR2YPi5kE",
    );
    assert_eq!(
        signature("POST", url, &params, cs, ts),
        "hCtSmYh+iHYCEqBWrE7C7hYmtUk="
    );
    // And the server's signer agrees with it on the same example.
    use sirius::web::app::twitter::oauth;
    let borrowed: Vec<(&str, &str)> = params
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        oauth::hmac_sha1(&oauth::base_string("POST", url, &borrowed), cs, ts),
        "hCtSmYh+iHYCEqBWrE7C7hYmtUk="
    );
}

#[tokio::test]
async fn the_button_is_there_only_with_both_keys() {
    let dir = temp_dir("twitter-off");
    let s = server(&dir.join("sirius.db"), SignupPolicy::Open, None).await;
    first_admin(&s, "ada", "correct horse").await;
    let mut b = Browser::new(&s);
    let login = b.get("/login").await;
    assert_eq!(login.status, 200);
    assert!(!login.contains("Twitter"), "{}", login.body);
    assert!(!b.get("/signup").await.contains("Twitter"));
    // Its routes don't exist either.
    assert_eq!(b.post("/login/twitter", &[]).await.status, 404);
    assert_eq!(
        b.get("/login/twitter/callback?oauth_token=a&oauth_verifier=b")
            .await
            .status,
        404
    );
    let mut ada = sign_in(&s, "ada", "correct horse").await;
    assert!(!ada.get("/account").await.contains("Link Twitter"));
    assert_eq!(ada.post("/account/twitter/link", &[]).await.status, 404);
    assert!(
        ada.get("/admin")
            .await
            .contains("off (set TWITTER_CONSUMER_KEY")
    );
    s.shutdown().await;

    let fake = FakeTwitter::start(CONSUMER_SECRET).await;
    let s = server(&dir.join("sirius.db"), SignupPolicy::Open, Some(&fake)).await;
    let mut b = Browser::new(&s);
    let login = b.get("/login").await;
    assert!(login.contains("Sign in with Twitter"), "{}", login.body);
    assert!(b.get("/signup").await.contains("Sign up with Twitter"));
    let mut ada = sign_in(&s, "ada", "correct horse").await;
    assert!(ada.get("/account").await.contains("Link Twitter"));
    let admin = ada.get("/admin").await;
    assert!(
        admin.contains("on, through http://127.0.0.1:"),
        "{}",
        admin.body
    );
    s.shutdown().await;

    // Half the credentials is refused at start, saying which is missing.
    let half = sirius::web::app::twitter::TwitterConfig::from_settings(
        Some("key"),
        None,
        "https://api.twitter.com",
    )
    .unwrap_err()
    .to_string();
    assert!(half.contains("TWITTER_CONSUMER_SECRET"), "{half}");
}

#[tokio::test]
async fn a_linked_user_signs_in_and_a_disabled_one_does_not() {
    let dir = temp_dir("twitter-linked");
    let fake = FakeTwitter::start(CONSUMER_SECRET).await;
    let s = server(&dir.join("sirius.db"), SignupPolicy::Invite, Some(&fake)).await;
    first_admin(&s, "ada", "correct horse").await;
    let store = s.hub.store();
    let ada = store.user_by_name("ada").unwrap().unwrap();
    store.link_twitter(ada.id, "1001", "ada_tw", 1).unwrap();

    let mut b = Browser::new(&s);
    let login = b.get("/login?next=/account").await;
    assert!(login.contains("name=\"next\" value=\"/account\""));
    let authenticate = click_with(&mut b, &fake, "/login/twitter", &[("next", "/account")]).await;
    let callback = at_twitter(&fake, &authenticate, ("1001", "ada_renamed")).await;
    let back = b.get(&callback).await;
    assert_eq!(back.status, 303, "{}", back.body);
    assert_eq!(back.location(), Some("/account"), "next is followed");
    assert!(signed_in(&b));
    let account = b.get("/account").await;
    assert!(account.contains("@ada_renamed"), "{}", account.body);
    assert!(b.get("/").await.contains("signed in as ada"));
    // A session like the password's: a row with the hash of the cookie.
    let sessions = store.sessions_of(ada.id, 0).unwrap();
    assert_eq!(sessions.len(), 2);
    assert!(
        sessions
            .iter()
            .any(|x| x.id_hash == sirius::store::sha256_hex(&b.cookies["sirius_session"]))
    );
    assert!(
        eventually(2.0, || store
            .twitter_identity("1001")
            .unwrap()
            .unwrap()
            .screen_name
            == "ada_renamed")
        .await,
        "the new screen name is recorded"
    );
    // Every call was signed and accepted, nothing refused.
    assert_eq!(
        fake.accepted(),
        ["request_token", "access_token", "verify_credentials"]
    );
    assert!(fake.rejected().is_empty(), "{:?}", fake.rejected());

    // The fake really checks: the same signed request again (same nonce)
    // is refused.
    let (method, path, auth) = fake.state.lock().unwrap().last.clone().unwrap();
    let (status, _, body) = http(fake.addr, &method, &path, &[("Authorization", &auth)], b"").await;
    assert_eq!(status, 401, "{}", String::from_utf8_lossy(&body));
    assert!(fake.rejected()[0].contains("nonce used before"));

    // A disabled user can't sign in with Twitter either.
    let bob = store.create_user("bob", Some("bob's password"), 1).unwrap();
    store.link_twitter(bob.id, "1002", "bob_tw", 1).unwrap();
    store.set_disabled(bob.id, Some(2)).unwrap();
    let mut b = Browser::new(&s);
    b.get("/login").await;
    let refused = dance(&mut b, &fake, "/login/twitter", ("1002", "bob_tw")).await;
    assert_eq!(refused.status, 403);
    assert!(refused.contains("disabled"), "{}", refused.body);
    assert!(!signed_in(&b));
    assert!(store.sessions_of(bob.id, 0).unwrap().is_empty());
    s.shutdown().await;
}

#[tokio::test]
async fn open_sign_up_makes_an_account_named_after_the_screen_name() {
    let dir = temp_dir("twitter-open");
    let fake = FakeTwitter::start(CONSUMER_SECRET).await;
    let s = server(&dir.join("sirius.db"), SignupPolicy::Open, Some(&fake)).await;
    first_admin(&s, "ada", "correct horse").await;
    let store = s.hub.store();

    let mut b = Browser::new(&s);
    b.get("/login").await;
    let back = dance(&mut b, &fake, "/login/twitter", ("2001", "linus")).await;
    assert_eq!(back.status, 303, "{}", back.body);
    assert!(signed_in(&b));
    let linus = store.user_by_name("linus").unwrap().unwrap();
    assert!(!linus.has_password && !linus.is_admin);
    assert_eq!(
        store.twitter_identity("2001").unwrap().unwrap().user_id,
        linus.id
    );
    assert!(b.get("/").await.contains("signed in as linus"));

    // A screen name already taken here gets a suffix.
    store
        .create_user("grace", Some("grace's password"), 1)
        .unwrap();
    let mut c = Browser::new(&s);
    c.get("/signup").await;
    let back = dance(&mut c, &fake, "/login/twitter", ("2002", "Grace")).await;
    assert_eq!(back.status, 303, "{}", back.body);
    let grace2 = store.user_by_name("grace-2").unwrap().unwrap();
    assert_eq!(grace2.username, "Grace-2");
    assert_eq!(
        store.user_by_twitter_id("2002").unwrap().unwrap().id,
        grace2.id
    );
    assert!(c.get("/").await.contains("signed in as Grace-2"));
    // The real grace is untouched, and still signs in with her password.
    sign_in(&s, "grace", "grace's password").await;

    // The same Twitter account again signs into the same account.
    let mut d = Browser::new(&s);
    d.get("/login").await;
    dance(&mut d, &fake, "/login/twitter", ("2002", "Grace")).await;
    assert!(d.get("/").await.contains("signed in as Grace-2"));
    assert!(store.user_by_name("grace-3").unwrap().is_none());
    assert_eq!(store.list_users().unwrap().len(), 4);
    s.shutdown().await;
}

#[tokio::test]
async fn under_invite_a_stranger_needs_an_invite_which_is_used_up() {
    let dir = temp_dir("twitter-invite");
    let fake = FakeTwitter::start(CONSUMER_SECRET).await;
    let s = server(&dir.join("sirius.db"), SignupPolicy::Invite, Some(&fake)).await;
    first_admin(&s, "ada", "correct horse").await;
    let store = s.hub.store();

    let mut b = Browser::new(&s);
    b.get("/login").await;
    let refused = dance(&mut b, &fake, "/login/twitter", ("3001", "hopper")).await;
    assert_eq!(refused.status, 403);
    assert!(
        // (minijinja writes the apostrophe of "isn't" as &#x27;)
        refused.contains(
            "The Twitter account @hopper isn&#x27;t linked to any account on this server"
        ),
        "{}",
        refused.body
    );
    assert!(refused.contains("invite link"));
    assert!(!signed_in(&b));
    assert!(store.user_by_name("hopper").unwrap().is_none());
    assert!(store.twitter_identity("3001").unwrap().is_none());

    // With an invite link: its page offers Twitter, and using it makes the
    // account and uses the invite up.
    let token = "an-invite-token-for-hopper-123456";
    store
        .create_invite(token, None, false, sirius::bridge::hub::unix_now())
        .unwrap();
    let mut b = Browser::new(&s);
    let invite = b.get(&format!("/invite/{token}")).await;
    assert!(invite.contains("Sign up with Twitter"), "{}", invite.body);
    assert!(invite.contains(&format!("action=\"/invite/{token}/twitter\"")));
    let back = dance(
        &mut b,
        &fake,
        &format!("/invite/{token}/twitter"),
        ("3001", "hopper"),
    )
    .await;
    assert_eq!(back.status, 303, "{}", back.body);
    assert!(signed_in(&b));
    let hopper = store.user_by_name("hopper").unwrap().unwrap();
    assert_eq!(
        store.user_by_twitter_id("3001").unwrap().unwrap().id,
        hopper.id
    );
    assert_eq!(
        store
            .invite(token, sirius::bridge::hub::unix_now())
            .unwrap(),
        Err(sirius::store::invites::InviteProblem::Used)
    );
    let listed = store.list_invites(0).unwrap();
    assert_eq!(listed[0].used_by_name.as_deref(), Some("hopper"));

    // The used invite takes nobody else.
    let mut c = Browser::new(&s);
    c.get("/login").await;
    let used = c.post(&format!("/invite/{token}/twitter"), &[]).await;
    assert_eq!(used.status, 404);
    assert!(used.contains("already used"), "{}", used.body);
    assert_eq!(store.list_users().unwrap().len(), 2);
    s.shutdown().await;
}

#[tokio::test]
async fn link_and_unlink_on_the_account_page() {
    let dir = temp_dir("twitter-link");
    let fake = FakeTwitter::start(CONSUMER_SECRET).await;
    let s = server(&dir.join("sirius.db"), SignupPolicy::Open, Some(&fake)).await;
    let mut ada = first_admin(&s, "ada", "correct horse").await;
    let store = s.hub.store();
    let ada_id = store.user_by_name("ada").unwrap().unwrap().id;

    let page = ada.get("/account").await;
    assert!(page.contains("Not linked"), "{}", page.body);
    let back = dance(&mut ada, &fake, "/account/twitter/link", ("4001", "ada_tw")).await;
    assert_eq!(back.status, 303, "{}", back.body);
    assert_eq!(back.location(), Some("/account?done=twitter-linked"));
    assert!(
        ada.get("/account?done=twitter-linked")
            .await
            .contains("@ada_tw")
    );
    assert_eq!(
        store
            .twitter_identity_of(ada_id)
            .unwrap()
            .unwrap()
            .twitter_id,
        "4001"
    );

    // Bob can't link Ada's Twitter account.
    let mut bob = sign_up(&s, "bob", "bob's password").await;
    let bob_id = store.user_by_name("bob").unwrap().unwrap().id;
    bob.get("/account").await;
    let taken = dance(&mut bob, &fake, "/account/twitter/link", ("4001", "ada_tw")).await;
    assert_eq!(taken.status, 409);
    assert!(
        taken.contains("@ada_tw is already linked to another account"),
        "{}",
        taken.body
    );
    assert!(store.twitter_identity_of(bob_id).unwrap().is_none());
    assert_eq!(
        store.twitter_identity("4001").unwrap().unwrap().user_id,
        ada_id
    );

    // Without a form token, unlinking is refused and changes nothing.
    let forged = ada
        .post_raw("/account/twitter/unlink", &[("csrf", "wrong")], true)
        .await;
    assert_eq!(forged.status, 403);
    assert!(store.twitter_identity_of(ada_id).unwrap().is_some());
    // Ada has a password: unlinking works.
    ada.get("/account").await;
    let out = ada.post("/account/twitter/unlink", &[]).await;
    assert_eq!(out.status, 303);
    assert_eq!(out.location(), Some("/account?done=twitter-unlinked"));
    assert!(store.twitter_identity_of(ada_id).unwrap().is_none());
    assert!(ada.get("/account").await.contains("Link Twitter"));

    // Someone who only has Twitter can't unlink it until they set a password.
    let mut tw = Browser::new(&s);
    tw.get("/login").await;
    dance(&mut tw, &fake, "/login/twitter", ("4002", "only_tw")).await;
    let only = store.user_by_name("only_tw").unwrap().unwrap();
    let page = tw.get("/account").await;
    assert!(page.contains("no password yet"), "{}", page.body);
    let refused = tw.post("/account/twitter/unlink", &[]).await;
    assert_eq!(refused.status, 409);
    assert!(refused.contains("set a password"), "{}", refused.body);
    assert!(store.twitter_identity_of(only.id).unwrap().is_some());
    tw.get("/account").await;
    let set = tw
        .post("/account/password", &[("password", "a new password")])
        .await;
    assert_eq!(set.status, 303, "{}", set.body);
    tw.get("/account").await;
    assert_eq!(tw.post("/account/twitter/unlink", &[]).await.status, 303);
    assert!(store.twitter_identity_of(only.id).unwrap().is_none());
    sign_in(&s, "only_tw", "a new password").await;
    s.shutdown().await;
}

#[tokio::test]
async fn a_provider_refusing_our_signature_gives_a_clear_page_and_no_session() {
    let dir = temp_dir("twitter-badsig");
    // The fake believes in another consumer secret: every signature of the
    // server is wrong to it.
    let fake = FakeTwitter::start("a different secret").await;
    let s = server(&dir.join("sirius.db"), SignupPolicy::Open, Some(&fake)).await;
    first_admin(&s, "ada", "correct horse").await;
    let mut b = Browser::new(&s);
    b.get("/login").await;
    let page = b.post("/login/twitter", &[]).await;
    assert_eq!(page.status, 502, "{}", page.body);
    assert!(page.location().is_none());
    assert!(page.contains("Twitter refused"), "{}", page.body);
    assert!(page.contains("Could not authenticate you"));
    assert!(page.contains("TWITTER_CONSUMER_SECRET"));
    assert!(!signed_in(&b));
    assert!(fake.accepted().is_empty());
    assert!(
        fake.rejected()[0].contains("wrong signature"),
        "{:?}",
        fake.rejected()
    );
    assert_eq!(s.hub.store().list_users().unwrap().len(), 1);
    s.shutdown().await;
}

#[tokio::test]
async fn forged_expired_and_other_browsers_callbacks_are_refused() {
    let dir = temp_dir("twitter-forged");
    let fake = FakeTwitter::start(CONSUMER_SECRET).await;
    let s = server_ttl(
        &dir.join("sirius.db"),
        SignupPolicy::Open,
        Some(&fake),
        Duration::from_secs(2),
    )
    .await;
    first_admin(&s, "ada", "correct horse").await;
    let store = s.hub.store();
    let users = || store.list_users().unwrap().len();

    // A token the server never asked for.
    let mut b = Browser::new(&s);
    b.get("/login").await;
    let forged = b
        .get("/login/twitter/callback?oauth_token=rt-forged&oauth_verifier=guess")
        .await;
    assert_eq!(forged.status, 400);
    assert!(
        forged.contains("not one this server started"),
        "{}",
        forged.body
    );
    assert_eq!(b.get("/login/twitter/callback").await.status, 400);
    let denied = b.get("/login/twitter/callback?denied=rt-x").await;
    assert!(denied.contains("nothing happened"), "{}", denied.body);

    // A real one, finished in another browser: refused, and used up.
    let authenticate = click(&mut b, &fake, "/login/twitter").await;
    let callback = at_twitter(&fake, &authenticate, ("5001", "mallory")).await;
    let mut other = Browser::new(&s);
    let stolen = other.get(&callback).await;
    assert_eq!(stolen.status, 400);
    assert!(stolen.contains("another browser"), "{}", stolen.body);
    let late = b.get(&callback).await;
    assert_eq!(late.status, 400);
    assert!(!signed_in(&b) && !signed_in(&other));

    // One that took too long (the test server allows 2 s).
    let authenticate = click(&mut b, &fake, "/login/twitter").await;
    let callback = at_twitter(&fake, &authenticate, ("5002", "slowpoke")).await;
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let expired = b.get(&callback).await;
    assert_eq!(expired.status, 400);
    assert!(
        expired.contains("longer than 10 minutes"),
        "{}",
        expired.body
    );
    assert!(!signed_in(&b));
    assert_eq!(users(), 1, "nobody was made");
    // The server never traded any of those tokens.
    assert!(!fake.accepted().contains(&"access_token"));

    // One address can't pile up sign-ins: 8 at once, then it must wait.
    // (Loopback is exempt, as a reverse proxy on this machine is one
    // address; the test speaks as 203.0.113.9 through the trusted proxy.)
    let mut flood = Browser::new(&s);
    let xff = ("X-Forwarded-For", "203.0.113.9");
    let login = flood.request("GET", "/login", &[xff], b"").await;
    let body = common::browser::form_body(&[("csrf", &login.csrf().unwrap())]);
    let headers = [xff, ("Content-Type", "application/x-www-form-urlencoded")];
    for _ in 0..sirius::web::app::twitter::MAX_FLOWS_PER_ADDRESS {
        let p = flood
            .request("POST", "/login/twitter", &headers, body.as_bytes())
            .await;
        assert_eq!(p.status, 303, "{}", p.body);
    }
    let more = flood
        .request("POST", "/login/twitter", &headers, body.as_bytes())
        .await;
    assert_eq!(more.status, 429, "{}", more.body);
    assert!(more.contains("wait 10 minutes"), "{}", more.body);
    // Others still can.
    let mut d = Browser::new(&s);
    d.get("/login").await;
    click(&mut d, &fake, "/login/twitter").await;

    // Without a form token, nothing starts; signed out, linking goes to
    // the sign-in page.
    let started = fake.accepted().len();
    let mut c = Browser::new(&s);
    c.get("/login").await;
    let no_token = c.post_raw("/login/twitter", &[], true).await;
    assert_eq!(no_token.status, 403);
    store
        .create_invite("invite-for-csrf-check-1234567", None, false, 1)
        .unwrap();
    let no_token = c
        .post_raw(
            "/invite/invite-for-csrf-check-1234567/twitter",
            &[("csrf", "x")],
            true,
        )
        .await;
    assert_eq!(no_token.status, 403);
    let signed_out = c.post("/account/twitter/link", &[]).await;
    assert_eq!(signed_out.status, 303);
    assert_eq!(signed_out.location(), Some("/login"));
    let mut ada = sign_in(&s, "ada", "correct horse").await;
    ada.get("/account").await;
    let no_token = ada.post_raw("/account/twitter/link", &[], true).await;
    assert_eq!(no_token.status, 403);
    assert_eq!(fake.accepted().len(), started, "Twitter was not asked");
    s.shutdown().await;
}
