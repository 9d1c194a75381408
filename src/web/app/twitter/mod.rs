//! "Sign in with Twitter": the OAuth 1.0a client and the sign-ins under
//! way. The pages that use it are [`crate::web::app::pages::twitter`].
//!
//! Off unless `TWITTER_CONSUMER_KEY` and `TWITTER_CONSUMER_SECRET` are both
//! set (the earlier Python server's names). The API base is
//! `SIRIUS_TWITTER_API_URL` (default `https://api.twitter.com`), so tests
//! point it at a local fake provider.
//!
//! * **The dance** (three-legged OAuth 1.0a): `POST oauth/request_token`
//!   with our callback URL → the browser goes to
//!   `oauth/authenticate?oauth_token=…` → Twitter sends it back to
//!   `/login/twitter/callback` with `oauth_token` and `oauth_verifier` →
//!   `POST oauth/access_token` → `GET 1.1/account/verify_credentials.json`
//!   signed with the user's access token, whose `id_str` (the numeric id,
//!   which never changes) and `screen_name` say who it is. Every request is
//!   signed with HMAC-SHA1 ([`oauth`]); nonces are 32 bytes from the OS
//!   generator.
//! * **Outgoing HTTP** is ureq (blocking) on the blocking pool, at most
//!   [`CALLS_AT_ONCE`] calls at once, each within [`CALL_TIMEOUT`] and
//!   [`MAX_ANSWER_BYTES`].
//! * **Sign-ins under way** ([`Flows`]) live in memory, keyed by the request
//!   token: its secret never leaves the server. Each is bound to the
//!   browser that started it by a random cookie (only its SHA-256 is kept),
//!   used once, and forgotten after [`FLOW_TTL`] (10 minutes). At most
//!   [`MAX_FLOWS`] at once, [`MAX_FLOWS_PER_ADDRESS`] per client address
//!   (loopback exempt, as a reverse proxy on the same machine is one
//!   address; configure `--trusted-proxy`): a client can't make the map
//!   grow. A restart forgets them (the person starts again).

pub mod oauth;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;

/// How long a sign-in may take from our button to Twitter's callback.
pub const FLOW_TTL: Duration = Duration::from_secs(10 * 60);
/// Sign-ins under way at most (all clients).
pub const MAX_FLOWS: usize = 1024;
/// Sign-ins under way at most from one client address.
pub const MAX_FLOWS_PER_ADDRESS: usize = 8;
/// Each call to Twitter's API gets this long, connecting included.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Calls to Twitter's API at once (each holds a blocking thread).
pub const CALLS_AT_ONCE: usize = 8;
/// The largest answer read from Twitter's API.
pub const MAX_ANSWER_BYTES: u64 = 64 * 1024;
/// The default API base.
pub const DEFAULT_API_URL: &str = "https://api.twitter.com";

/// The app's credentials at Twitter and where its API is.
#[derive(Clone)]
pub struct TwitterConfig {
    /// `TWITTER_CONSUMER_KEY` (Twitter calls it the API key).
    pub consumer_key: String,
    /// `TWITTER_CONSUMER_SECRET` (the API key secret).
    pub consumer_secret: String,
    /// `SIRIUS_TWITTER_API_URL`, without a trailing `/`.
    pub api_url: String,
    /// How long a sign-in may take ([`FLOW_TTL`]; shorter in tests).
    pub flow_ttl: Duration,
}

impl std::fmt::Debug for TwitterConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TwitterConfig")
            .field("consumer_key", &"********")
            .field("consumer_secret", &"********")
            .field("api_url", &self.api_url)
            .field("flow_ttl", &self.flow_ttl)
            .finish()
    }
}

/// Why the settings can't be used.
#[derive(Debug, thiserror::Error)]
pub enum TwitterConfigError {
    #[error(
        "Twitter sign-in needs both TWITTER_CONSUMER_KEY and TWITTER_CONSUMER_SECRET (--twitter-consumer-key, --twitter-consumer-secret); only {0} is set — set the other, or unset both to turn Twitter sign-in off"
    )]
    Half(&'static str),
    #[error(
        "SIRIUS_TWITTER_API_URL {0:?} is not an http:// or https:// URL (the default is https://api.twitter.com)"
    )]
    BadUrl(String),
}

