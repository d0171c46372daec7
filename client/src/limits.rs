//! The bounds of request fields, stated once: the service's parsers refuse what lies outside
//! them, and the schemas of the request types (and so the published documents) state them.

use std::ops::RangeInclusive;

/// The longest ticket title accepted, in characters (`title` is 1–500).
pub const TITLE_MAX_CHARS: usize = 500;

/// The longest transition reason accepted, in characters (`reason` is 1–10000).
pub const REASON_MAX_CHARS: usize = 10_000;

/// Longest accepted `artifact_type`, `artifact_path` or similar short text.
pub const SHORT_TEXT_MAX_CHARS: usize = 500;

/// Longest accepted ticket description or task error.
pub const DESCRIPTION_MAX_CHARS: usize = 100_000;

/// The lease lengths a claim or heartbeat may ask for, in seconds.
pub const LEASE_SECONDS: RangeInclusive<u32> = 10..=86_400;

/// The JSON Schema `pattern` of a text that is not blank: it holds a character outside Unicode
/// `White_Space` (what [`char::is_whitespace`] tests). Written out rather than `\S`, whose
/// meaning differs between regex dialects.
pub const NOT_BLANK_PATTERN: &str =
    r"[^\t\n\u000b\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]";

/// The JSON Schema `pattern` of a text holding U+0000, which no stored text or JSON may hold
/// (Postgres `text` and `jsonb` cannot): the documents forbid it with `not`, and the service
/// refuses every text and object of a request that holds one.
pub const NUL_PATTERN: &str = r"\u0000";

/// The longest agent id or role name, in characters.
pub const NAME_MAX_CHARS: usize = 64;

/// The JSON Schema `pattern` of an agent id or a role name: 1 to 64 of `a-z`, `0-9`, `.`, `_`
/// and `-`.
pub const NAME_PATTERN: &str = "^[a-z0-9._-]{1,64}$";

/// Whether `text` is a valid agent id or role name ([`NAME_PATTERN`]).
pub fn is_valid_name(text: &str) -> bool {
    (1..=NAME_MAX_CHARS).contains(&text.len())
        && text.bytes().all(|byte| {
            byte.is_ascii_lowercase() || byte.is_ascii_digit() || b"._-".contains(&byte)
        })
}
