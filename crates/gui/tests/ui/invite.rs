//! Invite links: given on the command line, pasted into the Server field,
//! or handed over while the window runs (the macOS event's inbox). A link
//! fills in the connect screen and never connects by itself; Connect then
//! trusts its certificate without asking.

use egui_kittest::kittest::Queryable;

use crate::harness::*;
use tlschat_client_core::state::ConnState;
use tlschat_gui::{cli, Screen};
use tlschat_protocol::{Fingerprint, HostPort, InviteCode, InviteLink};

/// A link to `world`'s server carrying its fingerprint and a code.
fn link_to(world: &World, fingerprint: Fingerprint) -> String {
    let server: HostPort = world.server().parse().expect("host:port");
    let code = InviteCode::from_bytes(&[0x5a; 20]);
    InviteLink::new(&server, fingerprint, Some(code))
        .expect("a link host")
        .to_string()
}

/// `SHA256:ab12…89ef`, as the connect screen reminds of it.
fn short(fp: &Fingerprint) -> String {
    let hex = fp.to_string().replace("SHA256:", "");
    let chars: Vec<char> = hex.chars().collect();
    let head: String = chars.iter().take(4).collect();
    let tail: String = chars.iter().skip(chars.len() - 4).collect();
    format!("SHA256:{head}…{tail}")
}

fn begin(gui: &mut Gui, args: &[&str]) {
    let args = std::iter::once("tlschat-gui").chain(args.iter().copied());
    let start = cli::parse(args).expect("not --help or --version");
    gui.state_mut().begin(start);
    gui.run_ok();
}

fn field(gui: &Gui, label: &str) -> String {
    gui.get_by_label(label).value().unwrap_or_default()
}

#[test]
fn a_link_argument_fills_in_the_connect_screen_and_does_not_connect() {
    let world = World::start();
    let mut watcher = world.peer("watcher");
    let (mut gui, _) = world.gui();
    let link = link_to(&world, world.fingerprint);
    begin(&mut gui, &["--nick", "invited", &link]);
    for _ in 0..10 {
        gui.step();
    }
    assert!(matches!(gui.state().screen(), Screen::Connect));
    assert_eq!(field(&gui, "Server"), world.server());
    assert_eq!(field(&gui, "Nickname"), "invited");
    assert!(gui.get_by_label("Nickname").is_focused());
    let note = format!(
        "invited: the certificate {} will be trusted",
        short(&world.fingerprint)
    );
    assert!(shows(&gui, &note), "{note}\n{:#?}", gui.root());
    // Nothing was sent and nothing stored; the code is in no field.
    let seen = watcher.lines_until_sync("after");
    assert!(!seen.iter().any(|l| l.contains("invited")), "{seen:?}");
    assert!(!world.home.path().join("known_hosts").exists());
    let code = InviteCode::from_bytes(&[0x5a; 20]);
    assert!(!shows(&gui, code.expose()));
}

#[test]
fn a_bad_link_shows_its_error_and_a_pasted_one_fills_in_the_form() {
    let world = World::start();
    let (mut gui, _) = world.gui();
    let bad = format!("tlschat://{}/?fp=SHA256:12zz", world.server());
    begin(&mut gui, &[&bad]);
    assert!(matches!(gui.state().screen(), Screen::Connect));
    assert!(
        shows(&gui, "invite link: bad fingerprint"),
        "{:#?}",
        gui.root()
    );
    assert_eq!(field(&gui, "Server"), "", "a broken link is not kept");
    // Pasted into the Server field, after what was there.
    type_into(&mut gui, "Server", "old.example:1");
    type_into(&mut gui, "Server", "tlschat://тест.рф/?fp=x");
    assert!(shows(&gui, "invite link: bad host"), "{:#?}", gui.root());
    gui.state_mut().form_mut().server.clear();
    let link = link_to(&world, world.fingerprint);
    type_into(&mut gui, "Server", &link);
    gui.run_ok();
    assert_eq!(field(&gui, "Server"), world.server());
    assert!(gui.get_by_label("Nickname").is_focused());
    assert!(shows(&gui, &short(&world.fingerprint)));
    assert!(!shows(&gui, "invite link:"), "the error is gone");
}

