//! The database in the data directory, driven through the real binary: an
//! old `accounts.txt` imported on the first start, `passwd --nick` and a
//! SIGHUP while the server runs, `backup` of a running server restored into
//! a fresh data directory; and the flags of a private server
//! (`--join-password-file` re-read on SIGHUP, `--public-name` in invite
//! links, `check-config` printing the new keys).

use crate::harness::*;

use std::ffi::OsStr;

use argon2::password_hash::{rand_core::OsRng, PasswordHasher, SaltString};
use argon2::Argon2;
use tlschat_protocol::{Fingerprint, InviteLink};

const ADMIN: &str = "admin password from the old file";
const ALICE: &str = "пароль-密码-🔑";

fn phc(password: &str) -> String {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2")
        .to_string()
}

fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}

/// Logs in as `nick`, an account, with `password`; returns the answer.
async fn account_attempt(
    addr: std::net::SocketAddr,
    cert: &rustls_pki_types::CertificateDer<'static>,
    nick: &str,
    password: &str,
) -> String {
    let mut c = connect_tls(addr, cert).await;
    c.expect("NICK").await;
    c.send(nick).await;
    c.expect("PASS").await;
    c.send(password).await;
    c.recv().await
}

/// `nick` logs in to `server` with `password`.
async fn logs_in(server: &ServerProcess, nick: &str, password: &str) {
    let answer = account_attempt(server.addr, &server.cert(), nick, password).await;
    assert_eq!(answer, format!("WELCOME {nick} #lobby"));
}

/// A new data directory as the server wants it: owner-only.
fn private_dir(path: &std::path::Path) {
    std::fs::create_dir(path).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_accounts_file_is_imported_once_and_kept_renamed() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    private_dir(&data);
    let old = data.join("accounts.txt");
    let text = format!(
        "# tlschat accounts: NICK PHC-HASH (argon2id; one per line)\nadmin {}\nAlice {}\n",
        phc(ADMIN),
        phc(ALICE)
    );
    std::fs::write(&old, text).unwrap();

    let server = ServerProcess::start(&data);
    let line = server
        .wait_stderr("imported 2 accounts from", STARTUP)
        .unwrap_or_else(|| panic!("no import line: {}", server.stderr()));
    assert!(line.contains("accounts.txt.imported"), "{line}");
    assert!(!old.exists() && data.join("accounts.txt.imported").exists());
    assert!(
        !data.join("initial-admin-password").exists(),
        "the imported admin keeps its password"
    );
    let cert = server.cert();
    logs_in(&server, "admin", ADMIN).await;
    logs_in(&server, "alice", ALICE).await;
    assert_eq!(
        account_attempt(server.addr, &cert, "ALICE", "пароль").await,
        "REFUSE wrong password"
    );
    drop(server);

    // The next start imports nothing and still knows everyone.
    let server = ServerProcess::start(&data);
    logs_in(&server, "alice", ALICE).await;
    assert!(!server.stderr().contains("imported"), "{}", server.stderr());
}

/// `passwd --nick` writes the database a running server reads on SIGHUP;
/// `backup` copies it while the server runs; the copy, restored into a
/// fresh data directory, starts a server the account logs in to.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_of_a_running_server_restores_into_a_fresh_data_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let server = ServerProcess::start_with_password(&data, ADMIN);
    let data_arg = data.as_os_str();
    let out = run_once(
        &[
            os("passwd"),
            os("--nick"),
            os("Carol"),
            os("--data-dir"),
            data_arg,
        ],
        &[],
        &format!("{ALICE}\n"),
    );
    out.assert_success();
    assert!(
        out.stdout.contains("Carol password changed in "),
        "{out:#?}"
    );
    server.signal_hup();
    assert!(
        server.wait_stderr("accounts reloaded", STEP).is_some(),
        "{}",
        server.stderr()
    );
    logs_in(&server, "carol", ALICE).await;

    let copy = tmp.path().join("копия.db");
    let out = run_once(
        &[os("backup"), copy.as_os_str(), os("--data-dir"), data_arg],
        &[],
        "",
    );
    out.assert_success();
    assert!(out.stdout.contains("also keep: "), "{out:#?}");
    // Never over an existing file.
    let again = run_once(
        &[os("backup"), copy.as_os_str(), os("--data-dir"), data_arg],
        &[],
        "",
    );
    assert_eq!(again.code(), Some(1), "{again:#?}");
    drop(server);

    let fresh = tmp.path().join("fresh");
    private_dir(&fresh);
    std::fs::copy(&copy, fresh.join("tlschat.db")).unwrap();
    let restored = ServerProcess::start(&fresh);
    assert!(!fresh.join("initial-admin-password").exists());
    logs_in(&restored, "carol", ALICE).await;
    logs_in(&restored, "admin", ADMIN).await;
}

