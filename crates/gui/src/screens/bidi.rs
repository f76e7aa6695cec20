//! Right-to-left text in the message pane. egui shapes each run of one
//! font in its script's direction (an Arabic or Hebrew word comes out
//! right to left, letters joined) but does no bidirectional reordering:
//! the words of a Hebrew sentence, and the numbers and Latin words inside
//! an Arabic one, would stay in the order they were typed, left to right.
//!
//! [`visual_pieces`] runs the Unicode bidirectional algorithm
//! (unicode-bidi) on one line of text and returns its pieces in the order
//! they are drawn, left to right. A right-to-left word stays whole and in
//! the order it was typed, so the shaper still joins its letters and
//! draws it right to left; everything else in a right-to-left run (spaces,
//! punctuation, emoji) is a piece of its own, so it lands on the correct
//! side. The text has been sanitised: it holds no bidi controls, so the
//! only directions are the characters' own.

use std::borrow::Cow;

use unicode_bidi::{bidi_class, BidiClass, BidiInfo, Level};
use unicode_segmentation::UnicodeSegmentation;

/// Whether `c` makes text around it right to left (Hebrew, Arabic and the
/// other right-to-left scripts, Arabic digits).
pub(crate) fn is_rtl(c: char) -> bool {
    matches!(bidi_class(c), BidiClass::R | BidiClass::AL | BidiClass::AN)
}

/// Whether a paragraph of `text` reads right to left: its first letter
/// with a direction is a right-to-left one.
pub fn is_rtl_paragraph(text: &str) -> bool {
    BidiInfo::new(text, None)
        .paragraphs
        .first()
        .is_some_and(|p| p.level.is_rtl())
}

/// `text` (one line of a paragraph that reads right to left if `rtl`) in
/// pieces, left to right on screen; one borrowed piece when it has
/// nothing right to left (the common case).
pub fn visual_pieces(text: &str, rtl: bool) -> Vec<Cow<'_, str>> {
    if !text.chars().any(is_rtl) {
        return vec![Cow::Borrowed(text)];
    }
    let base = if rtl { Level::rtl() } else { Level::ltr() };
    let info = BidiInfo::new(text, Some(base));
    let mut pieces = Vec::new();
    for paragraph in &info.paragraphs {
        let (levels, runs) = info.visual_runs(paragraph, paragraph.range.clone());
        for run in runs {
            let rtl = levels.get(run.start).is_some_and(|l| l.is_rtl());
            let Some(run) = text.get(run) else { continue };
            if rtl {
                reversed(run, &mut pieces);
            } else {
                pieces.push(Cow::Borrowed(run));
            }
        }
    }
    pieces
}

/// A right-to-left run's pieces, right to left: its words whole, every
/// other grapheme alone (brackets mirrored, as they face the other way).
fn reversed<'a>(run: &'a str, pieces: &mut Vec<Cow<'a, str>>) {
    let mut tokens: Vec<Cow<'a, str>> = Vec::new();
    let mut word: Option<(usize, usize)> = None;
    for (at, grapheme) in run.grapheme_indices(true) {
        let end = at + grapheme.len();
        if grapheme.chars().next().is_some_and(is_rtl) {
            word = Some(word.map_or((at, end), |(start, _)| (start, end)));
            continue;
        }
        if let Some((start, stop)) = word.take() {
            tokens.extend(run.get(start..stop).map(Cow::Borrowed));
        }
        tokens.push(mirrored(grapheme));
    }
    if let Some((start, stop)) = word {
        tokens.extend(run.get(start..stop).map(Cow::Borrowed));
    }
    pieces.extend(tokens.into_iter().rev());
}

/// A grapheme as it is drawn in right-to-left text: the paired brackets
/// face the other way.
fn mirrored(grapheme: &str) -> Cow<'_, str> {
    let other = match grapheme {
        "(" => ")",
        ")" => "(",
        "[" => "]",
        "]" => "[",
        "{" => "}",
        "}" => "{",
        "<" => ">",
        ">" => "<",
        "«" => "»",
        "»" => "«",
        "‹" => "›",
        "›" => "‹",
        _ => return Cow::Borrowed(grapheme),
    };
    Cow::Borrowed(other)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(text: &str) -> Vec<String> {
        visual_pieces(text, is_rtl_paragraph(text))
            .into_iter()
            .map(Cow::into_owned)
            .collect()
    }

    #[test]
    fn left_to_right_text_is_one_piece() {
        assert_eq!(shown("hello, мир 123 👋🏽"), ["hello, мир 123 👋🏽"]);
    }

    #[test]
    fn an_arabic_sentence_with_digits_and_latin_reads_right_to_left() {
        assert_eq!(
            shown("مرحبا بالجميع 123 ok"),
            ["ok", " ", "123", " ", "بالجميع", " ", "مرحبا"]
        );
    }

    #[test]
    fn hebrew_punctuation_ends_on_the_left() {
        assert_eq!(shown("שלום עולם!"), ["!", "עולם", " ", "שלום"]);
    }

    #[test]
    fn a_hebrew_phrase_inside_english_keeps_the_english_order() {
        assert_eq!(
            shown("he said שלום עולם (twice)"),
            ["he said ", "עולם", " ", "שלום", " (twice)"]
        );
        assert_eq!(shown("(שלום)"), ["(", "שלום", ")"]);
    }

    #[test]
    fn emoji_in_right_to_left_text_stay_whole() {
        assert_eq!(shown("שלום 👨‍👩‍👧"), ["👨‍👩‍👧", " ", "שלום"]);
    }
}