#[test]
fn connect_with_a_broken_pasted_link_shows_the_links_error_not_its_code() {
    let world = World::start();
    let (mut gui, _) = world.gui();
    let code = InviteCode::from_bytes(&[0x5a; 20]);
    let bad = format!(
        "tlschat://{}/?fp=SHA256:12zz&code={}",
        world.server(),
        code.expose()
    );
    type_into(&mut gui, "Server", &bad);
    type_into(&mut gui, "Nickname", "invited");
    gui.get_by_label("Connect").click();
    gui.run_ok();
    assert!(matches!(gui.state().screen(), Screen::Connect));
    assert!(
        shows(&gui, "invite link: bad fingerprint"),
        "{:#?}",
        gui.root()
    );
    assert!(!shows(&gui, "server:"), "{:#?}", gui.root());
    // The field still holds the link to fix; no error repeats it.
    assert!(field(&gui, "Server").contains(code.expose()));
    assert!(!shows(&gui, code.expose()), "{:#?}", gui.root());
}

#[test]
fn connect_with_a_link_reaches_the_chat_with_no_trust_question() {
    let world = World::start();
    let mut watcher = world.peer("watcher");
    let (mut gui, _) = world.gui();
    begin(&mut gui, &[&link_to(&world, world.fingerprint)]);
    type_into(&mut gui, "Nickname", "invited");
    gui.get_by_label("Connect").click();
    run_until(&mut gui, STEP, "the chat, connected", |g| {
        assert!(
            !matches!(g.state().screen(), Screen::Trust { .. }),
            "a trust question"
        );
        conn(g) == Some(ConnState::Connected)
    });
    watcher.wait_for("JOIN #lobby invited");
    // Stored as if the person had said yes to the trust question.
    let stored =
        std::fs::read_to_string(world.home.path().join("known_hosts")).expect("known_hosts");
    assert!(
        stored.contains(&format!("{} {}", world.addr, world.fingerprint)),
        "{stored}"
    );
    // Recent servers hold host:port, never the link's code.
    let settings = std::fs::read_to_string(world.home.path().join("gui.toml")).expect("gui.toml");
    assert!(settings.contains(&world.server()), "{settings}");
    let code = InviteCode::from_bytes(&[0x5a; 20]);
    assert!(!settings.contains(code.expose()), "{settings}");
}

#[test]
fn a_link_for_another_certificate_is_refused_before_anything_is_sent() {
    let world = World::start();
    let mut watcher = world.peer("watcher");
    let (mut gui, _) = world.gui();
    begin(&mut gui, &[&link_to(&world, Fingerprint([0x42; 32]))]);
    type_into(&mut gui, "Nickname", "invited");
    gui.get_by_label("Connect").click();
    run_until(&mut gui, STEP, "the changed-certificate screen", |g| {
        shows(g, "has changed")
    });
    assert!(shows(&gui, "Certificate the invite link names"));
    assert!(shows(&gui, &grouped(&Fingerprint([0x42; 32]))));
    assert!(shows(&gui, "nothing was stored"));
    let seen = watcher.lines_until_sync("after");
    assert!(!seen.iter().any(|l| l.contains("invited")), "{seen:?}");
    assert!(!world.home.path().join("known_hosts").exists());
}

#[test]
fn a_link_never_replaces_a_known_certificate() {
    let world = World::start();
    let known_hosts = world.home.path().join("known_hosts");
    let line = format!("{} {}\n", world.addr, Fingerprint([0x42; 32]));
    std::fs::write(&known_hosts, &line).expect("write known_hosts");
    let (mut gui, _) = world.gui();
    begin(&mut gui, &[&link_to(&world, world.fingerprint)]);
    type_into(&mut gui, "Nickname", "invited");
    gui.get_by_label("Connect").click();
    run_until(&mut gui, STEP, "the changed-certificate screen", |g| {
        shows(g, "has changed")
    });
    assert!(shows(&gui, "a link never replaces a known certificate"));
    assert!(shows(&gui, "Known certificate"));
    assert!(shows(&gui, "Certificate the invite link names"));
    assert_eq!(std::fs::read_to_string(&known_hosts).expect("read"), line);
}

#[test]
fn a_link_arriving_while_connected_waits_in_a_bar() {
    let world = World::start();
    let (mut gui, _) = connect_trusted(&world, "gui");
    let inbox = gui.state().inbox();
    inbox.push("tlschat://nonsense".into());
    gui.run_ok();
    assert!(shows(&gui, "invite link:"), "{:#?}", gui.root());
    gui.get_by_label("Dismiss").click();
    gui.run_ok();
    assert!(!shows(&gui, "invite link:"));

    inbox.push(link_to(&world, world.fingerprint));
    gui.run_ok();
    let bar = format!("Invite to {} received", world.server());
    assert!(shows(&gui, &bar), "{:#?}", gui.root());
    assert_eq!(conn(&gui), Some(ConnState::Connected), "still connected");
    gui.get_by_label("Dismiss").click();
    gui.run_ok();
    assert!(!shows(&gui, &bar));
    assert_eq!(conn(&gui), Some(ConnState::Connected));

    inbox.push(link_to(&world, world.fingerprint));
    gui.run_ok();
    gui.get_by_label("Open (disconnects)").click();
    gui.run_ok();
    assert!(matches!(gui.state().screen(), Screen::Connect));
    assert_eq!(field(&gui, "Server"), world.server());
    assert!(shows(&gui, &short(&world.fingerprint)));
    assert!(!shows(&gui, &bar));
}

