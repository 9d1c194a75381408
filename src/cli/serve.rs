//! `sirius serve`: run the server.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;

use super::Outcome;
use crate::server::{self, ServeConfig};

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address and port to listen on (bridges connect to port 5002).
    #[arg(long, env = "SIRIUS_LISTEN", default_value = "0.0.0.0:5002")]
    pub listen: SocketAddr,
    /// How people reach this server, e.g. https://printer.example.org (used
    /// in print-key examples; default: the Host of each request).
    #[arg(long, env = "SIRIUS_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Time zone of the time printed on messages, e.g. Europe/London
    /// (default: the system's).
    #[arg(long, env = "SIRIUS_TIME_ZONE")]
    pub time_zone: Option<String>,
    /// Messages kept per printer in its history.
    #[arg(long, env = "SIRIUS_HISTORY", default_value_t = 100)]
    pub history: usize,
    /// Days a message is held for an offline printer before it expires.
    #[arg(long, env = "SIRIUS_HOLD_DAYS", default_value_t = 7)]
    pub hold_days: u64,
    /// Which remote pictures in HTML messages may be fetched: public
    /// addresses only (default), all (also loopback and private networks),
    /// or none.
    #[arg(long, env = "SIRIUS_FETCH_IMAGES", default_value = "public")]
    pub fetch_images: crate::compose::FetchPolicy,
    /// A folder of templates that replace the embedded ones of the same
    /// name: message.html (the printed message) and the web app's pages.
    #[arg(long, env = "SIRIUS_TEMPLATES")]
    pub templates: Option<std::path::PathBuf>,
    /// Who may make an account on the web app: invite (with a one-time
    /// link from an administrator), open (anyone), or closed (only
    /// administrators add people). The first account is always possible.
    #[arg(long, env = "SIRIUS_SIGNUP", default_value = "invite")]
    pub signup: crate::web::app::SignupPolicy,
    /// The address of a reverse proxy in front of Sirius whose
    /// X-Forwarded-For and X-Forwarded-Proto are believed (repeat, or
    /// separate with commas). Without it those headers are ignored.
    #[arg(long, env = "SIRIUS_TRUSTED_PROXY", value_delimiter = ',')]
    pub trusted_proxy: Vec<std::net::IpAddr>,
    /// "Sign in with Twitter": the app's consumer key (API key) from
    /// developer.twitter.com. Twitter sign-in is offered only when this and
    /// the consumer secret are both set; register
    /// PUBLIC_URL/login/twitter/callback as the app's callback URL.
    #[arg(long, env = "TWITTER_CONSUMER_KEY")]
    pub twitter_consumer_key: Option<String>,
    /// "Sign in with Twitter": the app's consumer secret (API key secret).
    #[arg(long, env = "TWITTER_CONSUMER_SECRET")]
    pub twitter_consumer_secret: Option<String>,
    /// Where Twitter's API is (for Twitter sign-in).
    #[arg(
        long,
        env = "SIRIUS_TWITTER_API_URL",
        default_value = crate::web::app::twitter::DEFAULT_API_URL
    )]
    pub twitter_api_url: String,
    /// Messages waiting per printer at most; past it a print is refused
    /// (HTTP 429, "the queue is full") and nothing queued is dropped.
    #[arg(long, env = "SIRIUS_QUEUE_LIMIT", default_value_t = 100)]
    pub queue_limit: usize,
    /// Connections open at once, bridges included; more are answered 503
    /// and closed. One address may hold a sixteenth of them (loopback is
    /// exempt).
    #[arg(long, env = "SIRIUS_MAX_CONNECTIONS", default_value_t = 4096)]
    pub max_connections: usize,
    /// Let /metrics (Prometheus) answer any address, not only this machine.
    #[arg(long, env = "SIRIUS_METRICS_PUBLIC")]
    pub metrics_public: bool,
    /// A folder of TTF/OTF/TTC fonts (a CJK font, a favourite typeface)
    /// added to the embedded ones; messages can choose them by family name.
    #[arg(long, env = "SIRIUS_FONTS")]
    pub fonts: Option<std::path::PathBuf>,
    /// Don't announce the web app on the local network (mDNS, as "Sirius
    /// on HOSTNAME").
    #[arg(long, env = "SIRIUS_NO_MDNS")]
    pub no_mdns: bool,
}

impl ServeArgs {
    pub fn config(&self, db: &Path) -> anyhow::Result<ServeConfig> {
        let mut config = ServeConfig::new(self.listen, db.to_path_buf());
        config.public_url = self.public_url.clone();
        if let Some(tz) = &self.time_zone {
            config.printing.time_zone = jiff::tz::TimeZone::get(tz).with_context(|| {
                format!("unknown time zone {tz:?} (try a name like Europe/London)")
            })?;
        }
        config.printing.history = self.history.max(1);
        config.render.fetch_images = self.fetch_images;
        config.render.templates_dir = self.templates.clone();
        config.render.fonts_dir = self.fonts.clone();
        config.mdns = !self.no_mdns;
        config.web.templates_dir = self.templates.clone();
        config.web.signup = self.signup;
        config.web.trusted_proxies = self.trusted_proxy.clone();
        config.web.twitter = crate::web::app::twitter::TwitterConfig::from_settings(
            self.twitter_consumer_key.as_deref(),
            self.twitter_consumer_secret.as_deref(),
            &self.twitter_api_url,
        )?;
        config.printing.hold_limit = Duration::from_secs(self.hold_days * 24 * 3600);
        config.printing.queue_limit = self.queue_limit.max(1);
        config.metrics_public = self.metrics_public;
        config.http.max_connections = self.max_connections.max(1);
        config.http.max_per_ip = (self.max_connections / 16).max(16);
        Ok(config)
    }
}

pub fn run(args: ServeArgs, db: &Path) -> anyhow::Result<Outcome> {
    let config = args.config(db)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(server::run(config))?;
    Ok(Outcome::AllValid)
}
