//! Counting text in cl100k_base tokens, and cutting it to a number of them: how summaries are
//! measured against their budget.
//!
//! Special-token text like `<|endoftext|>` is always ordinary text here, so that agents' input
//! cannot smuggle in control tokens; this module must not encode any other way. The tokenizer is
//! loaded once, on first use, and shared.

use std::sync::OnceLock;

use tiktoken_rs::CoreBPE;

/// Beyond this many characters without a change between blank and non-blank, text is tokenized
/// in pieces: the tokenizer is quadratic in such runs and fails on very long ones.
const TOKENIZER_RUN_CHARS: usize = 4096;

/// Counts `text` in cl100k_base tokens, treating special-token text like `<|endoftext|>` as
/// ordinary text (agents' input must not be able to smuggle in control tokens).
///
/// Exact for any text without a run of more than 4096 characters that are all blank or all
/// non-blank. Longer runs are counted in pieces of that size (so the count may be off by about a
/// token per piece), because the tokenizer takes quadratic time on them and fails on very long
/// ones; summaries never contain such runs, so their counts are always exact.
pub fn count_tokens(text: &str) -> usize {
    let bpe = tokenizer();
    let mut total = 0;
    let mut start = 0;
    let mut run = 0;
    let mut run_is_blank = false;
    for (at, c) in text.char_indices() {
        let blank = c.is_whitespace();
        if run > 0 && blank == run_is_blank {
            run += 1;
        } else {
            run = 1;
            run_is_blank = blank;
        }
        if run > TOKENIZER_RUN_CHARS {
            total += bpe.encode_ordinary(&text[start..at]).len();
            start = at;
            run = 1;
        }
    }
    if start < text.len() {
        total += bpe.encode_ordinary(&text[start..]).len();
    }
    total
}

fn tokenizer() -> &'static CoreBPE {
    static TOKENIZER: OnceLock<CoreBPE> = OnceLock::new();
    TOKENIZER.get_or_init(|| {
        // Invariant: the cl100k_base ranks are compiled into tiktoken-rs, so loading them can
        // only fail if that crate is broken.
        tiktoken_rs::cl100k_base().expect("the bundled cl100k_base tokenizer loads")
    })
}

/// The longest start of `text`, cut at a token boundary, that with "…" appended is at most
/// `max_tokens` tokens; `text` itself when it already fits. Returns the text and its token count.
pub(super) fn truncate_to_tokens(text: &str, max_tokens: usize) -> (String, usize) {
    let bpe = tokenizer();
    let tokens = bpe.encode_ordinary(text);
    if tokens.len() <= max_tokens {
        return (text.to_owned(), tokens.len());
    }
    let mut keep = max_tokens.saturating_sub(1);
    while keep > 0 {
        // every token was just encoded by the same tokenizer, so every one decodes
        let bytes = bpe.decode_bytes(&tokens[..keep]).unwrap_or_default();
        // A token may end inside a multi-byte character: keep only whole characters.
        let valid = match std::str::from_utf8(&bytes) {
            Ok(all) => all,
            Err(e) => std::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or_default(),
        };
        let candidate = format!("{valid}…");
        let cost = count_tokens(&candidate);
        if cost <= max_tokens {
            return (candidate, cost);
        }
        keep = keep.saturating_sub((cost - max_tokens).max(1));
    }
    (String::new(), 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_never_splits_a_character() {
        for max in 1..12 {
            let (text, tokens) = truncate_to_tokens(&"日本語のテキスト😀".repeat(10), max);
            assert!(tokens <= max);
            assert_eq!(tokens, count_tokens(&text));
        }
    }

    #[test]
    fn counting_is_exact_for_ordinary_text() {
        let text = "Decisions: Use Postgres; <|endoftext|> is plain text here\n";
        assert_eq!(count_tokens(text), tokenizer().encode_ordinary(text).len());
        assert_eq!(count_tokens(""), 0);
    }
}
