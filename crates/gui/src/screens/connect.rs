//! The connect screen (server, nickname, recent servers, Connect), the
//! "connecting…" screen and the password dialog over it.

use egui::{Align, Button, Layout, RichText, TextEdit};

use super::labelled_field;
use crate::app::{Action, ConnectForm, PasswordPrompt};
use crate::settings::Settings;

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
                            .hint_text(RichText::new("host or host:port").color(dim))
                            .desired_width(FORM_WIDTH),
                    );
                    ui.add_space(8.0);
                    let nick = labelled_field(
                        ui,
                        "Nickname",
                        TextEdit::singleline(&mut form.nickname)
                            .hint_text(RichText::new("letters, digits, _ - .").color(dim))
                            .desired_width(FORM_WIDTH),
                    );
                    // Typing can start at once: in the first empty field.
                    if ui.memory(|m| m.focused().is_none()) {
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
            ui.heading(format!(
                "Connecting to {}…",
                tlschat_client_core::render::sanitize(server)
            ));
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

fn password_dialog(ui: &mut egui::Ui, prompt: &mut PasswordPrompt) -> Option<Action> {
    let mut action = None;
    egui::Modal::new(egui::Id::unique("password")).show(ui.ctx(), |ui| {
        ui.set_width(320.0);
        ui.heading("Password");
        ui.label(format!(
            "The server asks a password for {}. It is kept in memory to log in again after a reconnect, and never written to disk.",
            tlschat_client_core::render::sanitize(&prompt.nick)
        ));
        ui.add_space(8.0);
        let field = labelled_field(
            ui,
            "Password",
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
