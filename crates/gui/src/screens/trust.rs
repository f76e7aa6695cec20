//! The trust screens. First contact shows the certificate's fingerprint in
//! full, in groups of four to read aloud, and asks; nothing has been sent
//! to the server yet. A changed certificate is a dead end: it names the
//! known and the new fingerprint and what to do, and offers no way to
//! accept it here.

use egui::{Color32, Frame, RichText};

use crate::app::Action;
use tlschat_client_core::render::sanitize;
use tlschat_client_core::{ChangedCertificate, Expected};
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

/// The changed-certificate screen's colours: a red page whose every text
/// reads clearly on it (WCAG AA, a contrast of 4.5:1 or more, in both
/// themes; the tests check).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Alarm {
    pub fill: Color32,
    pub title: Color32,
    pub text: Color32,
}

pub(crate) fn alarm(dark: bool) -> Alarm {
    if dark {
        Alarm {
            fill: Color32::from_rgb(0x5c, 0x10, 0x10),
            title: Color32::from_rgb(0xff, 0xd6, 0xd6),
            text: Color32::from_rgb(0xf5, 0xe6, 0xe6),
        }
    } else {
        Alarm {
            fill: Color32::from_rgb(0xfb, 0xdc, 0xdc),
            title: Color32::from_rgb(0x8b, 0x00, 0x00),
            text: Color32::from_rgb(0x2b, 0x0b, 0x0b),
        }
    }
}

pub fn changed(ui: &mut egui::Ui, changed: &ChangedCertificate) -> Option<Action> {
    let mut action = None;
    let colors = alarm(ui.visuals().dark_mode);
    egui::CentralPanel::default()
        .frame(Frame::central_panel(ui.style()).fill(colors.fill))
        .show(ui, |ui| {
            // Every text on the page, the weak and the buttons' included.
            let visuals = ui.visuals_mut();
            visuals.override_text_color = Some(colors.text);
            visuals.weak_text_color = Some(colors.text);
            visuals.widgets.noninteractive.bg_stroke.color = colors.text.gamma_multiply(0.5);
            egui::ScrollArea::vertical().show(ui, |ui| {
                ui.vertical_centered(|ui| {
                    ui.add_space(32.0);
                    ui.label(
                        RichText::new(format!(
                            "⚠ The certificate of {} has changed",
                            sanitize(&changed.server)
                        ))
                        .size(24.0)
                        .strong()
                        .color(colors.title),
                    );
                    ui.add_space(8.0);
                    ui.label(
                        "Someone could be intercepting your connection, or the server's \
                         certificate was replaced. The connection was closed; nothing was sent.",
                    );
                    ui.add_space(12.0);
                    let expected = match changed.expected {
                        Expected::Link => "Certificate the invite link names",
                        Expected::KnownHosts | Expected::KnownHostsNotLink(_) => {
                            "Known certificate"
                        }
                    };
                    ui.label(RichText::new(expected).strong());
                    fingerprint_block(ui, &changed.known);
                    if let Expected::KnownHostsNotLink(linked) = &changed.expected {
                        ui.add_space(8.0);
                        ui.label(RichText::new("Certificate the invite link names").strong());
                        fingerprint_block(ui, linked);
                    }
                    ui.add_space(8.0);
                    ui.label(RichText::new("Certificate the server presented now").strong());
                    fingerprint_block(ui, &changed.got);
                    ui.add_space(12.0);
                    ui.label(advice(changed));
                    ui.add_space(16.0);
                    if ui.button("Back").clicked() {
                        action = Some(Action::Back);
                    }
                });
            });
        });
    action
}

/// What to do about a changed certificate, by where the expected one
/// came from.
fn advice(changed: &ChangedCertificate) -> String {
    let line = format!(
        "remove the line for {} from {} and connect again",
        sanitize(&changed.key),
        sanitize(&changed.known_hosts.display().to_string())
    );
    match changed.expected {
        Expected::KnownHosts => format!(
            "Ask the server's operator whether the certificate was replaced. Only if they \
             confirm the new fingerprint, {line}."
        ),
        Expected::Link => "The invite link does not belong to this server's certificate, and \
             nothing was stored. Ask whoever sent the link for a new one."
            .to_owned(),
        Expected::KnownHostsNotLink(_) => format!(
            "The invite link names another certificate than the one known from earlier \
             visits; a link never replaces a known certificate. Ask the server's operator \
             which is right. Only if they confirm the link's, {line}."
        ),
    }
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

    #[test]
    fn every_text_on_the_changed_certificate_page_reads_clearly() {
        for dark in [true, false] {
            let a = alarm(dark);
            for (what, color) in [("title", a.title), ("text", a.text)] {
                let ratio = crate::colors::contrast(color, a.fill);
                assert!(ratio >= 4.5, "{what} (dark: {dark}): {ratio:.2}:1");
            }
        }
    }
}
