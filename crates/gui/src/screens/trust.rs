//! The trust screens. First contact shows the certificate's fingerprint in
//! full, in groups of four to read aloud, and asks; nothing has been sent
//! to the server yet. A changed certificate is a dead end: it names the
//! known and the new fingerprint and what to do, and offers no way to
//! accept it here.

use egui::{Color32, Frame, RichText};

use crate::app::Action;
use tlschat_client_core::render::sanitize;
use tlschat_client_core::ChangedCertificate;
use tlschat_protocol::Fingerprint;

/// `SHA256:` and the 64 hex digits in groups of four, four groups a line.
pub fn grouped(fingerprint: &Fingerprint) -> String {
    let hex: String = fingerprint.0.iter().map(|b| format!("{b:02x}")).collect();
    let groups: Vec<&str> = hex
        .as_bytes()
        .chunks(4)
        .filter_map(|g| std::str::from_utf8(g).ok())
        .collect();
    let lines: Vec<String> = groups.chunks(4).map(|line| line.join(" ")).collect();
    format!("SHA256:\n{}", lines.join("\n"))
}

fn fingerprint_block(ui: &mut egui::Ui, fingerprint: &Fingerprint) {
    Frame::group(ui.style()).inner_margin(12.0).show(ui, |ui| {
        ui.label(
            RichText::new(grouped(fingerprint))
                .monospace()
                .size(18.0)
                .strong(),
        );
    });
}

pub fn first_contact(ui: &mut egui::Ui, server: &str, fingerprint: &Fingerprint) -> Option<Action> {
    let mut action = None;
    egui::CentralPanel::default().show(ui, |ui| {
        egui::ScrollArea::vertical().show(ui, |ui| {
            ui.vertical_centered(|ui| {
                ui.add_space(40.0);
                ui.heading(format!("First connection to {}", sanitize(server)));
                ui.add_space(8.0);
                ui.label(
                    "This server is not known yet. Ask its operator for the certificate \
                     fingerprint (tlschat-server prints it at startup) and compare it with this one:",
                );
                ui.add_space(12.0);
                fingerprint_block(ui, fingerprint);
                ui.add_space(12.0);
                ui.label(
                    "If they match, trust the server: it is remembered in known_hosts, shared \
                     with the terminal client. Nothing has been sent to it yet.",
                );
                ui.add_space(16.0);
                ui.horizontal(|ui| {
                    // Centre the two buttons.
                    ui.add_space((ui.available_width() - 300.0).max(0.0) / 2.0);
                    if ui
                        .add(egui::Button::new("Trust and connect").min_size(egui::vec2(160.0, 32.0)))
                        .clicked()
                    {
                        action = Some(Action::TrustAnswer(true));
                    }
                    if ui
                        .add(egui::Button::new("Cancel").min_size(egui::vec2(120.0, 32.0)))
                        .clicked()
                    {
                        action = Some(Action::TrustAnswer(false));
                    }
                });
            });
        });
    });
    action
}

const ALARM_DARK: Color32 = Color32::from_rgb(0x5c, 0x10, 0x10);
const ALARM_LIGHT: Color32 = Color32::from_rgb(0xfb, 0xdc, 0xdc);

pub fn changed(ui: &mut egui::Ui, changed: &ChangedCertificate) -> Option<Action> {
    let mut action = None;
    let fill = if ui.visuals().dark_mode {
        ALARM_DARK
    } else {
        ALARM_LIGHT
    };
    let alarm = ui.visuals().error_fg_color;
    egui::CentralPanel::default()
        .frame(Frame::central_panel(ui.style()).fill(fill))
        .show(ui, |ui| {
            egui::ScrollArea::vertical().show(ui, |ui| {
                ui.vertical_centered(|ui| {
                    ui.add_space(32.0);
                    ui.label(
                        RichText::new(format!(
                            "The certificate of {} has changed",
                            sanitize(&changed.server)
                        ))
                        .size(24.0)
                        .strong()
                        .color(alarm),
                    );
                    ui.add_space(8.0);
                    ui.label(
                        "Someone could be intercepting your connection, or the server's \
                         certificate was replaced. The connection was closed; nothing was sent.",
                    );
                    ui.add_space(12.0);
                    ui.label(RichText::new("Known certificate").strong());
                    fingerprint_block(ui, &changed.known);
                    ui.add_space(8.0);
                    ui.label(RichText::new("Certificate the server presented now").strong());
                    fingerprint_block(ui, &changed.got);
                    ui.add_space(12.0);
                    ui.label(format!(
                        "Ask the server's operator whether the certificate was replaced. Only if \
                         they confirm the new fingerprint, remove the line for {} from {} and \
                         connect again.",
                        sanitize(&changed.key),
                        changed.known_hosts.display()
                    ));
                    ui.add_space(16.0);
                    if ui.button("Back").clicked() {
                        action = Some(Action::Back);
                    }
                });
            });
        });
    action
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_are_grouped_for_reading_aloud() {
        let fp = Fingerprint([0xab; 32]);
        let text = grouped(&fp);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "SHA256:");
        assert_eq!(lines.len(), 5);
        assert_eq!(lines[1], "abab abab abab abab");
        assert_eq!(text.matches("abab").count(), 16);
    }
}
