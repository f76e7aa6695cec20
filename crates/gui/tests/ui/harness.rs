//! The UI tests' world: a real tlschat server (tlschat-server-core, on
//! 127.0.0.1 with an ephemeral port and a temporary data directory) on a
//! tokio runtime of its own, raw TLS peers that log in to it, and the GUI
//! under egui_kittest with its files (known_hosts, gui.toml) in a
//! temporary directory. Every wait is bounded.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use egui_kittest::kittest::Queryable;
use egui_kittest::Harness;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;
use tokio_util::sync::CancellationToken;

use tlschat_client_core::state::ConnState;
use tlschat_gui::notify::RecordingNotifier;
use tlschat_gui::settings::Paths;
use tlschat_gui::{App, Screen};
use tlschat_protocol::connection::Connection;
use tlschat_protocol::{Fingerprint, Frame, MAX_SERVER_LINE};
use tlschat_server_core::config::ServerConfig;
use tlschat_server_core::Server;

/// How long one expected thing may take.
pub const STEP: Duration = Duration::from_secs(15);
pub const ADMIN_PASSWORD: &str = "correct horse battery staple";

pub type Gui = Harness<'static, App>;

struct Running {
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

pub struct World {
    pub rt: tokio::runtime::Runtime,
    pub addr: SocketAddr,
    pub cert: CertificateDer<'static>,
    pub fingerprint: Fingerprint,
    data: tempfile::TempDir,
    /// Where the server keeps its certificate and key.
    cert_files: [PathBuf; 2],
    /// The GUI's config directory (known_hosts, gui.toml).
    pub home: tempfile::TempDir,
    running: Option<Running>,
}

impl World {
    pub fn start() -> World {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let data = tempfile::tempdir().expect("temp dir");
        let home = tempfile::tempdir().expect("temp dir");
        let listen: SocketAddr = "127.0.0.1:0".parse().expect("address");
        let (addr, cert, cert_files, running) = rt.block_on(serve(&data, listen));
        World {
            rt,
            addr,
            fingerprint: Fingerprint::of_der(&cert),
            cert,
            data,
            cert_files,
            home,
            running: Some(running),
        }
    }

    /// The server as the GUI's Server field takes it.
    pub fn server(&self) -> String {
        self.addr.to_string()
    }

    pub fn paths(&self) -> Paths {
        Paths::in_dir(self.home.path())
    }

    /// Stops the server (gracefully) and starts it again on the same port
    /// with the same data (so the same certificate).
    pub fn restart(&mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown.cancel();
            self.rt.block_on(async {
                let _ = tokio::time::timeout(STEP, r.task).await;
            });
        }
        let (_, _, _, running) = self.rt.block_on(serve(&self.data, self.addr));
        self.running = Some(running);
    }

    /// Stops the server and starts it again with a certificate of its own
    /// making, as if the operator replaced it (or someone intercepts).
    pub fn restart_with_a_new_certificate(&mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown.cancel();
            self.rt.block_on(async {
                let _ = tokio::time::timeout(STEP, r.task).await;
            });
        }
        for file in &self.cert_files {
            std::fs::remove_file(file).expect("remove the certificate or key");
        }
        let (_, cert, _, running) = self.rt.block_on(serve(&self.data, self.addr));
        assert_ne!(cert, self.cert, "a new certificate");
        self.running = Some(running);
    }

    /// A raw TLS client logged in as `nick`, in `#lobby`.
    pub fn peer(&self, nick: &str) -> Peer {
        let config =
            tlschat_server_core::tls::client_config_with_roots(std::slice::from_ref(&self.cert))
                .expect("client config");
        let tls = self.rt.block_on(async {
            let tcp = TcpStream::connect(self.addr).await.expect("tcp connect");
            TlsConnector::from(config)
                .connect(ServerName::try_from("localhost").expect("name"), tcp)
                .await
                .expect("TLS handshake")
        });
        let mut peer = Peer {
            conn: Connection::new(tls, MAX_SERVER_LINE),
            handle: self.rt.handle().clone(),
        };
        peer.wait_for("NICK");
        peer.send(nick);
        peer.wait_for("USERS #lobby");
        peer
    }

    /// The GUI, with a recording notifier.
    pub fn gui(&self) -> (Gui, RecordingNotifier) {
        gui_with(self.paths())
    }
}

/// The GUI with its files under `paths`.
pub fn gui_with(paths: Paths) -> (Gui, RecordingNotifier) {
    let notifier = RecordingNotifier::default();
    let recorder = notifier.clone();
    let harness = Harness::builder()
        .with_size([1024.0, 680.0])
        .with_max_steps(64)
        // Whether this machine's fonts cover every script is the font test's
        // question (fonts.rs); here, only the flows are.
        .allow_missing_glyphs()
        .build_eframe(move |cc| App::with(&cc.egui_ctx, paths, Box::new(recorder)));
    (harness, notifier)
}

