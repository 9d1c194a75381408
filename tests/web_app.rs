//! The web app against a real server (port 0, a real SQLite file), over
//! real HTTP: the first account, sessions and their cookie, CSRF, sign-in
//! throttling, invites and the sign-up policies, claiming, the account
//! and admin pages, and a walk over every route as a stranger, as another
//! user and without a form token.

mod common;

use std::path::Path;

use common::browser::{Browser, first_admin, sign_in, sign_up};
use common::*;
use sirius::protocol::{ClaimCode, DeviceAddress};
use sirius::server::{RunningServer, ServeConfig, start};
use sirius::web::app::{SignupPolicy, WebConfig};

async fn web_server(db: &Path, web: WebConfig) -> RunningServer {
    let mut config = ServeConfig::new("127.0.0.1:0".parse().unwrap(), db.to_path_buf());
    config.hub = fast_hub();
    config.printing.time_zone = jiff::tz::TimeZone::UTC;
    config.web = web;
    start(config).await.expect("server starts")
}

fn policy(signup: SignupPolicy) -> WebConfig {
    WebConfig {
        signup,
        ..WebConfig::default()
    }
}

/// Everything the web app can change, as text, to prove a refused form
/// changed nothing.
fn snapshot(s: &RunningServer) -> String {
    let store = &s.hub.store();
    let users = store.list_users().unwrap();
    let mut out = format!("{users:?}\n");
    for u in &users {
        let sessions: Vec<_> = store
            .sessions_of(u.id, 0)
            .unwrap()
            .into_iter()
            .map(|s| (s.id_hash, s.user_id, s.csrf_token, s.expires_at))
            .collect();
        out.push_str(&format!("{sessions:?}\n"));
        out.push_str(&format!("{:?}\n", store.printers_owned_by(u.id).unwrap()));
        out.push_str(&format!(
            "{:?}\n",
            store.printers_shared_with(u.id).unwrap()
        ));
    }
    out.push_str(&format!("{:?}\n", store.list_invites(0).unwrap()));
    out.push_str(&format!("{:?}\n", store.list_printers().unwrap()));
    out.push_str(&format!("{:?}\n", store.list_print_keys().unwrap()));
    out
}

#[tokio::test]
async fn the_first_account_is_an_admin_and_its_cookie_is_a_proper_session() {
    let dir = temp_dir("web-first");
    let s = web_server(&dir.join("sirius.db"), WebConfig::default()).await;
    let mut b = Browser::new(&s);
    let first = b.get("/").await;
    assert_eq!(first.status, 200);
    assert!(first.contains("Create the first account"));
    // The form cookie for signed-out forms.
    assert!(b.cookies.contains_key("sirius_form"));

    // A short password is refused and nothing is made.
    let short = b
        .post("/signup", &[("username", "ada"), ("password", "short")])
        .await;
    assert_eq!(short.status, 422);
    assert!(short.contains("at least 8"), "{}", short.body);
    assert!(s.hub.store().list_users().unwrap().is_empty());

    let made = b
        .post(
            "/signup",
            &[("username", "ada"), ("password", "correct horse")],
        )
        .await;
    assert_eq!(made.status, 303);
    assert_eq!(made.location(), Some("/"));
    let cookie = made
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("sirius_session="))
        .expect("a session cookie")
        .to_string();
    for part in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=2592000"] {
        assert!(cookie.contains(part), "{cookie} lacks {part}");
    }
    assert!(!cookie.contains("Secure"), "plain http: {cookie}");
    let id = &b.cookies["sirius_session"];
    assert!(id.len() >= 43, "256 random bits: {id}");
    let ada = s.hub.store().user_by_name("ada").unwrap().unwrap();
    assert!(ada.is_admin);
    // Only the hash of the id is stored.
    let sessions = s.hub.store().sessions_of(ada.id, 0).unwrap();
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0].id_hash, sirius::store::sha256_hex(id));

    let home = b.get("/").await;
    assert!(home.contains("My printers"), "{}", home.body);
    assert!(home.contains("signed in as ada"));

    // Now that someone exists, sign-up is by invitation (the default).
    let mut other = Browser::new(&s);
    let page = other.get("/").await;
    assert!(page.contains("Sign in") && !page.contains("Create the first account"));
    let refused = other
        .post(
            "/signup",
            &[("username", "mallory"), ("password", "correct horse")],
        )
        .await;
    assert_eq!(refused.status, 403);
    assert!(refused.contains("invite"), "{}", refused.body);
    assert!(s.hub.store().user_by_name("mallory").unwrap().is_none());

    // Sign out: the session row goes, the cookie too, / asks to sign in.
    let out = b.post("/logout", &[]).await;
    assert_eq!(out.status, 303);
    assert!(!b.cookies.contains_key("sirius_session"));
    assert!(s.hub.store().sessions_of(ada.id, 0).unwrap().is_empty());
    assert!(
        b.get("/account")
            .await
            .location()
            .unwrap()
            .starts_with("/login")
    );

    // Signing in again works, and `next` brings the browser back.
    let mut again = Browser::new(&s);
    again.get("/login?next=/account").await;
    let done = again
        .post(
            "/login",
            &[
                ("username", "ADA"),
                ("password", "correct horse"),
                ("next", "/account"),
            ],
        )
        .await;
    assert_eq!(done.status, 303);
    assert_eq!(done.location(), Some("/account"));
    s.shutdown().await;
}

