//! UI tests of tlschat-gui: egui_kittest drives the real app (finding
//! widgets through AccessKit, typing, clicking) against a real server on
//! loopback; rendered snapshots where a wgpu adapter is available.

mod flows;
mod harness;
mod snapshots;
