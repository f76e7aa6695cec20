//! One client cannot cost another its connection, a ban reaches every
//! session it covers, and the server's files are its own: private-message
//! floods against a reader that is behind, prefix bans of IPv6 clients,
//! data directories others could write into (the real binary). Real TLS
//! over loopback, one in-process server per test.

use crate::harness;
#[cfg(unix)]
use crate::harness::*;

use std::time::Duration;

/// Every text path carries non-ASCII: Cyrillic, Greek, Arabic, Hebrew, CJK,
/// emoji with ZWJ and skin tone, a combining mark.
const TEXT: &str = "привет γειά مرحبا שלום 你好 👩🏽‍💻 e\u{301}";

/// A bounded wait for a whole scenario.
const SCENARIO: Duration = Duration::from_secs(120);

#[cfg(target_os = "linux")]
mod several_addresses {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr, SocketAddr};

    fn loopback(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
    }

    /// A client from `from` with a small receive buffer, so that its socket
    /// fills soon once it stops reading.
    async fn slow_reader(s: &TestServer, from: IpAddr, nick: &str) -> Client {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
        socket
            .bind(SocketAddr::new(from, 0))
            .expect("bind the client socket");
        let mut c = connect_tls_via(socket, s.addr, &s.cert).await;
        c.finish_login(nick).await;
        c
    }

    /// How a flooder's run ended.
    #[derive(Debug, PartialEq)]
    enum Flood {
        /// It was told `recipient-busy` after this many delivered lines.
        Busy(usize),
        /// Something else: the victim was dropped (`no-such-nick`), ...
        Other(String),
    }

    /// Sends `/msg victim <4000 bytes>` in bursts of 8 until told
    /// `recipient-busy`, reading its own answers after each burst.
    async fn flood(mut c: Client, me: usize) -> Flood {
        let text = format!("{TEXT} {me} {}", "x".repeat(3900));
        let line = format!("/msg victim {text}");
        let mut delivered = 0;
        // About 40 MB at most: far more than loopback socket buffers take.
        for _ in 0..300 {
            for _ in 0..8 {
                c.send(&line).await;
            }
            let mut busy = false;
            let mut answers = 0;
            while answers < 8 {
                let got = c.recv().await;
                if got.starts_with("PRIVMSG ") {
                    delivered += 1;
                } else if got.starts_with("ERROR recipient-busy ") {
                    busy = true;
                } else if got.starts_with("ERROR ") {
                    return Flood::Other(got);
                } else {
                    // Others entering or leaving the lobby.
                    continue;
                }
                answers += 1;
            }
            if busy {
                return Flood::Busy(delivered);
            }
        }
        Flood::Other(format!("never busy after {delivered} lines"))
    }

    /// 16 connections from one address (its whole per-address cap) flood a
    /// client that does not read with private messages. The flooders are
    /// told `recipient-busy`; the victim keeps its connection, and a sender
    /// on another address still reaches it.
    #[test]
    fn a_private_flood_from_one_address_does_not_disconnect_its_target() {
        run_bounded(SCENARIO, async {
            let s = TestServer::start_with(|c| {
                c.limits.max_per_address = 16;
                c.limits.outbound_queue = 64 * 1024;
            })
            .await;
            let mut victim = slow_reader(&s, loopback(3), "victim").await;
            let mut flooders = tokio::task::JoinSet::new();
            for i in 0..16 {
                let c = login(s.addr, &s.cert, &format!("flooder{i}")).await;
                flooders.spawn(flood(c, i));
            }
            // The victim reads nothing from here on.
            while let Some(result) = flooders.join_next().await {
                let result = result.expect("flooder task");
                assert!(matches!(result, Flood::Busy(_)), "{result:?}");
            }

            let mut other = connect_tls_from(s.addr, &s.cert, loopback(2)).await;
            other.finish_login("other").await;
            let text = format!("{TEXT} from elsewhere");
            other.send(&format!("/msg victim {text}")).await;
            let expected = format!("PRIVMSG other victim {text}");
            other.wait_for(&expected).await;

            // The victim catches up: it is still connected and gets it.
            victim.wait_for(&expected).await;
            victim.send("/ping still-here").await;
            victim.wait_for("PONG still-here").await;
            s.stop().await;
        });
    }
}