#[tokio::test]
async fn sign_in_waits_after_five_failures_and_says_how_long() {
    let dir = temp_dir("web-throttle");
    let s = web_server(&dir.join("sirius.db"), WebConfig::default()).await;
    first_admin(&s, "ada", "correct horse").await;
    let mut b = Browser::new(&s);
    b.get("/login").await;
    for _ in 0..4 {
        let p = b
            .post(
                "/login",
                &[("username", "ada"), ("password", "wrong password")],
            )
            .await;
        assert_eq!(p.status, 401);
        assert!(
            p.contains("don&#x27;t match") || p.contains("don't match"),
            "{}",
            p.body
        );
    }
    let fifth = b
        .post(
            "/login",
            &[("username", "ada"), ("password", "wrong password")],
        )
        .await;
    assert!(fifth.contains("Wait 30 seconds"), "{}", fifth.body);
    // Even the right password waits now, and the page says how long.
    let right = b
        .post(
            "/login",
            &[("username", "ada"), ("password", "correct horse")],
        )
        .await;
    assert_eq!(right.status, 429);
    assert!(
        right.contains("Wait 30 seconds") || right.contains("Wait 29 seconds"),
        "{}",
        right.body
    );
    assert!(right.header("retry-after").is_some());
    assert!(!b.cookies.contains_key("sirius_session"));
    s.shutdown().await;
}

#[tokio::test]
async fn forms_without_the_token_or_from_another_site_are_refused() {
    let dir = temp_dir("web-csrf");
    let s = web_server(&dir.join("sirius.db"), WebConfig::default()).await;
    let mut admin = first_admin(&s, "ada", "correct horse").await;
    admin.get("/admin").await;
    let before = snapshot(&s);

    // No token.
    let p = admin.post_raw("/admin/invites", &[], true).await;
    assert_eq!(p.status, 403);
    // A wrong token.
    let p = admin
        .post_raw("/admin/invites", &[("csrf", "not-the-token-at-all")], true)
        .await;
    assert_eq!(p.status, 403);
    // The right token, but from another site.
    let token = admin.csrf.clone().unwrap();
    let cookie = format!("sirius_session={}", admin.cookies["sirius_session"]);
    for (name, value) in [
        ("Origin", "http://evil.example"),
        ("Origin", "null"),
        ("Sec-Fetch-Site", "cross-site"),
    ] {
        let (status, _, _) = http(
            s.addr,
            "POST",
            "/admin/invites",
            &[
                ("Content-Type", "application/x-www-form-urlencoded"),
                ("Cookie", &cookie),
                (name, value),
            ],
            format!("csrf={token}").as_bytes(),
        )
        .await;
        assert_eq!(status, 403, "{name}: {value}");
    }
    // The login form needs its token too (login CSRF).
    let mut fresh = Browser::new(&s);
    let p = fresh
        .post_raw(
            "/login",
            &[("username", "ada"), ("password", "correct horse")],
            true,
        )
        .await;
    assert_eq!(p.status, 403);
    assert!(!fresh.cookies.contains_key("sirius_session"));
    assert_eq!(snapshot(&s), before, "nothing changed");

    // Without Origin headers at all (curl) the token alone is enough.
    let p = admin
        .post_raw("/admin/invites", &[("csrf", &token)], false)
        .await;
    assert_eq!(p.status, 200);
    assert!(p.contains("/invite/"));
    s.shutdown().await;
}

#[tokio::test]
async fn secure_cookies_behind_a_trusted_https_proxy_only() {
    let dir = temp_dir("web-proxy");
    let web = WebConfig {
        trusted_proxies: vec!["127.0.0.1".parse().unwrap()],
        ..WebConfig::default()
    };
    let s = web_server(&dir.join("sirius.db"), web).await;
    let (_, headers, _) = http(s.addr, "GET", "/", &[("X-Forwarded-Proto", "https")], b"").await;
    let cookie = header(&headers, "set-cookie").unwrap();
    assert!(cookie.contains("Secure"), "{cookie}");
    let (_, headers, _) = http(s.addr, "GET", "/", &[], b"").await;
    assert!(!header(&headers, "set-cookie").unwrap().contains("Secure"));
    s.shutdown().await;

    // Not a trusted proxy: the header is ignored.
    let s = web_server(&dir.join("other.db"), WebConfig::default()).await;
    let (_, headers, _) = http(s.addr, "GET", "/", &[("X-Forwarded-Proto", "https")], b"").await;
    assert!(!header(&headers, "set-cookie").unwrap().contains("Secure"));
    s.shutdown().await;
}

