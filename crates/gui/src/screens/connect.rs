//! The connect screen (server, nickname, recent servers, Connect; an
//! invite link's note), the "connecting…" screen and the password dialog
//! over it, and the bar of a link that arrived on another screen.

use egui::{Align, Button, Layout, RichText, TextEdit};

use super::labelled_field;
use crate::app::{Action, Arrived, Asked, ConnectForm, PasswordPrompt};
use crate::settings::Settings;
use tlschat_client_core::render::sanitize;
use tlschat_protocol::{Fingerprint, InviteLink};

const FORM_WIDTH: f32 = 360.0;

pub fn show(ui: &mut egui::Ui, form: &mut ConnectForm, settings: &Settings) -> Option<Action> {
    let mut action = None;
    egui::CentralPanel::default().show(ui, |ui| {
        ui.vertical_centered(|ui| {
            ui.add_space((ui.available_height() * 0.18).min(120.0));
            ui.heading(RichText::new("tlschat").size(32.0));
            ui.label("Private group chat over TLS");
            ui.add_space(24.0);
            ui.allocate_ui_with_layout(
                egui::vec2(FORM_WIDTH, 0.0),
                Layout::top_down(Align::Min),
                |ui| {
                    let dim = crate::colors::dim(ui.visuals());
                    let server = labelled_field(
                        ui,
                        "Server",
                        TextEdit::singleline(&mut form.server)
                            .hint_text(RichText::new("host, host:port or invite link").color(dim))
                            .desired_width(FORM_WIDTH),
                    );
                    if server.changed() {
                        form.server_edited();
                    }
                    if let Some(link) = form.invite() {
                        invite_note(ui, link);
                    }
                    ui.add_space(8.0);
                    let nick = labelled_field(
                        ui,
                        "Nickname",
                        TextEdit::singleline(&mut form.nickname)
                            .hint_text(RichText::new("letters, digits, _ - .").color(dim))
                            .desired_width(FORM_WIDTH),
                    );
                    // Typing can start at once: in the first empty field,
                    // or the nickname once an invite filled in the server.
                    if std::mem::take(&mut form.focus_nickname) {
                        nick.request_focus();
                    } else if ui.memory(|m| m.focused().is_none()) {
                        if form.server.trim().is_empty() {
                            server.request_focus();
                        } else if form.nickname.trim().is_empty() {
                            nick.request_focus();
                        }
                    }
                    // Enter in either field connects (once both are filled).
                    let enter = ui.input(|i| i.key_pressed(egui::Key::Enter));
                    let entered = enter && (nick.lost_focus() || server.lost_focus());
                    if let Some(error) = &form.error {
                        ui.add_space(8.0);
                        let error = tlschat_client_core::render::sanitize_lines(error);
                        ui.colored_label(crate::colors::error(ui.visuals()), error);
                    }
                    ui.add_space(12.0);
                    let ready = !form.server.trim().is_empty() && !form.nickname.trim().is_empty();
                    let button = Button::new(RichText::new("Connect").size(16.0))
                        .min_size(egui::vec2(FORM_WIDTH, 32.0));
                    if ui.add_enabled(ready, button).clicked() || (entered && ready) {
                        action = Some(Action::Connect);
                    }
                    if !settings.recent_servers.is_empty() {
                        ui.add_space(20.0);
                        ui.label(RichText::new("Recent servers").color(dim));
                        for server in &settings.recent_servers {
                            let shown = tlschat_client_core::render::sanitize(server);
                            if ui.link(shown.as_ref()).clicked() {
                                server.clone_into(&mut form.server);
                            }
                        }
                    }
                },
            );
        });
    });
    action
}

/// Waiting for the server; the password dialog when it asks one.
pub fn connecting(
    ui: &mut egui::Ui,
    server: &str,
    password: Option<&mut PasswordPrompt>,
) -> Option<Action> {
    let mut action = None;
    egui::CentralPanel::default().show(ui, |ui| {
        ui.vertical_centered(|ui| {
            ui.add_space((ui.available_height() * 0.3).min(200.0));
            ui.heading(format!("Connecting to {}…", sanitize(server)));
            ui.add_space(16.0);
            if ui.button("Cancel").clicked() {
                action = Some(Action::Back);
            }
        });
    });
    if let Some(prompt) = password {
        action = password_dialog(ui, prompt).or(action);
    }
    action
}

/// Under the Server field: whose certificate the invite makes trusted.
fn invite_note(ui: &mut egui::Ui, link: &InviteLink) {
    let mut text = format!(
        "invited: the certificate {} will be trusted",
        short(&link.fingerprint())
    );
    if link.code().is_some() {
        text.push_str(", and the invite code given if the server asks for one");
    }
    ui.add_space(4.0);
    ui.label(RichText::new(text).color(crate::colors::status(ui.visuals())));
}

/// A fingerprint as a reminder, not for comparing: `SHA256:ab12…89ef`.
fn short(fingerprint: &Fingerprint) -> String {
    let hex = fingerprint.to_string();
    let hex = hex.strip_prefix("SHA256:").unwrap_or(&hex);
    let head = hex.get(..4).unwrap_or_default();
    let tail = hex.get(hex.len().saturating_sub(4)..).unwrap_or_default();
    format!("SHA256:{head}…{tail}")
}

/// The bar over any other screen when a link arrives: open it (which
/// leaves that screen, a chat included) or dismiss it.
pub fn arrived_bar(ui: &mut egui::Ui, arrived: &Arrived) -> Option<Action> {
    let mut action = None;
    egui::Panel::top("arrived").show(ui, |ui| {
        ui.horizontal_wrapped(|ui| {
            match arrived {
                Arrived::Invite(link) => {
                    ui.label(format!(
                        "Invite to {} received",
                        sanitize(&link.server().to_string())
                    ));
                    if ui.button("Open (disconnects)").clicked() {
                        action = Some(Action::OpenArrived);
                    }
                }
                Arrived::Broken(why) => {
                    ui.colored_label(crate::colors::error(ui.visuals()), sanitize(why));
                }
            }
            if ui.button("Dismiss").clicked() {
                action = Some(Action::DismissArrived);
            }
        });
    });
    action
}

fn password_dialog(ui: &mut egui::Ui, prompt: &mut PasswordPrompt) -> Option<Action> {
    let mut action = None;
    egui::Modal::new(egui::Id::unique("password")).show(ui.ctx(), |ui| {
        ui.set_width(320.0);
        let (heading, label, why) = match &prompt.asked {
            Asked::Account(nick) => (
                "Password",
                "Password",
                format!("The server asks a password for {}.", sanitize(nick)),
            ),
            Asked::Join(server) => (
                "Join password",
                "Join password or invite code",
                format!(
                    "{} is a private server: it asks its join password or an invite code.",
                    sanitize(server)
                ),
            ),
        };
        ui.heading(heading);
        ui.label(format!(
            "{why} It is kept in memory to log in again after a reconnect, and never written to disk."
        ));
        ui.add_space(8.0);
        let field = labelled_field(
            ui,
            label,
            TextEdit::singleline(&mut prompt.typed)
                .password(true)
                .desired_width(300.0),
        );
        if prompt.typed.is_empty() && !field.has_focus() {
            field.request_focus();
        }
        let entered = field.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
        ui.add_space(8.0);
        ui.horizontal(|ui| {
            if ui.button("Log in").clicked() || entered {
                action = Some(Action::Password(Some(std::mem::take(&mut prompt.typed))));
            }
            if ui.button("Cancel").clicked() {
                action = Some(Action::Password(None));
            }
        });
    });
    action
}
