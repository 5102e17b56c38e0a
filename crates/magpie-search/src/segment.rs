//! How a run of CJK characters becomes tokens (docs/search.md, "Tokens"):
//! `bigram`, the default, needs no dictionary and finds any substring of a
//! run; `jieba` (cargo feature `jieba`, config `search.tokenizer`) cuts
//! Chinese into dictionary words, which ranks better and indexes fewer
//! tokens but finds a word only where the segmenter cut it out, in the
//! document as in the query.
//!
//! Invariant: an index is read with the segmenter that wrote it. The
//! segmenter's name is kept beside the index (`SearchIndex::open`); an
//! index written by another is rebuilt, never read with the wrong one.

use crate::error::{Result, SearchError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Segmenter {
    /// Every character and every neighbouring pair, sharing positions.
    #[default]
    Bigram,
    /// jieba-rs's dictionary and HMM: search-mode words (a long word and
    /// the words inside it) in documents, default-mode words in queries.
    #[cfg(feature = "jieba")]
    Jieba,
}

/// One token of a run: byte offsets in the text, position, text.
pub(crate) type Piece = (usize, usize, usize, String);

impl Segmenter {
    /// The segmenter named by `search.tokenizer`.
    pub fn parse(name: &str) -> Result<Segmenter> {
        match name {
            "bigram" => Ok(Segmenter::Bigram),
            #[cfg(feature = "jieba")]
            "jieba" => Ok(Segmenter::Jieba),
            #[cfg(not(feature = "jieba"))]
            "jieba" => Err(SearchError::Config(
                "search.tokenizer = \"jieba\": this build lacks the `jieba` feature".into(),
            )),
            other => Err(SearchError::Config(format!(
                "search.tokenizer: {other:?} is neither \"bigram\" nor \"jieba\""
            ))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Segmenter::Bigram => "bigram",
            #[cfg(feature = "jieba")]
            Segmenter::Jieba => "jieba",
        }
    }

    /// The tokens of the CJK `run` found at byte `at` of the text, its
    /// first character at `position`; positions stay in order and one per
    /// character, so the text's next piece starts at `position` plus the
    /// run's length in characters.
    pub(crate) fn index_run(self, text: &str, run: &str, at: usize, position: usize) -> Vec<Piece> {
        let mut out = Vec::new();
        match self {
            Segmenter::Bigram => {
                let chars: Vec<(usize, char)> = run.char_indices().collect();
                for (k, &(off, c)) in chars.iter().enumerate() {
                    let from = at + off;
                    out.push((from, from + c.len_utf8(), position + k, c.to_string()));
                    if let Some(&(next_off, next)) = chars.get(k + 1) {
                        let to = at + next_off + next.len_utf8();
                        out.push((from, to, position + k, text[from..to].to_string()));
                    }
                }
            }
            #[cfg(feature = "jieba")]
            Segmenter::Jieba => {
                out = jieba::tokens(run, true)
                    .into_iter()
                    .map(|(from, to, k, word)| (at + from, at + to, position + k, word))
                    .collect();
            }
        }
        out
    }

    /// The terms a query's CJK `run` must all match, and whether they must
    /// stand at consecutive positions (a phrase) to match as written.
    pub(crate) fn query_run(self, run: &str) -> (Vec<String>, bool) {
        match self {
            Segmenter::Bigram => {
                let chars: Vec<&str> = run
                    .char_indices()
                    .map(|(i, c)| &run[i..i + c.len_utf8()])
                    .collect();
                if chars.len() == 1 {
                    return (vec![chars[0].to_string()], false);
                }
                let pairs = chars.windows(2).map(|w| format!("{}{}", w[0], w[1]));
                (pairs.collect(), true)
            }
            #[cfg(feature = "jieba")]
            Segmenter::Jieba => {
                let words = jieba::tokens(run, false).into_iter().map(|t| t.3);
                (words.collect(), false)
            }
        }
    }
}

#[cfg(feature = "jieba")]
mod jieba {
    use tantivy::tokenizer::{TokenStream, Tokenizer};
    use tantivy_jieba::JiebaTokenizer;

    /// jieba's tokens of `run` (search mode for documents, default mode for
    /// queries) as (byte from, byte to, character position, word), ordered
    /// by position (search mode gives a long word after the words inside
    /// it; the index needs positions that never go back).
    pub fn tokens(run: &str, search_mode: bool) -> Vec<super::Piece> {
        let mut t = JiebaTokenizer::with_search_mode(search_mode);
        let mut stream = t.token_stream(run);
        let mut out = Vec::new();
        while stream.advance() {
            let tok = stream.token();
            if tok.text.chars().all(|c| !c.is_alphanumeric()) {
                continue;
            }
            out.push((
                tok.offset_from,
                tok.offset_to,
                tok.position,
                tok.text.clone(),
            ));
        }
        out.sort_by_key(|p| (p.2, p.1));
        out
    }
}