#[tokio::test]
async fn an_invite_makes_one_account_and_open_signup_lets_anyone_in() {
    let dir = temp_dir("web-invite");
    let s = web_server(&dir.join("sirius.db"), WebConfig::default()).await;
    let mut admin = first_admin(&s, "ada", "correct horse").await;
    admin.get("/admin").await;
    let made = admin.post("/admin/invites", &[]).await;
    assert_eq!(made.status, 200);
    let at = made.body.find("/invite/").expect("the link is shown");
    let link: String = made.body[at..]
        .chars()
        .take_while(|c| !matches!(c, '<' | '"' | ' '))
        .collect();

    let mut bob = Browser::new(&s);
    let form = bob.get(&link).await;
    assert_eq!(form.status, 200);
    assert!(form.contains("Make an account"));
    let taken = bob
        .post(
            &link,
            &[("username", "Ada"), ("password", "bob's password")],
        )
        .await;
    assert_eq!(taken.status, 422);
    assert!(taken.contains("already taken"), "{}", taken.body);
    let done = bob
        .post(
            &link,
            &[("username", "bob"), ("password", "bob's password")],
        )
        .await;
    assert_eq!(done.status, 303, "{}", done.body);
    let home = bob.get("/").await;
    assert!(home.contains("signed in as bob"));
    assert!(!home.contains("href=\"/admin\""), "bob is not an admin");
    let bob_user = s.hub.store().user_by_name("bob").unwrap().unwrap();
    assert!(!bob_user.is_admin);

    // Used up.
    let mut carol = Browser::new(&s);
    let used = carol.get(&link).await;
    assert_eq!(used.status, 404);
    assert!(used.contains("already used"), "{}", used.body);
    s.shutdown().await;

    // --signup open: anyone can make an account on /signup.
    let s = web_server(&dir.join("open.db"), policy(SignupPolicy::Open)).await;
    first_admin(&s, "ada", "correct horse").await;
    let mut dan = Browser::new(&s);
    assert_eq!(dan.get("/signup").await.status, 200);
    let done = dan
        .post(
            "/signup",
            &[("username", "dan"), ("password", "dan's password")],
        )
        .await;
    assert_eq!(done.status, 303);
    assert!(!s.hub.store().user_by_name("dan").unwrap().unwrap().is_admin);
    s.shutdown().await;

    // --signup closed: no form, no invites needed; only admins add people.
    let s = web_server(&dir.join("closed.db"), policy(SignupPolicy::Closed)).await;
    let mut admin = first_admin(&s, "ada", "correct horse").await;
    let mut eve = Browser::new(&s);
    assert_eq!(eve.get("/signup").await.status, 403);
    admin.get("/admin").await;
    let added = admin
        .post(
            "/admin/users",
            &[("username", "eve"), ("password", "eve's password")],
        )
        .await;
    assert_eq!(added.status, 303);
    sign_in(&s, "eve", "eve's password").await;
    s.shutdown().await;
}

#[tokio::test]
async fn claiming_a_printer_with_precise_errors_and_seeing_it_online() {
    let dir = temp_dir("web-claim");
    let s = web_server(&dir.join("sirius.db"), policy(SignupPolicy::Open)).await;
    let mut ada = first_admin(&s, "ada", "correct horse").await;
    let identity = sirius::emulator::PrinterIdentity::random();
    let code = identity.claim_code().to_string();

    // A bridge with the printer on it.
    let bridge = "000d6f0001b3719d";
    let device = identity.address.to_string();
    let mut ws = connect(&s).await;
    send(&mut ws, &power_on(bridge)).await;
    send(&mut ws, &heartbeat(bridge, &device, 9)).await;
    assert!(eventually(2.0, || s.hub.is_online(identity.address)).await);
    // The printer's row is written by the store's writer thread.
    assert!(
        eventually(2.0, || s
            .hub
            .store()
            .printer_by_address(identity.address)
            .unwrap()
            .is_some())
        .await
    );

    ada.get("/claim").await;
    let mut typo = code.clone().into_bytes();
    typo[5] = b'a';
    let typo = String::from_utf8(typo).unwrap();
    let p = ada
        .post("/claim", &[("code", &typo), ("name", "Kitchen")])
        .await;
    assert_eq!(p.status, 422);
    assert!(
        p.contains("&#x27;a&#x27; at position 6") || p.contains("'a' at position 6"),
        "{}",
        p.body
    );
    let p = ada.post("/claim", &[("code", &code), ("name", "  ")]).await;
    assert_eq!(p.status, 422);
    assert!(p.contains("Give the printer a name"), "{}", p.body);

    let p = ada
        .post(
            "/claim",
            &[("code", &code.to_uppercase()), ("name", "Kitchen")],
        )
        .await;
    assert_eq!(p.status, 303, "{}", p.body);
    let home = ada.get(p.location().unwrap()).await;
    assert!(home.contains("Printer claimed"));
    assert!(home.contains("Kitchen"));
    assert!(home.contains("status on"), "online: {}", home.body);

    // Someone else with the same code is told it is taken.
    let mut bob = sign_up(&s, "bob", "bob's password").await;
    bob.get("/claim").await;
    let p = bob
        .post("/claim", &[("code", &code), ("name", "Mine")])
        .await;
    assert_eq!(p.status, 422);
    assert!(
        p.contains("already been claimed by someone else"),
        "{}",
        p.body
    );
    let home = bob.get("/").await;
    assert!(!home.contains("Kitchen"));
    s.shutdown().await;
}