/// An IPv6 client's whole prefix can be banned, by `/ban` (which kicks
/// every non-admin session under it) and by a line in the bans file.
#[test]
fn a_prefix_ban_reaches_ipv6_clients_by_command_and_from_the_file() {
    run_bounded(SCENARIO, async {
        if std::net::TcpListener::bind("[::1]:0").is_err() {
            eprintln!("skipped: ::1 is not available here");
            return;
        }
        let on_v6 = |c: &mut tlschat_server_core::config::ServerConfig| {
            c.listen = "[::1]:0".parse().unwrap()
        };
        let s = TestServer::start_with(on_v6).await;
        let mut adm = s.login_admin().await;
        let mut b = s.login("bob").await;
        let mut c = s.login("carol").await;
        adm.wait_for("JOIN #lobby carol").await;

        adm.send(&format!("/ban ::/64 {TEXT}")).await;
        for (client, nick) in [(&mut b, "bob"), (&mut c, "carol")] {
            client
                .wait_for(&format!("KICK {nick} admin banned: {TEXT}"))
                .await;
            assert!(client.expect_closed().await.is_empty());
        }
        adm.wait_for("INFO banned ::/64 (address only)").await;
        adm.expect("INFO also disconnected from ::/64: bob carol")
            .await;
        // The admin, from the same address, stays; newcomers are refused.
        adm.expect_quiet("still-here").await;
        let mut d = s.connect().await;
        d.expect("NICK").await;
        d.send("dave").await;
        d.expect(&format!("BAN you are banned from this server: {TEXT}"))
            .await;
        adm.send("/bans").await;
        let listed = adm.expect_prefix("INFO - ::/64 since ").await;
        assert!(listed.ends_with(&format!("by admin: {TEXT}")), "{listed}");
        drop(adm);
        let dir = s.stop().await;
        let bans = dir.path().join("bans.txt");
        let text = std::fs::read_to_string(&bans).unwrap();
        assert!(text.contains("\n- ::/64 "), "{text}");

        // A prefix written by hand, host bits and all.
        std::fs::write(&bans, "- ::5/120 2026-11-24T15:45:00Z admin שלום 你好\n").unwrap();
        let s = TestServer::start_in(dir, on_v6).await;
        let mut e = s.connect().await;
        e.expect("NICK").await;
        e.send("erin").await;
        e.expect("BAN you are banned from this server: שלום 你好")
            .await;
        let mut adm = s.login_admin().await;
        // An address under the prefix does not lift it; the prefix does.
        adm.send("/unban ::1").await;
        adm.expect_prefix("ERROR no-such-nick ").await;
        adm.send("/unban ::/120").await;
        adm.expect_prefix("INFO unbanned - ::/120 ").await;
        let _e = s.login("erin").await;
        s.stop().await;
    });
}

#[cfg(unix)]
mod files {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;
    use std::process::Stdio;

    fn chmod(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    /// Starts the real server on `data` and expects it to refuse: a
    /// non-zero exit, within a bound, with `stderr` naming `bad` and the fix.
    fn refused_naming(data: &Path, bad: &Path) {
        let mut child = harness::run_command(data)
            .env("TLSCHAT_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start tlschat-server");
        let started = std::time::Instant::now();
        while child.try_wait().unwrap().is_none() {
            if started.elapsed() > harness::EXIT {
                let _ = child.kill();
                panic!("the server did not refuse {} in time", bad.display());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(!out.status.success(), "started anyway:\n{stdout}\n{stderr}");
        assert!(!stdout.contains("listening on"), "{stdout}");
        assert!(
            stderr.contains(&format!("{} is writable by", bad.display())),
            "{stderr}"
        );
        assert!(
            stderr.contains(&format!("chmod 700 {}", bad.display())),
            "{stderr}"
        );
    }

    #[test]
    fn a_data_or_certs_directory_others_can_write_to_is_refused_at_startup() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data μ 数据");
        std::fs::create_dir(&data).unwrap();
        for mode in [0o777, 0o770] {
            chmod(&data, mode);
            refused_naming(&data, &data);
            assert!(
                !data.join("certs").exists(),
                "nothing was written into the refused directory"
            );
        }
        // Made private, it starts; it creates its certs directory 0700.
        chmod(&data, 0o700);
        let server = harness::ServerProcess::start_with_password(&data, ADMIN_PASSWORD);
        drop(server);
        let certs = data.join("certs");
        let mode = std::fs::metadata(&certs).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        chmod(&certs, 0o775);
        refused_naming(&data, &certs);
    }

    #[test]
    fn a_data_directory_the_server_creates_is_owner_only() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("new").join("data");
        let server = harness::ServerProcess::start_with_password(&data, ADMIN_PASSWORD);
        drop(server);
        let mode = std::fs::metadata(&data).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }

    /// Bans name people and their addresses: like the other data files,
    /// only the server's user may read them.
    #[test]
    fn bans_txt_is_owner_only_after_a_ban() {
        run_bounded(SCENARIO, async {
            // A file from an older version, readable by everyone.
            let dir = tempfile::tempdir().unwrap();
            let bans = dir.path().join("bans.txt");
            std::fs::write(&bans, "ghost - 2026-11-24T14:00:00Z admin\n").unwrap();
            chmod(&bans, 0o644);
            let s = TestServer::start_in(dir, |_| {}).await;
            let mut adm = s.login_admin().await;
            adm.send(&format!("/ban bob {TEXT}")).await;
            adm.expect("INFO banned bob (not connected: nickname only)")
                .await;
            let mode = std::fs::metadata(&bans).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            s.stop().await;
        });
    }
}
