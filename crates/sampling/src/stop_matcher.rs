//! Stop strings matched across token boundaries in streamed text.

use std::sync::Arc;

use crate::error::{Result, SamplingError};

/// What to do after one text piece.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StopMatchOutput {
    /// Text that is final and can be sent to the client now (may be empty).
    pub text: String,
    /// `Some(index)` of the stop string that matched: generation stops, `text` is everything before
    /// the stop string, and the stop string and anything after it are dropped.
    pub matched: Option<usize>,
}

/// Matches stop strings in text that arrives one token piece at a time.
///
/// Each piece (as produced by a streaming detokenizer) is appended to the held text. Then:
/// - if a stop string occurs, generation stops: the text before it is emitted, the stop string and
///   whatever follows it are not (OpenAI's behaviour). When several occurrences are complete, the
///   one that ends first wins (on equal ends, the one that starts first), which is what a
///   character-by-character stream would see, so the result does not depend on where tokens split
///   the text;
/// - otherwise the longest tail of the held text that is a prefix of some stop string is held back
///   and everything before it is emitted. Emitted text can therefore never be part of a stop
///   string.
///
/// When generation ends for another reason, [`StopMatcher::flush`] returns the held text.
/// With no stop strings every piece is emitted at once.
#[derive(Debug, Clone, Default)]
pub struct StopMatcher {
    /// Shared with the request's other choices.
    stop_strings: Arc<[String]>,
    max_stop_len: usize,
    held: String,
    matched: Option<usize>,
}

impl StopMatcher {
    /// A matcher for `stop_strings`; an empty stop string is an error.
    pub fn new(stop_strings: impl Into<Arc<[String]>>) -> Result<Self> {
        let stop_strings: Arc<[String]> = stop_strings.into();
        if let Some(index) = stop_strings.iter().position(String::is_empty) {
            return Err(SamplingError::EmptyStopString { index });
        }
        Ok(Self {
            max_stop_len: stop_strings.iter().map(String::len).max().unwrap_or(0),
            stop_strings,
            held: String::new(),
            matched: None,
        })
    }

    /// Feeds the text of one new token. After a match, further pieces are ignored.
    pub fn push(&mut self, piece: &str) -> StopMatchOutput {
        if self.matched.is_some() {
            return StopMatchOutput::default();
        }
        if self.stop_strings.is_empty() {
            return StopMatchOutput { text: piece.to_owned(), matched: None };
        }
        self.held.push_str(piece);

        // (end, start, index) of the earliest-ending occurrence. For one stop string the first
        // occurrence is also the earliest-ending one.
        let mut best: Option<(usize, usize, usize)> = None;
        for (index, stop) in self.stop_strings.iter().enumerate() {
            if let Some(start) = self.held.find(stop.as_str()) {
                let candidate = (start + stop.len(), start, index);
                if best.is_none_or(|current| (candidate.0, candidate.1) < (current.0, current.1)) {
                    best = Some(candidate);
                }
            }
        }
        if let Some((_, start, index)) = best {
            self.held.truncate(start);
            self.matched = Some(index);
            return StopMatchOutput { text: std::mem::take(&mut self.held), matched: Some(index) };
        }

        let hold_from = self.hold_start();
        let text = self.held[..hold_from].to_owned();
        self.held.drain(..hold_from);
        StopMatchOutput { text, matched: None }
    }

    /// Returns (and clears) the held text, for when generation ends without a stop string.
    pub fn flush(&mut self) -> String {
        std::mem::take(&mut self.held)
    }

    /// The text held back because it may begin a stop string.
    pub fn held_text(&self) -> &str {
        &self.held
    }

    /// The index of the stop string that matched, if one did.
    pub fn matched(&self) -> Option<usize> {
        self.matched
    }

    /// The stop strings.
    pub fn stop_strings(&self) -> &[String] {
        &self.stop_strings
    }