impl TwitterConfig {
    /// The settings from the flags: `None` (Twitter sign-in off) when
    /// neither credential is set, an error when only one is or the API
    /// URL is not http(s).
    pub fn from_settings(
        consumer_key: Option<&str>,
        consumer_secret: Option<&str>,
        api_url: &str,
    ) -> Result<Option<TwitterConfig>, TwitterConfigError> {
        let key = consumer_key.map(str::trim).filter(|k| !k.is_empty());
        let secret = consumer_secret.map(str::trim).filter(|s| !s.is_empty());
        let (key, secret) = match (key, secret) {
            (None, None) => return Ok(None),
            (Some(_), None) => return Err(TwitterConfigError::Half("TWITTER_CONSUMER_KEY")),
            (None, Some(_)) => return Err(TwitterConfigError::Half("TWITTER_CONSUMER_SECRET")),
            (Some(k), Some(s)) => (k, s),
        };
        let api_url = api_url.trim().trim_end_matches('/').to_string();
        if oauth::base_url(&format!("{api_url}/oauth/request_token")).is_none() {
            return Err(TwitterConfigError::BadUrl(api_url));
        }
        Ok(Some(TwitterConfig {
            consumer_key: key.to_string(),
            consumer_secret: secret.to_string(),
            api_url,
            flow_ttl: FLOW_TTL,
        }))
    }
}

/// What went wrong talking to Twitter. Shown to the person (and logged):
/// it says what to do.
#[derive(Debug, thiserror::Error)]
pub enum TwitterError {
    #[error(
        "Twitter could not be reached ({0}); try again in a moment, and if it keeps failing, the server's administrator should check its network and SIRIUS_TWITTER_API_URL"
    )]
    Unreachable(String),
    #[error(
        "Twitter refused the server's request ({status}: {said}); if this keeps happening, the server's TWITTER_CONSUMER_KEY and TWITTER_CONSUMER_SECRET are probably wrong, or the callback URL is not registered for the app at Twitter"
    )]
    Refused { status: u16, said: String },
    #[error("Twitter's answer could not be understood ({0}); try again later")]
    BadAnswer(String),
    #[error("too many Twitter sign-ins are under way on this server; try again in a minute")]
    Busy,
}

/// A request token: the browser is sent to Twitter with it.
#[derive(Debug, Clone)]
pub struct RequestToken {
    pub token: String,
    pub secret: String,
}

/// Who signed in at Twitter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TwitterUser {
    /// The numeric id, as text (it exceeds 2^53).
    pub id: String,
    pub screen_name: String,
}

/// What a sign-in started for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Purpose {
    /// Sign in (or make an account), then go to `next`. `invite`: the
    /// invite token it arrived with, used up when an account is made.
    SignIn {
        invite: Option<String>,
        next: String,
    },
    /// Link the Twitter account to this signed-in user.
    Link { user_id: i64 },
}

/// One sign-in under way.
#[derive(Debug, Clone)]
pub struct Flow {
    /// The request token's secret (needed to sign the access-token call).
    pub token_secret: String,
    /// SHA-256 of the browser's binding cookie.
    pub browser_hash: String,
    pub purpose: Purpose,
    pub ip: IpAddr,
    pub started: Instant,
}

/// Why a callback can't be finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FlowProblem {
    #[error(
        "this Twitter sign-in is not one this server started, was already finished, or took longer than 10 minutes; start again"
    )]
    Unknown,
    #[error(
        "this Twitter sign-in was started in another browser (or its cookie is gone); start again in this one"
    )]
    OtherBrowser,
}

/// The sign-ins under way: bounded, expiring, each used once.
#[derive(Debug)]
pub struct Flows {
    map: Mutex<HashMap<String, Flow>>,
    ttl: Duration,
}

