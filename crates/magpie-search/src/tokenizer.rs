//! The tokenizer of message bodies: words for alphabetic scripts, and for
//! Chinese, Japanese and Korean (which write no spaces between words) the
//! segmenter's tokens (`segment.rs`). By default every character and every
//! pair of neighbouring characters, so any substring of a CJK run is found
//! without a dictionary: 简单 inside 安装简单, 鲍勃 inside 你好，鲍勃
//! (docs/search.md, "Tokens").
//!
//! Positions: one per character of a CJK run; a run's unigram and the
//! bigram starting at the same character share it, so the bigrams of a
//! query run are a phrase at consecutive positions and match only where
//! the run appears as written. Words are lowercased here and stemmed by
//! the analyzer's next filter.

use crate::segment::Segmenter;
use tantivy::tokenizer::{Token, TokenStream, Tokenizer};

/// Whether `c` belongs to a script written without spaces between words
/// (Han, kana, Hangul and their compatibility and extension blocks).
pub fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x1100..=0x11FF       // Hangul Jamo
        | 0x2E80..=0x2FDF     // CJK radicals
        | 0x3005..=0x3007     // 々 〆 〇
        | 0x3040..=0x30FF     // Hiragana, Katakana
        | 0x3130..=0x318F     // Hangul compatibility Jamo
        | 0x31F0..=0x31FF     // Katakana phonetic extensions
        | 0x3400..=0x4DBF     // CJK extension A
        | 0x4E00..=0x9FFF     // CJK unified ideographs
        | 0xA960..=0xA97F     // Hangul Jamo extended A
        | 0xAC00..=0xD7AF     // Hangul syllables
        | 0xF900..=0xFAFF     // CJK compatibility ideographs
        | 0xFF66..=0xFF9F     // half-width Katakana
        | 0x20000..=0x3FFFF   // CJK extensions B and later
    )
}

/// One piece of a text: a word, or a run of CJK characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece<'a> {
    Word(&'a str, usize),
    Cjk(&'a str, usize),
}

/// Splits `text` into words and CJK runs with their byte offsets; anything
/// else (spaces, punctuation, symbols) separates them.
pub fn pieces<'a>(text: &'a str) -> Vec<Piece<'a>> {
    let mut out = Vec::new();
    let mut start: Option<(usize, bool)> = None;
    let close = |out: &mut Vec<Piece<'a>>, from: usize, to: usize, cjk: bool| {
        let s = &text[from..to];
        out.push(if cjk {
            Piece::Cjk(s, from)
        } else {
            Piece::Word(s, from)
        });
    };
    for (i, c) in text.char_indices() {
        let kind = if is_cjk(c) {
            Some(true)
        } else if c.is_alphanumeric() {
            Some(false)
        } else {
            None
        };
        match (start, kind) {
            (Some((_, was)), Some(now)) if was == now => {}
            (Some((from, was)), _) => {
                close(&mut out, from, i, was);
                start = kind.map(|k| (i, k));
            }
            (None, Some(k)) => start = Some((i, k)),
            (None, None) => {}
        }
    }
    if let Some((from, was)) = start {
        close(&mut out, from, text.len(), was);
    }
    out
}

/// The tokenizer registered as `magpie` (see `schema.rs`).
#[derive(Clone, Default)]
pub struct BodyTokenizer {
    pub segmenter: Segmenter,
}

pub struct Stream {
    tokens: Vec<Token>,
    at: usize,
}

impl Tokenizer for BodyTokenizer {
    type TokenStream<'a> = Stream;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> Stream {
        let mut tokens = Vec::new();
        let mut position = 0;
        let mut push = |from: usize, to: usize, text: String, position: usize| {
            tokens.push(Token {
                offset_from: from,
                offset_to: to,
                position,
                text,
                position_length: 1,
            });
        };
        for piece in pieces(text) {
            match piece {
                Piece::Word(w, at) => {
                    push(at, at + w.len(), w.to_lowercase(), position);
                    position += 1;
                }
                Piece::Cjk(run, at) => {
                    for (from, to, p, t) in self.segmenter.index_run(text, run, at, position) {
                        push(from, to, t, p);
                    }
                    position += run.chars().count();
                }
            }
        }
        Stream { tokens, at: 0 }
    }
}

impl TokenStream for Stream {
    fn advance(&mut self) -> bool {
        self.at += 1;
        self.at <= self.tokens.len()
    }
    fn token(&self) -> &Token {
        &self.tokens[self.at - 1]
    }
    fn token_mut(&mut self) -> &mut Token {
        &mut self.tokens[self.at - 1]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(s: &str) -> Vec<(String, usize)> {
        let mut t = BodyTokenizer::default();
        let mut stream = t.token_stream(s);
        let mut out = Vec::new();
        while stream.advance() {
            out.push((stream.token().text.clone(), stream.token().position));
        }
        out
    }

    #[test]
    fn cjk_runs_give_unigrams_and_bigrams_at_shared_positions() {
        let got = texts("你好，鲍勃");
        let want = [
            ("你", 0),
            ("你好", 0),
            ("好", 1),
            ("鲍", 2),
            ("鲍勃", 2),
            ("勃", 3),
        ];
        let want: Vec<(String, usize)> = want.iter().map(|(t, p)| (t.to_string(), *p)).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn mixed_text_splits_scripts_and_lowercases_words() {
        let got: Vec<String> = texts("iPhone价格 is 好").into_iter().map(|t| t.0).collect();
        assert_eq!(got, ["iphone", "价", "价格", "格", "is", "好"]);
    }

    #[test]
    fn kana_and_hangul_are_cjk() {
        assert!(is_cjk('タ') && is_cjk('ひ') && is_cjk('안') && is_cjk('東'));
        assert!(!is_cjk('a') && !is_cjk('é') && !is_cjk('，'));
    }
}