#[tokio::test]
async fn account_page_changes_the_password_and_signs_out_everywhere() {
    let dir = temp_dir("web-account");
    let s = web_server(&dir.join("sirius.db"), WebConfig::default()).await;
    let mut one = first_admin(&s, "ada", "correct horse").await;
    let mut two = sign_in(&s, "ada", "correct horse").await;
    let page = one.get("/account").await;
    assert!(page.contains("(this one)"));
    assert_eq!(
        page.body.matches("name=\"session\"").count(),
        2,
        "{}",
        page.body
    );

    let wrong = one
        .post(
            "/account/password",
            &[
                ("current_password", "nope nope"),
                ("password", "battery staple"),
            ],
        )
        .await;
    assert_eq!(wrong.status, 422);
    let ok = one
        .post(
            "/account/password",
            &[
                ("current_password", "correct horse"),
                ("password", "battery staple"),
            ],
        )
        .await;
    assert_eq!(ok.status, 303);
    // The other browser was signed out; this one was not.
    assert!(
        two.get("/account")
            .await
            .location()
            .unwrap()
            .starts_with("/login")
    );
    assert_eq!(one.get("/account").await.status, 200);
    let store = &s.hub.store();
    assert!(
        store
            .verify_password("ada", "battery staple")
            .unwrap()
            .is_some()
    );

    // An API key is shown once and stored hashed.
    let key_page = one.post("/account/api-key", &[]).await;
    assert_eq!(key_page.status, 200);
    let at = key_page.body.find("class=\"secret\">").unwrap() + "class=\"secret\">".len();
    let key: String = key_page.body[at..]
        .chars()
        .take_while(|c| *c != '<')
        .collect();
    assert!(key.len() >= 32, "{key}");
    assert_eq!(
        store.user_by_api_key(&key).unwrap().unwrap().username,
        "ada"
    );
    let again = one.get("/account").await;
    assert!(!again.contains(&key));
    assert!(again.contains(&key[..4]));

    // Sign out everywhere: this browser too.
    let mut three = sign_in(&s, "ada", "battery staple").await;
    let p = one.post("/account/sessions/end-all", &[]).await;
    assert_eq!(p.status, 303);
    assert!(
        one.get("/account")
            .await
            .location()
            .unwrap()
            .starts_with("/login")
    );
    assert!(
        three
            .get("/account")
            .await
            .location()
            .unwrap()
            .starts_with("/login")
    );
    s.shutdown().await;
}

#[tokio::test]
async fn admin_disables_deletes_and_cannot_remove_the_last_admin() {
    let dir = temp_dir("web-admin");
    let s = web_server(&dir.join("sirius.db"), policy(SignupPolicy::Open)).await;
    let mut admin = first_admin(&s, "ada", "correct horse").await;
    let mut bob = sign_up(&s, "bob", "bob's password").await;
    let store = &s.hub.store();
    let bob_id = store.user_by_name("bob").unwrap().unwrap().id;
    let ada_id = store.user_by_name("ada").unwrap().unwrap().id;
    // Bob claims a printer.
    let identity = sirius::emulator::PrinterIdentity::random();
    store.ensure_printer(identity.address, 1).unwrap();
    store
        .claim(bob_id, &identity.claim_code(), "Bob's", 1)
        .unwrap();

    let page = admin.get("/admin").await;
    assert!(page.contains("bob") && page.contains("Bob&#x27;s") || page.contains("Bob's"));
    // Disabled: his session stops at once, and he can't sign in.
    let p = admin
        .post(&format!("/admin/users/{bob_id}/disable"), &[])
        .await;
    assert_eq!(p.status, 303);
    assert!(bob.get("/").await.contains("Sign in"));
    let mut bob2 = Browser::new(&s);
    bob2.get("/login").await;
    let p = bob2
        .post(
            "/login",
            &[("username", "bob"), ("password", "bob's password")],
        )
        .await;
    assert_eq!(p.status, 403);
    assert!(p.contains("disabled"));
    admin
        .post(&format!("/admin/users/{bob_id}/enable"), &[])
        .await;
    sign_in(&s, "bob", "bob's password").await;

    // The last admin can't be demoted, disabled or deleted.
    for action in ["unadmin", "disable"] {
        let p = admin
            .post(&format!("/admin/users/{ada_id}/{action}"), &[])
            .await;
        assert_eq!(p.status, 409, "{action}");
        assert!(p.contains("last administrator"));
    }
    // Reset bob's password.
    let p = admin
        .post(
            &format!("/admin/users/{bob_id}/password"),
            &[("password", "new password")],
        )
        .await;
    assert_eq!(p.status, 303);
    sign_in(&s, "bob", "new password").await;

    // Delete asks first, saying what happens to his printer.
    let ask = admin
        .post(&format!("/admin/users/{bob_id}/delete"), &[])
        .await;
    assert_eq!(ask.status, 200);
    assert!(ask.contains("unclaimed"), "{}", ask.body);
    assert!(store.user_by_id(bob_id).unwrap().is_some());
    let p = admin
        .post(
            &format!("/admin/users/{bob_id}/delete"),
            &[("confirm", "yes")],
        )
        .await;
    assert_eq!(p.status, 303);
    assert!(store.user_by_id(bob_id).unwrap().is_none());
    let printer = store.printer_by_address(identity.address).unwrap().unwrap();
    assert_eq!(printer.owner_id, None, "the printer is free");
    // And someone else can claim it with its code now.
    store
        .claim(ada_id, &identity.claim_code(), "Ada's now", 2)
        .unwrap();
    s.shutdown().await;
}