/// A server that asks `PASS join` (what a private server asks a
/// newcomer), takes one answer, refuses it and hangs up: the answer
/// comes back on the channel. On a runtime of its own.
struct Closed {
    // Runs the server task until the test ends.
    _rt: tokio::runtime::Runtime,
    addr: std::net::SocketAddr,
    fingerprint: Fingerprint,
    answer: std::sync::mpsc::Receiver<String>,
    _dir: tempfile::TempDir,
}

impl Closed {
    fn start() -> Closed {
        use tlschat_protocol::connection::Connection;
        use tlschat_protocol::{Frame, MAX_CLIENT_LINE};
        use tlschat_server_core::{certs, tls};

        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let dir = tempfile::tempdir().expect("temp dir");
        let made = certs::generate(&["127.0.0.1".into()], 30).expect("a certificate");
        let paths = certs::write_pair(dir.path(), &made, false).expect("written");
        let cert = certs::load(&paths).expect("loaded");
        let acceptor = tokio_rustls::TlsAcceptor::from(tls::server_config(&cert).expect("config"));
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        let (tx, answer) = std::sync::mpsc::channel();
        rt.spawn(async move {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            let mut conn = Connection::new(tls, MAX_CLIENT_LINE);
            let read = async |conn: &mut Connection<_>| match conn.read_frame().await {
                Ok(Some(Frame::Line(line))) => Some(line),
                _ => None,
            };
            let _ = conn.write_line(b"NICK\n").await;
            if read(&mut conn).await.is_none() {
                return;
            }
            let _ = conn.write_line(b"PASS join\n").await;
            if let Some(line) = read(&mut conn).await {
                let _ = tx.send(line);
            }
            let _ = conn
                .write_line(b"REFUSE wrong password or invite code\n")
                .await;
        });
        Closed {
            _rt: rt,
            addr,
            fingerprint: cert.fingerprint,
            answer,
            _dir: dir,
        }
    }

    fn answer(&self) -> String {
        self.answer
            .recv_timeout(STEP)
            .expect("an answer to PASS join")
    }
}

#[test]
fn pass_join_is_answered_with_the_links_code_without_asking() {
    let server = Closed::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut gui, _) = gui_with(tlschat_gui::settings::Paths::in_dir(dir.path()));
    let code = InviteCode::from_bytes(&[0x5a; 20]);
    let link = InviteLink::new(
        &server.addr.to_string().parse().expect("host:port"),
        server.fingerprint,
        Some(code.clone()),
    )
    .expect("a link")
    .to_string();
    begin(&mut gui, &["--nick", "invited", &link]);
    gui.get_by_label("Connect").click();
    gui.run_ok();
    assert_eq!(server.answer(), code.expose());
    run_until(&mut gui, STEP, "refused", |g| {
        assert!(!shows(g, "Join password"), "a dialog was opened");
        shows(g, "wrong password or invite code")
    });
}

#[test]
fn pass_join_without_a_code_asks_in_a_masked_dialog() {
    let server = Closed::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut gui, _) = gui_with(tlschat_gui::settings::Paths::in_dir(dir.path()));
    let pin = server.fingerprint.to_string();
    let addr = server.addr.to_string();
    begin(
        &mut gui,
        &["--nick", "invited", "--fingerprint", &pin, &addr],
    );
    run_until(&mut gui, STEP, "the join password dialog", |g| {
        g.query_by_role(egui::accesskit::Role::PasswordInput)
            .is_some()
    });
    assert!(shows(&gui, "asks its join password or an invite code"));
    let secret = "пароль-密码-🔑";
    let field = gui.get_by_label("Join password or invite code");
    field.focus();
    field.type_text(secret);
    gui.run_ok();
    assert!(!shows(&gui, secret), "shown in the clear");
    gui.get_by_label("Log in").click();
    gui.run_ok();
    assert_eq!(server.answer(), secret);
}
