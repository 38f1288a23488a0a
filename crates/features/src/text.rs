//! Text tokenisation for pooled token embeddings (movie titles, product names).

use serde::{Deserialize, Serialize};

/// Lowercases, strips punctuation and splits on whitespace — the behaviour of Keras'
/// `TextVectorization` default standardisation, which the seed tutorials use on titles.
/// Punctuation is removed, not replaced by a space, so "Children's" → "childrens".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tokenizer {
    /// Keep at most this many tokens per text (0 = no limit).
    pub max_tokens: usize,
}

impl Default for Tokenizer {
    fn default() -> Self {
        Tokenizer { max_tokens: 32 }
    }
}

impl Tokenizer {
    /// The tokens of `text`.
    pub fn tokenize(&self, text: &str) -> Vec<String> {
        let clean: String = text
            .chars()
            .filter(|c| c.is_alphanumeric() || c.is_whitespace())
            .flat_map(char::to_lowercase)
            .collect();
        let tokens = clean.split_whitespace().map(str::to_owned);
        if self.max_tokens == 0 {
            tokens.collect()
        } else {
            tokens.take(self.max_tokens).collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles() {
        let t = Tokenizer::default();
        assert_eq!(t.tokenize("Toy Story (1995)"), ["toy", "story", "1995"]);
        assert_eq!(
            t.tokenize("Children's   Hour, The"),
            ["childrens", "hour", "the"]
        );
        assert_eq!(t.tokenize("Café Society — Été"), ["café", "society", "été"]);
        assert!(t.tokenize(" ... ").is_empty());
        assert_eq!(Tokenizer { max_tokens: 2 }.tokenize("a b c"), ["a", "b"]);
    }
}