/// Ids the route walk fills in.
struct Ids {
    user: i64,
    invite: i64,
    printer: i64,
    message: i64,
    key: i64,
}

/// Every route of the app, with a method and a path (ids filled in).
fn routes(ids: &Ids, bridge: &str) -> Vec<(&'static str, String)> {
    let (user_id, invite_id, p, m, k) = (ids.user, ids.invite, ids.printer, ids.message, ids.key);
    vec![
        ("GET", format!("/printer/{p}")),
        ("GET", format!("/printer/{p}/message/{m}.png")),
        ("POST", format!("/printer/{p}/message/{m}/reprint")),
        ("POST", format!("/printer/{p}/message/{m}/cancel")),
        ("POST", format!("/printer/{p}/printkey/add")),
        ("POST", format!("/printer/{p}/printkey/{k}/delete")),
        ("POST", format!("/printer/{p}/share")),
        ("POST", format!("/printer/{p}/share/{user_id}/delete")),
        ("POST", format!("/printer/{p}/rename")),
        ("POST", format!("/printer/{p}/remove")),
        ("GET", format!("/printer/{p}/states")),
        ("GET", format!("/printer/{p}/print")),
        ("GET", "/claim".into()),
        ("POST", "/claim".into()),
        ("GET", "/account".into()),
        ("POST", "/account/password".into()),
        ("POST", "/account/api-key".into()),
        ("POST", "/account/sessions/end".into()),
        ("POST", "/account/sessions/end-all".into()),
        ("POST", "/logout".into()),
        ("GET", "/admin".into()),
        ("POST", "/admin/invites".into()),
        ("POST", format!("/admin/invites/{invite_id}/delete")),
        ("POST", "/admin/users".into()),
        ("POST", format!("/admin/users/{user_id}/password")),
        ("POST", format!("/admin/users/{user_id}/disable")),
        ("POST", format!("/admin/users/{user_id}/enable")),
        ("POST", format!("/admin/users/{user_id}/admin")),
        ("POST", format!("/admin/users/{user_id}/unadmin")),
        ("POST", format!("/admin/users/{user_id}/delete")),
        ("GET", format!("/admin/bridges/{bridge}")),
    ]
}