    /// Start of the longest tail of the held text that is a proper prefix of a stop string
    /// (`held.len()` when there is none). A longer tail cannot be a proper prefix, so only the
    /// last `max_stop_len - 1` bytes are examined.
    fn hold_start(&self) -> usize {
        let first = self.held.len().saturating_sub(self.max_stop_len.saturating_sub(1));
        (first..self.held.len())
            .filter(|&start| self.held.is_char_boundary(start))
            .find(|&start| {
                let tail = &self.held[start..];
                self.stop_strings.iter().any(|stop| stop.starts_with(tail))
            })
            .unwrap_or(self.held.len())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn new_matcher(stops: &[&str]) -> StopMatcher {
        let stops: Vec<String> = stops.iter().map(|s| s.to_string()).collect();
        StopMatcher::new(stops.as_slice()).unwrap()
    }

    fn output(text: &str, matched: Option<usize>) -> StopMatchOutput {
        StopMatchOutput { text: text.to_owned(), matched }
    }

    /// Streams `pieces`, returning everything emitted and the match.
    fn stream(stops: &[&str], pieces: &[&str]) -> (String, Option<usize>) {
        let mut matcher = new_matcher(stops);
        let mut emitted = String::new();
        for piece in pieces {
            let step = matcher.push(piece);
            emitted.push_str(&step.text);
            if step.matched.is_some() {
                return (emitted, step.matched);
            }
        }
        emitted.push_str(&matcher.flush());
        (emitted, None)
    }

    #[test]
    fn example_from_the_issue() {
        let mut matcher = new_matcher(&["\n\nUser:"]);
        assert_eq!(matcher.push("Hello"), output("Hello", None));
        assert_eq!(matcher.push("\n"), output("", None));
        assert_eq!(matcher.held_text(), "\n");
        assert_eq!(matcher.push("\nUs"), output("", None));
        assert_eq!(matcher.held_text(), "\n\nUs");
        assert_eq!(matcher.push("er:"), output("", Some(0)));
        assert_eq!(matcher.matched(), Some(0));
        assert_eq!(matcher.push("more"), output("", None), "pieces after a stop are ignored");
        assert_eq!(matcher.flush(), "");
    }

    #[test]
    fn held_text_is_released_when_the_prefix_breaks() {
        let mut matcher = new_matcher(&["\n\nUser:"]);
        assert_eq!(matcher.push("a\n"), output("a", None));
        assert_eq!(matcher.push("\nUx"), output("\n\nUx", None));
        assert_eq!(matcher.held_text(), "");
    }

    #[test]
    fn held_text_is_flushed_at_the_end() {
        let mut matcher = new_matcher(&["STOP"]);
        assert_eq!(matcher.push("done ST"), output("done ", None));
        assert_eq!(matcher.flush(), "ST");
        assert_eq!(matcher.held_text(), "");
    }

    #[test]
    fn stop_inside_one_token_discards_the_rest() {
        assert_eq!(stream(&["END"], &["abcENDxyz"]), ("abc".to_owned(), Some(0)));
        assert_eq!(stream(&["END"], &["ab", "cENDxyz", "more"]), ("abc".to_owned(), Some(0)));
    }

    #[test]
    fn stop_split_over_many_tokens() {
        assert_eq!(
            stream(&["<|im_end|>"], &["Hi", "<", "|", "im", "_", "end", "|>", "tail"]),
            ("Hi".to_owned(), Some(0))
        );
    }

    #[test]
    fn stop_at_the_very_start() {
        assert_eq!(stream(&["x"], &["xyz"]), (String::new(), Some(0)));
    }

    #[test]
    fn multiple_stop_strings_earliest_end_wins() {
        // "bc" completes before "abcd" does, whatever the split.
        assert_eq!(stream(&["abcd", "bc"], &["abcd"]), ("a".to_owned(), Some(1)));
        assert_eq!(stream(&["abcd", "bc"], &["ab", "cd"]), ("a".to_owned(), Some(1)));
        // Same end: the longer (earlier-starting) one.
        assert_eq!(stream(&["c", "abc"], &["xabc"]), ("x".to_owned(), Some(1)));
    }

    #[test]
    fn overlapping_prefixes_hold_the_longest_possible_start() {
        let mut matcher = new_matcher(&["aab", "ab"]);
        // "aa" could start "aab"; hold it all.
        assert_eq!(matcher.push("xaa"), output("x", None));
        assert_eq!(matcher.held_text(), "aa");
        assert_eq!(matcher.push("b"), output("", Some(0)));

        // A stop string whose own prefix repeats: "aaab" after "aaaa".
        let mut matcher = new_matcher(&["aaab"]);
        assert_eq!(matcher.push("aaaa"), output("a", None));
        assert_eq!(matcher.push("b!"), output("", Some(0)));
    }

    #[test]
    fn no_stop_strings_passes_everything_through() {
        let mut matcher = new_matcher(&[]);
        assert_eq!(matcher.push("any text"), output("any text", None));
        assert_eq!(matcher.flush(), "");
    }

    #[test]
    fn multibyte_text_is_split_on_char_boundaries() {
        assert_eq!(stream(&["éa"], &["xé", "é", "a"]), ("xé".to_owned(), Some(0)));
        let mut matcher = new_matcher(&["日本語"]);
        assert_eq!(matcher.push("今日本"), output("今", None));
        assert_eq!(matcher.push("当"), output("日本当", None));
    }

    #[test]
    fn empty_stop_string_is_rejected() {
        assert_eq!(
            StopMatcher::new(vec!["ok".to_owned(), String::new()]).unwrap_err(),
            SamplingError::EmptyStopString { index: 1 }
        );
    }

    /// The whole text up to the first stop occurrence (earliest end, then earliest start).
    fn reference(text: &str, stops: &[String]) -> (String, bool) {
        for end in (1..=text.len()).filter(|&end| text.is_char_boundary(end)) {
            let start = stops
                .iter()
                .filter(|stop| text[..end].ends_with(stop.as_str()))
                .map(|stop| end - stop.len())
                .min();
            if let Some(start) = start {
                return (text[..start].to_owned(), true);
            }
        }
        (text.to_owned(), false)
    }

    proptest! {
        #[test]
        fn streamed_output_is_the_text_before_the_first_stop(
            text in "[ab\n:é]{0,40}",
            stops in proptest::collection::vec("[ab\n:é]{1,5}", 1..4),
            cuts in proptest::collection::vec(0usize..64, 0..12),
        ) {
            let boundaries: Vec<usize> =
                text.char_indices().map(|(index, _)| index).chain([text.len()]).collect();
            let mut cut_points: Vec<usize> =
                cuts.iter().map(|cut| boundaries[cut % boundaries.len()]).collect();
            cut_points.push(0);
            cut_points.push(text.len());
            cut_points.sort_unstable();
            // Keeping duplicates yields empty pieces, which must be harmless.
            let pieces: Vec<&str> =
                cut_points.windows(2).map(|pair| &text[pair[0]..pair[1]]).collect();

            let mut matcher = StopMatcher::new(stops.as_slice()).unwrap();
            let mut emitted = String::new();
            let mut matched = false;
            for piece in &pieces {
                let step = matcher.push(piece);
                emitted.push_str(&step.text);
                if step.matched.is_some() {
                    matched = true;
                    break;
                }
            }
            if !matched {
                emitted.push_str(&matcher.flush());
            }
            let (expected, expected_match) = reference(&text, &stops);
            prop_assert_eq!(&emitted, &expected);
            prop_assert_eq!(matched, expected_match);
            for stop in &stops {
                prop_assert!(!emitted.contains(stop.as_str()), "emitted a stop string {:?}", stop);
            }
        }
    }
}
