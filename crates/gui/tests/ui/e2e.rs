//! The real `tlschat-gui` binary, end to end: started with a server and a
//! nickname on its command line, on an X server of its own (Xvfb), typed
//! into with xdotool, while raw TLS peers in the same rooms talk in
//! several scripts; then a screenshot of its window (ImageMagick's
//! `import`), checked for size and content. With TLSCHAT_GUI_SCREENSHOT
//! set to a path, the screenshot is copied there (tools/gui-screenshot.sh
//! makes README's picture this way).
//!
//! Without Xvfb, xdotool or import the test says so and skips, unless
//! TLSCHAT_TEST_REQUIRE names `xvfb` (or `all`), as `.ci/run` does: then
//! it fails. Every program it starts is killed when the test ends.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::*;

const REQUIRE_VAR: &str = "TLSCHAT_TEST_REQUIRE";
const SCREENSHOT_VAR: &str = "TLSCHAT_GUI_SCREENSHOT";
const PROGRAMS: [&str; 4] = ["Xvfb", "xdotool", "import", "identify"];
/// Mesa's software Vulkan: wgpu draws on it where there is no GPU.
fn lavapipe() -> PathBuf {
    let arch = std::env::consts::ARCH;
    PathBuf::from(format!("/usr/share/vulkan/icd.d/lvp_icd.{arch}.json"))
}
const NICK: &str = "robin";