#[tokio::test]
async fn route_walk_strangers_other_users_and_forms_without_a_token() {
    let dir = temp_dir("web-walk");
    let s = web_server(&dir.join("sirius.db"), policy(SignupPolicy::Open)).await;
    let mut admin = first_admin(&s, "ada", "correct horse").await;
    let mut bob = sign_up(&s, "bob", "bob's password").await;
    let store = &s.hub.store();
    let bob_id = store.user_by_name("bob").unwrap().unwrap().id;
    let ada_id = store.user_by_name("ada").unwrap().unwrap().id;
    let invite = store
        .create_invite(
            "some-token-value",
            None,
            false,
            sirius::bridge::hub::unix_now(),
        )
        .unwrap();
    let bridge = "000d6f0001b3719d";
    let mut ws = connect(&s).await;
    send(&mut ws, &power_on(bridge)).await;
    assert!(eventually(2.0, || s.hub.bridges_connected() == 1).await);
    // Ada's printer, with a queued message and a print key.
    let identity = sirius::emulator::PrinterIdentity::random();
    let printer = store.ensure_printer(identity.address, 1).unwrap();
    store
        .claim(ada_id, &identity.claim_code(), "Ada's", 1)
        .unwrap();
    let page = sirius::raster::Page::white(384, 10).unwrap();
    let message = s
        .printing
        .submit(
            &store.printer_by_id(printer.id).unwrap().unwrap(),
            page,
            false,
            "Ada",
            "text",
            1,
            &Default::default(),
            None,
        )
        .await
        .unwrap()
        .message_id;
    let key = store
        .create_print_key(
            printer.id,
            &sirius::web::print_key::new_secret(),
            None,
            None,
            1,
        )
        .unwrap();
    let ids = Ids {
        user: bob_id,
        invite: invite.id,
        printer: printer.id,
        message,
        key: key.id,
    };
    let routes = routes(&ids, bridge);
    // The owner sees the page and the picture.
    assert_eq!(
        admin.get(&format!("/printer/{}", printer.id)).await.status,
        200
    );
    let png = admin
        .get(&format!("/printer/{}/message/{message}.png", printer.id))
        .await;
    assert_eq!(png.status, 200);
    assert_eq!(png.header("content-type"), Some("image/png"));
    // A printer that does not exist looks the same as one that is not yours.
    assert_eq!(
        admin
            .get(&format!("/printer/{}", printer.id + 100))
            .await
            .status,
        404
    );

    // Signed out: every page but the account pages sends to the login;
    // nothing changes.
    let before = snapshot(&s);
    let mut stranger = Browser::new(&s);
    stranger.get("/login").await;
    for (method, path) in &routes {
        let p = if *method == "GET" {
            stranger.get(path).await
        } else {
            stranger
                .post(
                    path,
                    &[("password", "whatever123"), ("code", "x"), ("name", "x")],
                )
                .await
        };
        assert_eq!(p.status, 303, "{method} {path} signed out: {}", p.body);
        // Signing out when signed out just goes home (the sign-in page).
        let to = p.location().unwrap();
        assert!(
            to.starts_with("/login") || (path == "/logout" && to == "/"),
            "{method} {path}"
        );
    }
    assert_eq!(snapshot(&s), before, "signed out, nothing changed");
    // The public ones answer.
    for path in ["/", "/login", "/healthz"] {
        assert_eq!(stranger.get(path).await.status, 200, "{path}");
    }
    assert_eq!(stranger.get("/signup").await.status, 200);
    assert_eq!(stranger.get("/no/such/page").await.status, 404);

    // Another (non-admin) user: every admin and printer route is the 404
    // page, the same as a page that does not exist; nothing changes.
    bob.get("/").await;
    let before = snapshot(&s);
    for (method, path) in routes
        .iter()
        .filter(|r| r.1.starts_with("/admin") || r.1.starts_with("/printer"))
    {
        let p = if *method == "GET" {
            bob.get(path).await
        } else {
            bob.post(
                path,
                &[
                    ("password", "whatever123"),
                    ("confirm", "yes"),
                    ("username", "bob"),
                    ("name", "Mine"),
                ],
            )
            .await
        };
        assert_eq!(p.status, 404, "{method} {path} as bob: {}", p.body);
        assert!(p.contains("There is nothing here"), "{method} {path}");
    }
    assert_eq!(snapshot(&s), before, "as another user, nothing changed");

    // Every POST without a token, signed in as the admin: 403, nothing
    // changed.
    admin.get("/admin").await;
    let before = snapshot(&s);
    for (_, path) in routes.iter().filter(|r| r.0 == "POST") {
        let p = admin
            .post_raw(
                path,
                &[
                    ("password", "whatever123"),
                    ("confirm", "yes"),
                    ("code", "x"),
                    ("name", "x"),
                    ("username", "zed"),
                ],
                true,
            )
            .await;
        assert_eq!(p.status, 403, "POST {path} without a token: {}", p.body);
    }
    for path in ["/login", "/signup", "/logout", "/invite/some-token-value"] {
        let p = admin
            .post_raw(
                path,
                &[("username", "zed"), ("password", "whatever123")],
                true,
            )
            .await;
        assert_eq!(p.status, 403, "POST {path} without a token");
    }
    assert_eq!(snapshot(&s), before, "without a token, nothing changed");
    s.shutdown().await;
}

/// On an open-signup server: the first account, "ada" (an administrator),
/// and a user `name` who signed up, each signed in.
async fn admin_and_user(s: &RunningServer, name: &str) -> (Browser, Browser) {
    let ada = first_admin(s, "ada", "correct horse").await;
    let other = sign_up(s, name, &format!("{name}'s password")).await;
    (ada, other)
}

/// A printer claimed by `owner` as "Kitchen" that has never called home;
/// its id.
fn offline_printer_of(s: &RunningServer, owner: i64) -> i64 {
    let store = s.hub.store();
    let identity = sirius::emulator::PrinterIdentity::random();
    let p = store.ensure_printer(identity.address, 1).unwrap().id;
    store
        .claim(owner, &identity.claim_code(), "Kitchen", 1)
        .unwrap();
    p
}

