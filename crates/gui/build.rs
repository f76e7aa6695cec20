//! Build script of `tlschat-gui`: on a Windows target, compiles
//! `assets/tlschat-gui.rc` (the application icon, `assets/tlschat.ico`) and
//! links it into the `tlschat-gui` executable, so that Explorer, the
//! taskbar and the Start menu show it. On every other target it does
//! nothing: the window icon there comes from `main.rs` and the .desktop
//! file or the macOS bundle.
//!
//! The target decides (`CARGO_CFG_TARGET_OS`: this script runs on the build
//! machine, whose own OS may differ). The resource compiler crate is a
//! build dependency of Windows hosts only, which is where the Windows
//! builds are made; a Windows target built elsewhere gets a warning and an
//! executable without an icon.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("windows") {
        return;
    }
    println!("cargo:rerun-if-changed=assets/tlschat-gui.rc");
    println!("cargo:rerun-if-changed=assets/tlschat.ico");
    embed_icon();
}

#[cfg(windows)]
fn embed_icon() {
    // A missing resource compiler fails the build: a release must not ship
    // an executable without its icon.
    if let Err(e) = embed_resource::compile_for(
        "assets/tlschat-gui.rc",
        ["tlschat-gui"],
        embed_resource::NONE,
    )
    .manifest_required()
    {
        panic!("tlschat-gui: cannot embed assets/tlschat-gui.rc: {e}");
    }
}

#[cfg(not(windows))]
fn embed_icon() {
    println!(
        "cargo:warning=tlschat-gui.exe gets no icon: its resources are compiled on a Windows host only"
    );
}