async fn serve(
    data: &tempfile::TempDir,
    listen: SocketAddr,
) -> (SocketAddr, CertificateDer<'static>, [PathBuf; 2], Running) {
    let mut config = ServerConfig::new(data.path());
    config.listen = listen;
    config.admin_password = Some(ADMIN_PASSWORD.into());
    config.limits.max_per_address = 0;
    config.limits.rate_limit = 0;
    config.limits.address_rate_limit = 0;
    let server = Server::bind(config).await.expect("server binds");
    let addr = server.local_addr();
    let files = &server.info().cert;
    let cert = CertificateDer::from_pem_file(&files.cert).expect("cert pem");
    let cert_files = [files.cert.clone(), files.key.clone()];
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(server.run(shutdown.clone()));
    (addr, cert, cert_files, Running { shutdown, task })
}

/// A second client, speaking the protocol by hand.
pub struct Peer {
    conn: Connection<TlsStream<TcpStream>>,
    handle: tokio::runtime::Handle,
}

impl Peer {
    pub fn send(&mut self, line: &str) {
        let conn = &mut self.conn;
        self.handle
            .block_on(conn.write_line(format!("{line}\n").as_bytes()))
            .expect("send");
    }

    /// Skips lines until one starts with `prefix`; returns it.
    pub fn wait_for(&mut self, prefix: &str) -> String {
        let deadline = Instant::now() + STEP;
        loop {
            let line = self.next_line(deadline);
            if line.starts_with(prefix) {
                return line;
            }
        }
    }

    /// Every line until `/ping token` comes back: what the server sent
    /// before it.
    pub fn lines_until_sync(&mut self, token: &str) -> Vec<String> {
        self.send(&format!("/ping {token}"));
        let deadline = Instant::now() + STEP;
        let mut seen = Vec::new();
        loop {
            let line = self.next_line(deadline);
            if line == format!("PONG {token}") {
                return seen;
            }
            seen.push(line);
        }
    }

    fn next_line(&mut self, deadline: Instant) -> String {
        let left = deadline.saturating_duration_since(Instant::now());
        let conn = &mut self.conn;
        match self
            .handle
            .block_on(async { tokio::time::timeout(left, conn.read_frame()).await })
        {
            Ok(Ok(Some(Frame::Line(l)))) => l,
            Ok(other) => panic!("the peer's connection ended: {other:?}"),
            Err(_) => panic!("no line within {STEP:?}"),
        }
    }
}

/// Steps the GUI until `done` holds, within `within`; the failure names
/// `what` and shows the accessibility tree.
pub fn run_until(gui: &mut Gui, within: Duration, what: &str, mut done: impl FnMut(&Gui) -> bool) {
    let deadline = Instant::now() + within;
    loop {
        gui.step();
        if done(gui) {
            gui.run_ok();
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within {within:?}\n{:#?}",
            gui.root()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Is some text on screen containing `text`?
pub fn shows(gui: &Gui, text: &str) -> bool {
    gui.query_all_by_label_contains(text).next().is_some()
}

/// Types `text` into the field labelled `label`.
pub fn type_into(gui: &mut Gui, label: &str, text: &str) {
    let field = gui.get_by_label(label);
    field.focus();
    field.type_text(text);
    gui.run_ok();
}

/// Fills in the connect screen and presses Connect.
pub fn start_connect(gui: &mut Gui, server: &str, nick: &str) {
    gui.run_ok();
    type_into(gui, "Server", server);
    type_into(gui, "Nickname", nick);
    gui.get_by_label("Connect").click();
    gui.run_ok();
}

/// Connects to `world` as `nick`, trusting the certificate.
pub fn connect_trusted(world: &World, nick: &str) -> (Gui, RecordingNotifier) {
    let (mut gui, notifier) = world.gui();
    start_connect(&mut gui, &world.server(), nick);
    run_until(&mut gui, STEP, "the trust screen", |g| {
        shows(g, "Trust and connect")
    });
    gui.get_by_label("Trust and connect").click();
    in_chat(&mut gui);
    (gui, notifier)
}

/// Waits for the chat screen, connected.
pub fn in_chat(gui: &mut Gui) {
    run_until(gui, STEP, "the chat screen, connected", |g| {
        conn(g) == Some(ConnState::Connected)
    });
}

/// `SHA256:` and the hex in groups of four, four a line: how a person
/// reads a fingerprint aloud (the trust screen's form).
pub fn grouped(fp: &Fingerprint) -> String {
    let hex = fp.to_string().replace("SHA256:", "");
    let groups: Vec<String> = hex
        .chars()
        .collect::<Vec<_>>()
        .chunks(4)
        .map(|c| c.iter().collect())
        .collect();
    let lines: Vec<String> = groups.chunks(4).map(|l| l.join(" ")).collect();
    format!("SHA256:\n{}", lines.join("\n"))
}

pub fn conn(gui: &Gui) -> Option<ConnState> {
    match gui.state().screen() {
        Screen::Chat(chat) => Some(chat.state().conn.clone()),
        _ => None,
    }
}

pub fn users(gui: &Gui) -> Vec<String> {
    let Screen::Chat(chat) = gui.state().screen() else {
        return Vec::new();
    };
    let mut users: Vec<String> = chat.state().users.iter().cloned().collect();
    users.sort();
    users
}