/// A program that is killed (and reaped) when this is dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Whether every program the test drives is on PATH; when not, panics if
/// TLSCHAT_TEST_REQUIRE asks for `xvfb`, else says why the test skips.
fn programs_here() -> bool {
    let missing: Vec<&str> = PROGRAMS.into_iter().filter(|p| !on_path(p)).collect();
    if missing.is_empty() {
        return true;
    }
    let current = std::thread::current();
    let test = current.name().unwrap_or("this test");
    let required = std::env::var(REQUIRE_VAR).is_ok_and(|list| {
        list.split(',')
            .map(str::trim)
            .any(|n| n == "xvfb" || n == "all")
    });
    let missing = missing.join(", ");
    if required {
        panic!("{test} needs {missing} on PATH, and {REQUIRE_VAR} requires them");
    }
    let _ = writeln!(
        std::io::stderr(),
        "{test}: skipping, {missing} not on PATH here; install xvfb, xdotool and \
         imagemagick, or set {REQUIRE_VAR}=xvfb to make this a failure"
    );
    false
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

/// An X server on a free display: Xvfb picks the number and writes it to
/// the pipe (`-displayfd`) once it accepts clients.
fn start_xvfb() -> (Killed, String) {
    let mut child = Command::new("Xvfb")
        .args([
            "-displayfd",
            "1",
            "-screen",
            "0",
            "1280x800x24",
            "-nolisten",
            "tcp",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("Xvfb starts");
    let stdout = child.stdout.take().expect("Xvfb's stdout");
    let xvfb = Killed(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let number = rx.recv_timeout(STEP).expect("Xvfb names its display");
    let number = number.trim();
    assert!(
        !number.is_empty() && number.chars().all(|c| c.is_ascii_digit()),
        "Xvfb's display: {number:?}"
    );
    (xvfb, format!(":{number}"))
}

/// Runs `program args` on `display`, within [`STEP`]; its stdout.
fn x_run(display: &str, program: &str, args: &[&str]) -> String {
    let mut child = Command::new(program)
        .args(args)
        .env("DISPLAY", display)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{program} starts: {e}"));
    let deadline = Instant::now() + STEP;
    while child.try_wait().ok().flatten().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("`{program} {}` took over {STEP:?}", args.join(" "));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().expect("its output");
    assert!(
        out.status.success(),
        "`{program} {}`: {}: {}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The GUI's window, once it is mapped: found by its X11 class, the app
/// id (its title changes with the conversation and the unread count).
fn window_of(display: &str, gui_log: &Path) -> String {
    let deadline = Instant::now() + STEP;
    loop {
        let found = Command::new("xdotool")
            .args(["search", "--onlyvisible", "--class", "^tlschat-gui$"])
            .env("DISPLAY", display)
            .stderr(Stdio::null())
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        if let Some(id) = found.lines().next() {
            return id.trim().to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "no tlschat window within {STEP:?}; the GUI said:\n{}",
            std::fs::read_to_string(gui_log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// What a person does at the keyboard: focus the window, then keys.
struct Keyboard<'a> {
    display: &'a str,
    window: &'a str,
}

impl Keyboard<'_> {
    /// Clicks the message input (at the bottom of the chat screen, across
    /// its width).
    fn click_input(&self) {
        let (w, h) = self.size();
        let (x, y) = ((w / 2).to_string(), (h - 44).to_string());
        x_run(
            self.display,
            "xdotool",
            &["mousemove", "--window", self.window, &x, &y, "click", "1"],
        );
        // The pointer away from the window: no hover highlight in the picture.
        x_run(self.display, "xdotool", &["mousemove", "1279", "799"]);
    }

    fn size(&self) -> (u32, u32) {
        let geometry = x_run(
            self.display,
            "xdotool",
            &["getwindowgeometry", "--shell", self.window],
        );
        let field = |name: &str| {
            geometry
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or_else(|| panic!("{name} in {geometry}"))
        };
        (field("WIDTH="), field("HEIGHT="))
    }

    /// Clicks the message input, types `line` over whatever it holds and
    /// presses Return. The click first: a room switch or a busy machine
    /// can leave the keyboard elsewhere.
    ///
    /// ASCII only: xdotool types a character the keymap lacks by binding
    /// it to a spare key for a moment, and the GUI (winit with
    /// xkbcommon-x11) reads the keymap when the change is announced, by
    /// which time it may be another character's or none: `спасибо` came
    /// out as `иии`. Non-ASCII typing is the kittest flows' part.
    fn line(&self, line: &str) {
        x_run(
            self.display,
            "xdotool",
            &["windowfocus", "--sync", self.window],
        );
        self.click_input();
        x_run(self.display, "xdotool", &["key", "ctrl+a"]);
        x_run(
            self.display,
            "xdotool",
            &["type", "--delay", "20", "--", line],
        );
        x_run(self.display, "xdotool", &["key", "Return"]);
    }
}

/// The PNG's width, height and number of distinct colours.
fn measure(png: &Path) -> (u32, u32, u32) {
    let out = Command::new("identify")
        .args(["-format", "%w %h %k"])
        .arg(png)
        .output()
        .expect("identify runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let numbers: Vec<u32> = text
        .split_whitespace()
        .filter_map(|n| n.parse().ok())
        .collect();
    match numbers[..] {
        [w, h, k] => (w, h, k),
        _ => panic!("identify {}: {text:?}", png.display()),
    }
}

/// `line` from `peer` to its room, once the server has passed it on (so
/// lines from several peers keep their order).
fn say(peer: &mut Peer, nick: &str, line: &str) {
    peer.send(line);
    let (kind, text) = match line.strip_prefix("/me ") {
        Some(action) => ("ACTION", action),
        None => ("MSG", line),
    };
    peer.wait_for(&format!("{kind} #design {nick} {text}"));
}

/// Types `typed` until `witness` receives `expected` from the server. On a
/// machine busy enough, synthetic keystrokes can reach the window out of
/// step with its focus (a click not yet handled, the line cut or its
/// halves swapped), so a line may be typed again; what the test holds the
/// GUI to is that typed text does arrive, whole.
fn type_until(
    keyboard: &Keyboard<'_>,
    typed: &str,
    witness: &mut Peer,
    expected: &str,
    gui_log: &Path,
) {
    let deadline = Instant::now() + STEP;
    for attempt in 1.. {
        keyboard.line(typed);
        let seen = witness.lines_until_sync(&format!("typed-{attempt}"));
        if seen.iter().any(|l| l == expected) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{typed:?} did not arrive as {expected:?} within {STEP:?} (got {seen:?}); the GUI said:\n{}",
            std::fs::read_to_string(gui_log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// A peer in `room`, which it joined.
fn peer_in(world: &World, nick: &str, room: &str) -> Peer {
    let mut peer = world.peer(nick);
    if room != "#lobby" {
        peer.send(&format!("/join {room}"));
        peer.wait_for(&format!("USERS {room}"));
    }
    peer
}

#[test]
fn the_real_binary_joins_rooms_chats_and_is_photographed() {
    if !programs_here() {
        return;
    }
    let began = Instant::now();
    let world = World::start();
    let mut olga = peer_in(&world, "olga", "#design");
    let mut kenji = peer_in(&world, "kenji", "#rust");
    let mut amira = peer_in(&world, "amira", "#lobby");

    let (_xvfb, display) = start_xvfb();
    let home = world.home.path();
    let runtime_dir = home.join("run");
    std::fs::create_dir(&runtime_dir).expect("runtime dir");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&runtime_dir, std::fs::Permissions::from_mode(0o700))
            .expect("runtime dir private");
    }
    let gui_log = home.join("gui.log");
    let mut gui = Command::new(env!("CARGO_BIN_EXE_tlschat-gui"));
    gui.args(["--nick", NICK, "--fingerprint"])
        .arg(world.fingerprint.to_string())
        .arg(world.server())
        .env("DISPLAY", &display)
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_RUNTIME_DIR", &runtime_dir)
        // No desktop notifications to whoever runs the test.
        .env_remove("DBUS_SESSION_BUS_ADDRESS")
        .env_remove("WAYLAND_DISPLAY")
        .env_remove("TLSCHAT_NICK")
        .env_remove("TLSCHAT_KNOWN_HOSTS")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&gui_log).expect("log file"));
    let lavapipe = lavapipe();
    if lavapipe.exists() && std::env::var_os("VK_DRIVER_FILES").is_none() {
        gui.env("WGPU_BACKEND", "vulkan")
            .env("VK_DRIVER_FILES", &lavapipe)
            .env("VK_ICD_FILENAMES", &lavapipe);
    }
    let _gui = Killed(gui.spawn().expect("tlschat-gui starts"));

    // The pin on the command line: straight into #lobby, no trust screen.
    amira.wait_for(&format!("JOIN #lobby {NICK}"));
    let window = window_of(&display, &gui_log);
    let keyboard = Keyboard {
        display: &display,
        window: &window,
    };
    // The server's welcome reaches the window a frame or more after the
    // peers see the join: until the chat screen is up, a click misses.
    let joined = |room: &str| format!("JOIN {room} {NICK}");
    type_until(
        &keyboard,
        "/join #rust",
        &mut kenji,
        &joined("#rust"),
        &gui_log,
    );
    type_until(
        &keyboard,
        "/join #design",
        &mut olga,
        &joined("#design"),
        &gui_log,
    );
    for peer in [&mut kenji, &mut amira] {
        peer.send("/join #design");
        peer.wait_for("USERS #design");
    }

    let mention = format!("{NICK}, does the 👩‍💻 emoji look right on your side?");
    say(&mut olga, "olga", "Привет всем! Макет готов 🎨");
    say(&mut kenji, "kenji", "こんにちは、レビューします 👍");
    say(&mut amira, "amira", "مرحبا 👋");
    say(
        &mut olga,
        "olga",
        "The side list shows unread counts now, and @ for mentions",
    );
    say(
        &mut amira,
        "amira",
        "Dark theme follows the system; light works too",
    );
    say(&mut kenji, "kenji", "/me 把截图放进了 README 📸");
    say(
        &mut olga,
        "olga",
        "Шрифты: кириллица, 漢字, ελληνικά, all from the system",
    );
    say(&mut amira, "amira", "Zoom is Ctrl + and Ctrl -");
    say(&mut kenji, "kenji", "通知もちゃんと来ます 🔔");
    say(&mut olga, "olga", &mention);

    let said = "Looks great, thanks! Merging after lunch";
    let heard = format!("MSG #design {NICK} {said}");
    type_until(&keyboard, said, &mut olga, &heard, &gui_log);
    let private = "/msg kenji ship it tonight?";
    let heard = format!("PRIVMSG {NICK} kenji ship it tonight?");
    type_until(&keyboard, private, &mut kenji, &heard, &gui_log);
    amira.send(&format!("/msg {NICK} شكرا! ready when you are"));
    amira.wait_for(&format!("PRIVMSG amira {NICK} "));
    say(&mut kenji, "kenji", "日本語の入力も問題なし");
    say(&mut olga, "olga", "Отлично. Тогда выпускаем в пятницу");
    say(&mut amira, "amira", "תודה 🙏");
    say(
        &mut kenji,
        "kenji",
        "/me goes to write the release notes 📝",
    );
    say(&mut kenji, "kenji", "Done ✅ 🚀");

    // What the server sent is drawn on the next frame; give it a moment.
    std::thread::sleep(Duration::from_millis(1500));
    let shot = home.join("gui.png");
    let shot_arg = format!("png:{}", shot.display());
    x_run(&display, "import", &["-window", &window, &shot_arg]);
    let (w, h, colours) = measure(&shot);
    assert!(w >= 1024 && h >= 640, "the window is {w}×{h}");
    assert!(colours >= 16, "{colours} colours: a blank window?");
    if let Some(to) = std::env::var_os(SCREENSHOT_VAR) {
        let to = PathBuf::from(to);
        std::fs::copy(&shot, &to)
            .unwrap_or_else(|e| panic!("copy the screenshot to {}: {e}", to.display()));
    }
    let _ = writeln!(
        std::io::stderr(),
        "the real binary under Xvfb: {w}×{h}, {colours} colours, in {:.1?}",
        began.elapsed()
    );
}