impl Flows {
    pub fn new(ttl: Duration) -> Flows {
        Flows {
            map: Mutex::new(HashMap::new()),
            ttl,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Flow>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `ip` may start another sign-in now (expired ones dropped).
    pub fn has_room(&self, ip: IpAddr) -> bool {
        let mut map = self.lock();
        let now = Instant::now();
        map.retain(|_, f| now.duration_since(f.started) < self.ttl);
        // Loopback is exempt from the per-address limit: a reverse proxy on
        // this machine (without --trusted-proxy) is one address for everyone.
        map.len() < MAX_FLOWS
            && (ip.is_loopback()
                || map.values().filter(|f| f.ip == ip).count() < MAX_FLOWS_PER_ADDRESS)
    }

    /// Keeps a sign-in under its request token; `false` (nothing kept)
    /// when there is no room for it.
    pub fn insert(&self, request_token: String, flow: Flow) -> bool {
        if !self.has_room(flow.ip) {
            return false;
        }
        self.lock().insert(request_token, flow);
        true
    }

    /// Takes the sign-in of `request_token` (it can't be used again) if it
    /// is known, not expired, and `browser_cookie` is the one it was
    /// started with.
    pub fn take(
        &self,
        request_token: &str,
        browser_cookie: Option<&str>,
    ) -> Result<Flow, FlowProblem> {
        let flow = self.lock().remove(request_token);
        let flow = flow.ok_or(FlowProblem::Unknown)?;
        if flow.started.elapsed() >= self.ttl {
            return Err(FlowProblem::Unknown);
        }
        match browser_cookie {
            Some(c)
                if crate::web::app::auth::same_token(
                    &crate::store::sha256_hex(c),
                    &flow.browser_hash,
                ) =>
            {
                Ok(flow)
            }
            _ => Err(FlowProblem::OtherBrowser),
        }
    }

    /// Forgets a sign-in (the person declined at Twitter).
    pub fn forget(&self, request_token: &str) {
        self.lock().remove(request_token);
    }

    /// How many are under way (expired ones included until the next start).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Twitter sign-in of one server: the settings, the HTTP client and the
/// sign-ins under way.
pub struct Twitter {
    pub config: TwitterConfig,
    pub flows: Flows,
    agent: ureq::Agent,
    calls: Arc<tokio::sync::Semaphore>,
}

impl std::fmt::Debug for Twitter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Twitter")
            .field("config", &self.config)
            .field("flows", &self.flows.len())
            .finish_non_exhaustive()
    }
}

/// A fresh nonce: 32 bytes from the OS generator, URL-safe base64.
fn nonce() -> String {
    crate::web::app::auth::random_token(32)
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `a=b&c=d` (Twitter's token answers) into pairs.
fn form_pairs(body: &str) -> HashMap<String, String> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(body.trim())
        .unwrap_or_default()
        .into_iter()
        .collect()
}

/// What Twitter says in an error answer, shortened for a page.
fn what_it_said(body: &str) -> String {
    #[derive(Deserialize)]
    struct Errors {
        errors: Vec<ErrorItem>,
    }
    #[derive(Deserialize)]
    struct ErrorItem {
        message: String,
    }
    if let Ok(e) = serde_json::from_str::<Errors>(body)
        && let Some(first) = e.errors.first()
    {
        return first.message.clone();
    }
    let text: String = body.trim().chars().take(200).collect();
    if text.is_empty() {
        "no explanation".into()
    } else {
        text
    }
}

impl Twitter {
    pub fn new(config: TwitterConfig) -> Twitter {
        let agent_config = ureq::Agent::config_builder()
            .timeout_global(Some(CALL_TIMEOUT))
            .max_redirects(0)
            .http_status_as_error(false)
            .user_agent("sirius (Little Printer server)")
            .build();
        Twitter {
            flows: Flows::new(config.flow_ttl),
            config,
            agent: ureq::Agent::new_with_config(agent_config),
            calls: Arc::new(tokio::sync::Semaphore::new(CALLS_AT_ONCE)),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.config.api_url)
    }

    /// Where the browser goes to sign in at Twitter.
    pub fn authenticate_url(&self, request_token: &str) -> String {
        format!(
            "{}?oauth_token={}",
            self.url("/oauth/authenticate"),
            oauth::encode(request_token)
        )
    }

    /// One signed call on the blocking pool: `(status, body)`.
    async fn call(
        &self,
        method: &'static str,
        path: &str,
        query: Vec<(String, String)>,
        token: Option<(String, String)>,
        extra: Vec<(&'static str, String)>,
    ) -> Result<(u16, String), TwitterError> {
        let permit = tokio::time::timeout(CALL_TIMEOUT, Arc::clone(&self.calls).acquire_owned())
            .await
            .map_err(|_| TwitterError::Busy)?
            .map_err(|_| TwitterError::Busy)?;
        let url = self.url(path);
        let base = oauth::base_url(&url)
            .ok_or_else(|| TwitterError::Unreachable(format!("{url} is not a URL")))?;
        let (key, secret) = (
            self.config.consumer_key.clone(),
            self.config.consumer_secret.clone(),
        );
        let agent = self.agent.clone();
        let answer = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let q: Vec<(&str, &str)> = query
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let x: Vec<(&str, &str)> = extra.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let header = oauth::Signer {
                consumer_key: &key,
                consumer_secret: &secret,
                token: token.as_ref().map(|(t, s)| (t.as_str(), s.as_str())),
            }
            .authorization(method, &base, &q, &x, unix_now(), &nonce());
            let full = if q.is_empty() {
                url
            } else {
                format!("{url}?{}", oauth::normalized_parameters(&q))
            };
            let response = match method {
                "POST" => agent
                    .post(&full)
                    .header("Authorization", &header)
                    .send_empty(),
                _ => agent.get(&full).header("Authorization", &header).call(),
            };
            let mut response = response.map_err(|e| TwitterError::Unreachable(e.to_string()))?;
            let status = response.status().as_u16();
            let body = response
                .body_mut()
                .with_config()
                .limit(MAX_ANSWER_BYTES)
                .read_to_string()
                .map_err(|e| TwitterError::BadAnswer(e.to_string()))?;
            Ok::<_, TwitterError>((status, body))
        })
        .await
        .map_err(|e| TwitterError::Unreachable(format!("the call was abandoned: {e}")))??;
        if answer.0 != 200 {
            return Err(TwitterError::Refused {
                status: answer.0,
                said: what_it_said(&answer.1),
            });
        }
        Ok(answer)
    }

    /// Step 1: a request token whose callback is `callback`.
    pub async fn request_token(&self, callback: &str) -> Result<RequestToken, TwitterError> {
        let (_, body) = self
            .call(
                "POST",
                "/oauth/request_token",
                Vec::new(),
                None,
                vec![("oauth_callback", callback.to_string())],
            )
            .await?;
        let mut pairs = form_pairs(&body);
        if pairs.get("oauth_callback_confirmed").map(String::as_str) != Some("true") {
            return Err(TwitterError::BadAnswer(
                "the request token's callback was not confirmed".into(),
            ));
        }
        match (
            pairs.remove("oauth_token"),
            pairs.remove("oauth_token_secret"),
        ) {
            (Some(token), Some(secret)) if !token.is_empty() => Ok(RequestToken { token, secret }),
            _ => Err(TwitterError::BadAnswer("no request token in it".into())),
        }
    }

    /// Steps 3 and 4: trades the authorised request token for the user's
    /// access token, then asks Twitter who that is.
    pub async fn finish(
        &self,
        request_token: &str,
        token_secret: &str,
        verifier: &str,
    ) -> Result<TwitterUser, TwitterError> {
        let (_, body) = self
            .call(
                "POST",
                "/oauth/access_token",
                Vec::new(),
                Some((request_token.to_string(), token_secret.to_string())),
                vec![("oauth_verifier", verifier.to_string())],
            )
            .await?;
        let mut pairs = form_pairs(&body);
        let (token, secret) = match (
            pairs.remove("oauth_token"),
            pairs.remove("oauth_token_secret"),
        ) {
            (Some(t), Some(s)) if !t.is_empty() => (t, s),
            _ => return Err(TwitterError::BadAnswer("no access token in it".into())),
        };
        #[derive(Deserialize)]
        struct Credentials {
            id_str: String,
            screen_name: String,
        }
        let (_, body) = self
            .call(
                "GET",
                "/1.1/account/verify_credentials.json",
                vec![
                    ("include_entities".into(), "false".into()),
                    ("skip_status".into(), "true".into()),
                ],
                Some((token, secret)),
                Vec::new(),
            )
            .await?;
        let who: Credentials = serde_json::from_str(&body)
            .map_err(|e| TwitterError::BadAnswer(format!("verify_credentials: {e}")))?;
        if who.id_str.is_empty() || !who.id_str.bytes().all(|b| b.is_ascii_digit()) {
            return Err(TwitterError::BadAnswer(format!(
                "{:?} is not a Twitter user id",
                who.id_str
            )));
        }
        // The access token's answer names the user too; they must agree.
        if let Some(id) = pairs.get("user_id")
            && *id != who.id_str
        {
            return Err(TwitterError::BadAnswer(
                "the access token and verify_credentials name different users".into(),
            ));
        }
        Ok(TwitterUser {
            id: who.id_str,
            screen_name: who.screen_name,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(ip: &str, cookie: &str) -> Flow {
        Flow {
            token_secret: "s".into(),
            browser_hash: crate::store::sha256_hex(cookie),
            purpose: Purpose::Link { user_id: 1 },
            ip: ip.parse().unwrap(),
            started: Instant::now(),
        }
    }

    #[test]
    fn a_flow_is_used_once_and_only_by_its_browser() {
        let flows = Flows::new(FLOW_TTL);
        assert!(flows.insert("t1".into(), flow("10.0.0.1", "cookie-a")));
        assert_eq!(
            flows.take("t1", Some("cookie-b")).unwrap_err(),
            FlowProblem::OtherBrowser
        );
        // The wrong browser used it up.
        assert_eq!(
            flows.take("t1", Some("cookie-a")).unwrap_err(),
            FlowProblem::Unknown
        );
        assert!(flows.insert("t2".into(), flow("10.0.0.1", "cookie-a")));
        assert_eq!(
            flows.take("t2", None).unwrap_err(),
            FlowProblem::OtherBrowser
        );
        assert!(flows.insert("t3".into(), flow("10.0.0.1", "cookie-a")));
        assert!(flows.take("t3", Some("cookie-a")).is_ok());
        assert_eq!(
            flows.take("t3", Some("cookie-a")).unwrap_err(),
            FlowProblem::Unknown
        );
    }

    #[test]
    fn flows_expire() {
        let flows = Flows::new(Duration::from_millis(20));
        assert!(flows.insert("t".into(), flow("10.0.0.1", "c")));
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(
            flows.take("t", Some("c")).unwrap_err(),
            FlowProblem::Unknown
        );
        // Expired ones make room again.
        let flows = Flows::new(Duration::from_millis(20));
        for n in 0..MAX_FLOWS_PER_ADDRESS {
            assert!(flows.insert(format!("t{n}"), flow("10.0.0.1", "c")));
        }
        assert!(!flows.has_room("10.0.0.1".parse().unwrap()));
        std::thread::sleep(Duration::from_millis(30));
        assert!(flows.has_room("10.0.0.1".parse().unwrap()));
        assert_eq!(flows.len(), 0);
    }

    #[test]
    fn one_address_and_all_addresses_are_bounded() {
        let flows = Flows::new(FLOW_TTL);
        for n in 0..MAX_FLOWS_PER_ADDRESS {
            assert!(flows.insert(format!("a{n}"), flow("10.0.0.1", "c")));
        }
        assert!(!flows.insert("one more".into(), flow("10.0.0.1", "c")));
        let mut n = 0u32;
        while flows.len() < MAX_FLOWS {
            let ip = format!("10.1.{}.{}", n / 200, n % 200);
            assert!(flows.insert(format!("b{n}"), flow(&ip, "c")));
            n += 1;
        }
        assert!(!flows.insert("full".into(), flow("10.9.9.9", "c")));
        assert_eq!(flows.len(), MAX_FLOWS);
    }

    #[test]
    fn settings_need_both_credentials_and_an_http_url() {
        assert!(
            TwitterConfig::from_settings(None, None, DEFAULT_API_URL)
                .unwrap()
                .is_none()
        );
        assert!(
            TwitterConfig::from_settings(Some(""), Some(" "), DEFAULT_API_URL)
                .unwrap()
                .is_none()
        );
        let half = TwitterConfig::from_settings(Some("k"), None, DEFAULT_API_URL).unwrap_err();
        assert!(
            half.to_string().contains("TWITTER_CONSUMER_SECRET"),
            "{half}"
        );
        assert!(TwitterConfig::from_settings(Some("k"), Some("s"), "api.twitter.com").is_err());
        let c = TwitterConfig::from_settings(Some("k"), Some("s"), "http://127.0.0.1:9/")
            .unwrap()
            .unwrap();
        assert_eq!(c.api_url, "http://127.0.0.1:9");
        assert!(!format!("{c:?}").contains("\"s\""));
    }

    #[test]
    fn token_answers_and_errors_are_read() {
        let p = form_pairs("oauth_token=a%2Bb&oauth_token_secret=c&oauth_callback_confirmed=true");
        assert_eq!(p["oauth_token"], "a+b");
        assert_eq!(
            what_it_said(r#"{"errors":[{"code":32,"message":"Could not authenticate you."}]}"#),
            "Could not authenticate you."
        );
        assert_eq!(what_it_said(""), "no explanation");
    }
}
