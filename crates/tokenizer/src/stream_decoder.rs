//! [`StreamDecoder`]: incremental detokenization.

use crate::error::Result;
use crate::tokenizer::Tokenizer;
use crate::TokenId;

/// Turns ids arriving one at a time into text pieces.
///
/// Each piece is whole characters: a character spread over several tokens (byte-fallback
/// `<0xE4><0xB8><0xAD>`, or a byte-level BPE token ending mid-character) is held back until it is
/// complete. The concatenation of every piece from [`push`](Self::push) and the final
/// [`finish`](Self::finish) equals `tokenizer.decode(all ids, skip_special)`.
///
/// It works by decoding a short window of recent ids twice — with and without the new id — and
/// emitting the difference, so decoder rules that depend on neighbours (SentencePiece's leading
/// space, which is stripped only at the start of the text) come out the same as a full decode.
/// It holds no reference to the tokenizer; pass the same one to every call.
#[derive(Clone, Debug, Default)]
pub struct StreamDecoder {
    /// Ids from `prefix_offset` on (earlier ones are dropped once emitted).
    ids: Vec<TokenId>,
    /// Ids in `ids[..read_offset]` have been emitted; `ids[..prefix_offset]` were dropped.
    read_offset: usize,
    skip_special: bool,
}

impl StreamDecoder {
    /// A decoder for one stream. `skip_special`: leave special tokens out of the text.
    pub fn new(skip_special: bool) -> StreamDecoder {
        StreamDecoder { ids: Vec::new(), read_offset: 0, skip_special }
    }

    /// Feeds one id; returns the text that is now complete (often empty).
    pub fn push(&mut self, tokenizer: &Tokenizer, id: TokenId) -> Result<String> {
        self.ids.push(id);
        let prefix_text = tokenizer.decode(&self.ids[..self.read_offset], self.skip_special)?;
        let new_text = tokenizer.decode(&self.ids, self.skip_special)?;
        if new_text.len() <= prefix_text.len() || new_text.ends_with('\u{FFFD}') {
            // Nothing new yet, or the last character is still incomplete.
            return Ok(String::new());
        }
        let Some(piece) = new_text.strip_prefix(prefix_text.as_str()) else {
            // The decoder rewrote earlier text (no decoder used here does); wait for `finish`.
            return Ok(String::new());
        };
        let piece = piece.to_owned();
        // Keep the ids just emitted as the next window's left context.
        self.ids.drain(..self.read_offset);
        self.read_offset = self.ids.len();
        Ok(piece)
    }

    /// Everything not yet emitted, complete or not (an unfinished character becomes U+FFFD, as
    /// in a full decode). The decoder is empty afterwards and can start a new stream.
    pub fn finish(&mut self, tokenizer: &Tokenizer) -> Result<String> {
        let prefix_text = tokenizer.decode(&self.ids[..self.read_offset], self.skip_special)?;
        let new_text = tokenizer.decode(&self.ids, self.skip_special)?;
        self.ids.clear();
        self.read_offset = 0;
        Ok(new_text.strip_prefix(prefix_text.as_str()).unwrap_or(&new_text).to_owned())
    }

    /// Whether ids are held back waiting for the rest of a character.
    pub fn has_pending(&self) -> bool {
        self.read_offset < self.ids.len()
    }
}