#[tokio::test]
async fn shared_users_print_and_see_only_their_own_messages_and_the_owner_removes_the_printer() {
    use sirius::store::MessageState;
    let dir = temp_dir("web-share");
    let s = web_server(&dir.join("sirius.db"), policy(SignupPolicy::Open)).await;
    let (mut ada, mut bob) = admin_and_user(&s, "bob").await;
    let store = &s.hub.store();
    let ada_id = store.user_by_name("ada").unwrap().unwrap().id;
    let p = offline_printer_of(&s, ada_id);
    ada.get(&format!("/printer/{p}")).await;
    let shared = ada
        .post(&format!("/printer/{p}/share"), &[("username", "bob")])
        .await;
    assert_eq!(shared.status, 303, "{}", shared.body);

    // Ada prints from the compose page: a drawing, no face, in mono.
    ada.get(&format!("/printer/{p}/print")).await;
    let sent = ada
        .post_multipart(
            &format!("/printer/{p}/print"),
            &[
                ("message", "From Ada, in mono"),
                ("face", "noface"),
                ("font", "mono"),
                ("picture", "drawing"),
            ],
            None,
        )
        .await;
    assert_eq!(sent.status, 303, "{}", sent.body);
    // Bob prints to the shared printer.
    let page = bob.get(&format!("/printer/{p}/print")).await;
    assert_eq!(page.status, 200);
    assert!(
        page.contains("DejaVu Sans Mono"),
        "the font choice is offered"
    );
    let sent = bob
        .post_multipart(
            &format!("/printer/{p}/print"),
            &[("message", "From Bob"), ("face", "default")],
            None,
        )
        .await;
    assert_eq!(sent.status, 303, "{}", sent.body);

    let messages = store.recent_messages(p, 10).unwrap();
    assert_eq!(messages.len(), 2);
    let (bobs, adas) = (&messages[0], &messages[1]);
    assert_eq!(adas.sender, "ada");
    assert_eq!(adas.command_kind, "set_delivery_and_print_no_face");
    assert_eq!(adas.sender_user_id, Some(ada_id));
    assert_eq!(bobs.sender, "bob");
    assert_eq!(bobs.command_kind, "set_delivery_and_print");
    assert_eq!(bobs.state, MessageState::Queued, "the printer is offline");

    // The mono font and the threshold made a different page than the
    // preview with the defaults would.
    let preview = |font: &'static str, picture: &'static str| {
        let mut b = Browser {
            addr: ada.addr,
            cookies: ada.cookies.clone(),
            csrf: ada.csrf.clone(),
        };
        let path = format!("/printer/{p}/preview");
        async move {
            b.post_multipart(
                &path,
                &[
                    ("message", "From Ada, in mono"),
                    ("font", font),
                    ("picture", picture),
                ],
                None,
            )
            .await
        }
    };
    let mono = preview("mono", "drawing").await;
    let sans = preview("sans", "photo").await;
    assert_eq!(mono.status, 200);
    assert_eq!(mono.header("content-type"), Some("image/png"));
    assert_ne!(mono.body, sans.body, "the font choice changes the page");

    // Bob sees his own message, not Ada's, and only his own picture.
    let bob_page = bob.get(&format!("/printer/{p}")).await;
    assert_eq!(bob_page.status, 200);
    assert!(bob_page.contains(&format!("data-message=\"{}\"", bobs.id)));
    assert!(!bob_page.contains(&format!("data-message=\"{}\"", adas.id)));
    assert!(!bob_page.contains("Print keys"), "only the owner sees keys");
    assert_eq!(
        bob.get(&format!("/printer/{p}/message/{}.png", bobs.id))
            .await
            .status,
        200
    );
    assert_eq!(
        bob.get(&format!("/printer/{p}/message/{}.png", adas.id))
            .await
            .status,
        404
    );
    let reprint = bob
        .post(&format!("/printer/{p}/message/{}/reprint", adas.id), &[])
        .await;
    assert_eq!(reprint.status, 404, "not his to print again");
    // The states, for the page to update itself.
    let states = bob.get(&format!("/printer/{p}/states")).await;
    assert_eq!(states.status, 200);
    let v: serde_json::Value = serde_json::from_str(&states.body).unwrap();
    assert_eq!(v["online"], false);
    assert_eq!(v["messages"].as_array().unwrap().len(), 1);
    assert_eq!(v["messages"][0]["id"], bobs.id);
    assert_eq!(v["messages"][0]["words"], "waiting");
    // Bob cancels his own.
    let cancel = bob
        .post(&format!("/printer/{p}/message/{}/cancel", bobs.id), &[])
        .await;
    assert_eq!(cancel.status, 303);
    assert_eq!(store.recent_messages(p, 10).unwrap().len(), 1);
    // Ada's page: everything, and the live states.
    let ada_page = ada.get(&format!("/printer/{p}")).await;
    assert!(ada_page.contains(&format!("data-message=\"{}\"", adas.id)));
    assert!(
        ada_page.contains("http-equiv=\"refresh\""),
        "reloads without JS while one waits"
    );

    // Removing needs the box ticked.
    let unticked = ada.post(&format!("/printer/{p}/remove"), &[]).await;
    assert_eq!(unticked.status, 422);
    assert!(unticked.contains("Tick the box"));
    assert_eq!(store.printers_owned_by(ada_id).unwrap().len(), 1);
    let removed = ada
        .post(&format!("/printer/{p}/remove"), &[("confirm", "yes")])
        .await;
    assert_eq!(removed.status, 303);
    let home = ada.get("/?done=removed").await;
    assert!(home.contains("Printer removed"));
    assert!(store.printers_owned_by(ada_id).unwrap().is_empty());
    assert!(store.recent_messages(p, 10).unwrap().is_empty());
    assert_eq!(ada.get(&format!("/printer/{p}")).await.status, 404);
    assert_eq!(bob.get(&format!("/printer/{p}")).await.status, 404);
    s.shutdown().await;
}