/// The flags of a private server through the binary: the join password
/// from its file (re-read on SIGHUP), the invite link's host from
/// `--public-name` and its fingerprint the server's.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_password_file_reloads_and_public_name_goes_into_links() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let file = tmp.path().join("join-password");
    std::fs::write(&file, format!("{ALICE}\n")).unwrap();
    let mut cmd = run_command(&data);
    cmd.env("TLSCHAT_ADMIN_PASSWORD", ADMIN)
        .arg("--join-password-file")
        .arg(&file)
        .args(["--public-name", "Chat.Example.org:4433"]);
    let server = ServerProcess::spawn(cmd);
    let cert = server.cert();

    let join = |password: &'static str| {
        let cert = cert.clone();
        let addr = server.addr;
        async move {
            let mut c = connect_tls(addr, &cert).await;
            c.expect("NICK").await;
            c.send("dora").await;
            c.expect("PASS join").await;
            c.send(password).await;
            c.recv().await
        }
    };
    assert_eq!(join(ALICE).await, "WELCOME dora #lobby");
    std::fs::write(&file, "a new one\n").unwrap();
    server.signal_hup();
    assert!(
        server.wait_stderr("reload complete", STEP).is_some(),
        "{}",
        server.stderr()
    );
    assert_eq!(join(ALICE).await, "REFUSE wrong password or invite code");
    assert_eq!(join("a new one").await, "WELCOME dora #lobby");
    // A file that cannot be read keeps the password in force, and holds
    // back none of the other access settings.
    std::fs::remove_file(&file).unwrap();
    std::fs::write(data.join("tlschat.toml"), "registration = \"off\"\n").unwrap();
    server.signal_hup();
    assert!(
        server
            .wait_stderr("join password not reloaded", STEP)
            .is_some(),
        "{}",
        server.stderr()
    );
    assert_eq!(join("a new one").await, "WELCOME dora #lobby");

    let mut admin = server.login_admin(ADMIN).await;
    admin.send("/registration").await;
    admin.expect("INFO registration is off (configured)").await;
    admin.send("/invite").await;
    let line = admin.wait_for("INFO invite tlschat://").await;
    let link = InviteLink::parse(line.strip_prefix("INFO invite ").unwrap()).unwrap();
    assert_eq!(link.server().host(), "chat.example.org");
    assert_eq!(link.server().port(), 4433);
    assert_eq!(
        link.fingerprint(),
        Fingerprint::parse(&server.fingerprint).unwrap()
    );
    assert_eq!(link.fingerprint(), Fingerprint::of_der(&cert));
}

#[test]
fn check_config_prints_the_access_keys_but_never_the_join_password() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("join-password");
    std::fs::write(&file, format!("{ALICE}\n")).unwrap();
    let data = tmp.path().join("data");
    let args = [
        os("check-config"),
        os("--data-dir"),
        data.as_os_str(),
        os("--join-password-file"),
        file.as_os_str(),
        os("--private"),
        os("--public-name"),
        os("[2001:db8::1]:4433"),
        os("--registration"),
        os("invite-only"),
    ];
    let out = run_once(&args, &[], "");
    out.assert_success();
    for key in [
        format!("join_password_file = \"{}\"", file.display()),
        "private = true".to_owned(),
        "public_name = \"[2001:db8::1]:4433\"".to_owned(),
        "registration = \"invite-only\"".to_owned(),
        "registrations_per_address = 3".to_owned(),
        "max_accounts = 10000".to_owned(),
    ] {
        assert!(out.stdout.contains(&key), "{key} missing:\n{}", out.stdout);
    }
    assert!(!out.stdout.contains(ALICE) && !out.stderr.contains(ALICE));

    let mut bad = args.to_vec();
    bad[9] = os("closed");
    let out = run_once(&bad, &[], "");
    out.assert_code(2);
    assert!(
        out.stderr.contains("unknown registration policy `closed`"),
        "{out:#?}"
    );
    let out = run_once(
        &[
            os("check-config"),
            os("--data-dir"),
            data.as_os_str(),
            os("--public-name"),
            os("тест.рф"),
        ],
        &[],
        "",
    );
    out.assert_code(2);
}
