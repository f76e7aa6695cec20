//! The screens: each draws its part and returns what the user did as an
//! [`Action`](crate::app::Action), or `None`.

mod bidi;
pub mod chat;
pub mod connect;
pub mod trust;

/// A single-line text field with a visible label that also names it for
/// screen readers (and for the UI tests, which find fields by label).
pub(crate) fn labelled_field(
    ui: &mut egui::Ui,
    label: &str,
    field: egui::TextEdit<'_>,
) -> egui::Response {
    let label = ui.label(label);
    ui.add(field).labelled_by(label.id)
}