#[tokio::test]
async fn the_earlier_servers_api_prints_with_an_api_key() {
    let dir = temp_dir("web-api");
    let s = web_server(&dir.join("sirius.db"), policy(SignupPolicy::Open)).await;
    let (mut ada, mut eve) = admin_and_user(&s, "eve").await;
    let store = &s.hub.store();
    let ada_id = store.user_by_name("ada").unwrap().unwrap().id;
    let p = offline_printer_of(&s, ada_id);

    // The key, made on the account page.
    ada.get("/account").await;
    let made = ada.post("/account/api-key", &[]).await;
    assert_eq!(made.status, 200);
    let at = made.body.find("<code class=\"secret\">").unwrap() + "<code class=\"secret\">".len();
    let key: String = made.body[at..].chars().take_while(|c| *c != '<').collect();
    assert!(key.len() >= 24, "{key}");
    eve.get("/account").await;
    let made = eve.post("/account/api-key", &[]).await;
    let at = made.body.find("<code class=\"secret\">").unwrap() + "<code class=\"secret\">".len();
    let eves: String = made.body[at..].chars().take_while(|c| *c != '<').collect();

    let path = format!("/ext_api/v1/printer/{p}/print_html");
    let bearer = format!("Bearer {key}");
    let body = br#"{"message": "<h1>From a script</h1>", "face": "noface"}"#;
    let (status, _, answer) =
        http(s.addr, "POST", &path, &[("Authorization", &bearer)], body).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
    let v: serde_json::Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!(v["status"], "queued", "the printer is offline: it waits");
    let m = store
        .message(v["message_id"].as_i64().unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(m.printer_id, p);
    assert_eq!(m.sender, "ada");
    assert_eq!(m.content_kind, "html");
    assert_eq!(m.command_kind, "set_delivery_and_print_no_face");

    // ?api_key= as the earlier server's clients send it, with no content type.
    let (status, _, _) = http(
        s.addr,
        "POST",
        &format!("{path}?api_key={key}"),
        &[],
        br#"{"message": "again", "face": "default"}"#,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(store.recent_messages(p, 10).unwrap().len(), 2);

    // No key, a wrong key: 401. Someone else's printer: 404. Bad JSON: 400.
    let (status, h, _) = http(s.addr, "POST", &path, &[], body).await;
    assert_eq!(status, 401);
    assert!(header(&h, "www-authenticate").is_some());
    let (status, _, _) = http(
        s.addr,
        "POST",
        &path,
        &[("Authorization", "Bearer not-a-key-at-all-not-a-key")],
        body,
    )
    .await;
    assert_eq!(status, 401);
    let eve_bearer = format!("Bearer {eves}");
    let (status, _, _) = http(
        s.addr,
        "POST",
        &path,
        &[("Authorization", &eve_bearer)],
        body,
    )
    .await;
    assert_eq!(status, 404, "not eve's printer");
    let (status, _, answer) = http(
        s.addr,
        "POST",
        &path,
        &[("Authorization", &bearer)],
        br#"{"face": "noface"}"#,
    )
    .await;
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&answer).contains("\"message\""));
    let (status, _, _) = http(s.addr, "GET", &path, &[("Authorization", &bearer)], b"").await;
    assert_eq!(status, 405);
    assert_eq!(
        store.recent_messages(p, 10).unwrap().len(),
        2,
        "nothing else printed"
    );

    // A new key stops the old one.
    ada.post("/account/api-key", &[]).await;
    let (status, _, _) = http(s.addr, "POST", &path, &[("Authorization", &bearer)], body).await;
    assert_eq!(status, 401);
    s.shutdown().await;
}

#[tokio::test]
async fn static_files_are_cached_by_hash_and_pages_stay_small() {
    let dir = temp_dir("web-static");
    let s = web_server(&dir.join("sirius.db"), WebConfig::default()).await;
    let mut b = Browser::new(&s);
    let page = b.get("/").await;
    assert!(page.body.len() < 20_000, "{} bytes", page.body.len());
    let at = page.body.find("/static/app.css?v=").unwrap();
    let url: String = page.body[at..].chars().take_while(|c| *c != '"').collect();
    let css = b.get(&url).await;
    assert_eq!(css.status, 200);
    assert_eq!(css.header("content-type"), Some("text/css; charset=utf-8"));
    assert!(css.header("cache-control").unwrap().contains("immutable"));
    let etag = css.header("etag").unwrap().to_string();
    let again = b
        .request("GET", "/static/app.css", &[("If-None-Match", &etag)], b"")
        .await;
    assert_eq!(again.status, 304);
    assert_eq!(b.get("/static/nope.css").await.status, 404);
    s.shutdown().await;
}

#[test]
fn the_claim_code_of_a_device_address_is_what_the_test_printer_uses() {
    // Guards the helper the claim test relies on.
    let identity = sirius::emulator::PrinterIdentity::random();
    let code = ClaimCode::parse(&identity.claim_code().to_string()).unwrap();
    assert_eq!(code.hardware_xor(), identity.address.hardware_xor());
    let _ = DeviceAddress::parse(&identity.address.to_string()).unwrap();
}
