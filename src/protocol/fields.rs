//! Reading a request's `subject` and `data` field by field, collecting every problem, so that a
//! rejection names each bad field and an agent can fix all of them at once. Each request kind
//! parses its own data with these; past parsing nothing carries a bare string or UUID with a
//! domain meaning. Pure: no I/O.

use std::str::FromStr;

use serde_json::{Map, Value};

use crate::domain::TicketId;

use super::rejection::InvalidRequest;

pub use phaseflow_client::limits::{
    DESCRIPTION_MAX_CHARS, NOT_BLANK_PATTERN, NUL_PATTERN, SHORT_TEXT_MAX_CHARS,
};

/// Whether `value` holds U+0000 in a string or a member name, at any depth.
pub fn holds_nul(value: &Value) -> bool {
    match value {
        Value::String(text) => text.contains('\0'),
        Value::Array(items) => items.iter().any(holds_nul),
        Value::Object(members) => members
            .iter()
            .any(|(name, member)| name.contains('\0') || holds_nul(member)),
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

/// Whether `text` is empty or whitespace only (the opposite of [`NOT_BLANK_PATTERN`]).
pub fn is_blank(text: &str) -> bool {
    text.chars().all(char::is_whitespace)
}

/// The request's `subject`: the ticket it is about, as far as it could be read.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    text: Option<&'a str>,
    ticket: Option<TicketId>,
}

impl<'a> Subject<'a> {
    /// Reads `subject`; a text that is not a UUID is a reason in `fields`.
    pub fn read(text: Option<&'a str>, fields: &mut Fields<'_>) -> Self {
        let ticket = match text {
            Some(text) => match TicketId::from_str(text) {
                Ok(id) => Some(id),
                Err(_) => {
                    fields
                        .reasons
                        .push(format!("subject: `{text}` is not a UUID"));
                    None
                }
            },
            None => None,
        };
        fields.ticket_id = ticket;
        Subject { text, ticket }
    }

    /// The ticket, when `subject` named one.
    pub fn ticket(self) -> Option<TicketId> {
        self.ticket
    }

    /// The ticket, which the request must name: a missing `subject` is a reason in `fields`.
    pub fn required(self, fields: &mut Fields<'_>) -> Option<TicketId> {
        if self.text.is_none() {
            fields
                .reasons
                .push("subject: the ticket id is required".to_owned());
        }
        self.ticket
    }
}

/// A JSON number without a fractional part, as JSON Schema's `integer` takes it (`35` or `35.0`),
/// when it is not negative.
pub fn whole_number(value: &Value) -> Option<u64> {
    value.as_u64().or_else(|| {
        let number = value.as_f64()?;
        (number.fract() == 0.0 && (0.0..=u64::MAX as f64).contains(&number))
            .then_some(number as u64)
    })
}

/// Reads the members of a request's `data`, collecting a reason for every problem.
pub struct Fields<'a> {
    data: Option<&'a Map<String, Value>>,
    /// every problem found so far, each naming its field
    pub reasons: Vec<String>,
    /// the ticket the request names, for its rejection
    pub ticket_id: Option<TicketId>,
    /// extra members of the rejection's `data` (a transition's `to_phase`)
    pub details: Map<String, Value>,
}

impl<'a> Fields<'a> {
    pub fn new(data: Option<&'a Value>) -> Self {
        let mut reasons = Vec::new();
        let data = match data {
            None | Some(Value::Null) => None,
            Some(Value::Object(map)) => Some(map),
            Some(_) => {
                reasons.push("data: must be a JSON object".to_owned());
                None
            }
        };
        Fields {
            data,
            reasons,
            ticket_id: None,
            details: Map::new(),
        }
    }

    /// Every member of the data (`None` when there is none).
    pub fn members(&self) -> Option<&'a Map<String, Value>> {
        self.data
    }

    pub fn get(&self, name: &str) -> Option<&'a Value> {
        self.data
            .and_then(|data| data.get(name))
            .filter(|value| !value.is_null())
    }

    pub fn required_text(&mut self, name: &str, max_chars: usize) -> Option<String> {
        self.required_text_at(name, name, max_chars)
    }

    pub fn required_text_at(
        &mut self,
        name: &str,
        label: &str,
        max_chars: usize,
    ) -> Option<String> {
        match self.get(name) {
            None => {
                self.reasons.push(format!("{label}: is required"));
                None
            }
            Some(_) => {
                let text = self.optional_text_at(name, label, max_chars)?;
                if is_blank(&text) {
                    self.reasons.push(format!("{label}: must not be empty"));
                    None
                } else {
                    Some(text)
                }
            }
        }
    }

    pub fn optional_text(&mut self, name: &str, max_chars: usize) -> Option<String> {
        self.optional_text_at(name, name, max_chars)
    }

    pub fn optional_text_at(
        &mut self,
        name: &str,
        label: &str,
        max_chars: usize,
    ) -> Option<String> {
        match self.get(name)? {
            Value::String(text) => {
                let chars = text.chars().count();
                if text.contains('\0') {
                    self.reasons
                        .push(format!("{label}: holds U+0000, which cannot be stored"));
                    None
                } else if chars > max_chars {
                    self.reasons.push(format!(
                        "{label}: is {chars} characters long; the limit is {max_chars}"
                    ));
                    None
                } else {
                    Some(text.clone())
                }
            }
            _ => {
                self.reasons.push(format!("{label}: must be a string"));
                None
            }
        }
    }

    pub fn optional_bool(&mut self, name: &str) -> Option<bool> {
        match self.get(name)? {
            Value::Bool(flag) => Some(*flag),
            _ => {
                self.reasons.push(format!("{name}: must be true or false"));
                None
            }
        }
    }

    pub fn optional_object(&mut self, name: &str) -> Option<Value> {
        self.optional_object_at(name, name)
    }

    /// An optional JSON object, refused when a string or member name in it holds U+0000.
    pub fn optional_object_at(&mut self, name: &str, label: &str) -> Option<Value> {
        match self.get(name)? {
            value @ Value::Object(_) if holds_nul(value) => {
                self.reasons.push(format!(
                    "{label}: holds U+0000 in a string or a member name, which cannot be stored"
                ));
                None
            }
            value @ Value::Object(_) => Some(value.clone()),
            _ => {
                self.reasons.push(format!("{label}: must be a JSON object"));
                None
            }
        }
    }

    pub fn optional_parsed<T>(&mut self, name: &str) -> Option<T>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        match self.get(name)? {
            Value::String(text) => match text.parse::<T>() {
                Ok(value) => Some(value),
                Err(error) => {
                    self.reasons.push(format!("{name}: {error}"));
                    None
                }
            },
            _ => {
                self.reasons.push(format!("{name}: must be a string"));
                None
            }
        }
    }

    pub fn required_parsed<T>(&mut self, name: &str) -> Option<T>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        if self.get(name).is_none() {
            self.reasons.push(format!("{name}: is required"));
            return None;
        }
        self.optional_parsed(name)
    }

    pub fn required_positive_integer(&mut self, name: &str) -> Option<i64> {
        match self.get(name) {
            None => {
                self.reasons.push(format!("{name}: is required"));
                None
            }
            Some(value) => match value.as_i64() {
                Some(number) if number > 0 => Some(number),
                _ => {
                    self.reasons
                        .push(format!("{name}: must be a positive integer"));
                    None
                }
            },
        }
    }

    /// An optional whole number within `range`.
    pub fn optional_integer_in(
        &mut self,
        name: &str,
        range: std::ops::RangeInclusive<u32>,
    ) -> Option<u32> {
        let value = self.get(name)?;
        match whole_number(value).and_then(|number| u32::try_from(number).ok()) {
            Some(number) if range.contains(&number) => Some(number),
            _ => {
                self.reasons.push(format!(
                    "{name}: must be a whole number from {} to {}",
                    range.start(),
                    range.end()
                ));
                None
            }
        }
    }

    /// An optional list of non-empty strings of at most `max_chars` each, at most `max_items`
    /// long; absent is an empty list.
    pub fn optional_text_list(
        &mut self,
        name: &str,
        max_items: usize,
        max_chars: usize,
    ) -> Option<Vec<String>> {
        let Some(value) = self.get(name) else {
            return Some(Vec::new());
        };
        let Some(items) = value.as_array() else {
            self.reasons
                .push(format!("{name}: must be an array of strings"));
            return None;
        };
        if items.len() > max_items {
            self.reasons.push(format!(
                "{name}: has {} entries; the limit is {max_items}",
                items.len()
            ));
            return None;
        }
        let mut texts = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            match item.as_str() {
                Some(text)
                    if !is_blank(text)
                        && !text.contains('\0')
                        && text.chars().count() <= max_chars =>
                {
                    texts.push(text.to_owned())
                }
                _ => {
                    self.reasons.push(format!(
                        "{name}[{index}]: must be a non-empty string of at most {max_chars} characters, \
                         without U+0000"
                    ));
                    return None;
                }
            }
        }
        Some(texts)
    }

    /// The parsed request when no problem was found, else every reason.
    pub fn finish<T>(self, parsed: Option<T>) -> Result<T, InvalidRequest> {
        match parsed {
            Some(parsed) if self.reasons.is_empty() => Ok(parsed),
            _ => Err(InvalidRequest {
                ticket_id: self.ticket_id,
                details: self.details,
                reasons: if self.reasons.is_empty() {
                    vec!["data: the request is incomplete".to_owned()]
                } else {
                    self.reasons
                },
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// The whitespace of [`NOT_BLANK_PATTERN`], read back from its `\uXXXX` escapes and ranges.
    fn pattern_whitespace() -> Vec<(char, char)> {
        let class = NOT_BLANK_PATTERN
            .strip_prefix("[^")
            .and_then(|rest| rest.strip_suffix(']'))
            .expect("a negated class");
        let mut chars = Vec::new();
        let mut rest = class;
        while !rest.is_empty() {
            let (one, after) = if let Some(hex) = rest.strip_prefix("\\u") {
                let code = u32::from_str_radix(&hex[..4], 16).expect("four hex digits");
                (char::from_u32(code).expect("a char"), &hex[4..])
            } else if let Some(after) = rest.strip_prefix('\\') {
                let escaped = match after.as_bytes()[0] {
                    b't' => '\t',
                    b'n' => '\n',
                    b'f' => '\u{c}',
                    b'r' => '\r',
                    other => panic!("unexpected escape {other}"),
                };
                (escaped, &after[1..])
            } else {
                let one = rest.chars().next().expect("a char");
                (one, &rest[one.len_utf8()..])
            };
            chars.push(one);
            rest = after;
        }
        let mut ranges = Vec::new();
        let mut index = 0;
        while index < chars.len() {
            if chars.get(index + 1) == Some(&'-') && index + 2 < chars.len() {
                ranges.push((chars[index], chars[index + 2]));
                index += 3;
            } else {
                ranges.push((chars[index], chars[index]));
                index += 1;
            }
        }
        ranges
    }

    #[test]
    fn nul_is_found_in_any_string_or_member_name_and_refused_where_a_text_is_read() {
        assert!(holds_nul(&json!({"a": [1, {"b": "x\u{0}"}]})));
        assert!(holds_nul(&json!({"\u{0}": null})));
        assert!(!holds_nul(&json!({"a": [1, {"b": "x\u{1}"}], "c": true})));
        let data = json!({"reason": "a\u{0}", "tags": ["b\u{0}"], "more": {"c": "\u{0}"}});
        let mut fields = Fields::new(Some(&data));
        assert_eq!(fields.optional_text("reason", 10), None);
        assert_eq!(fields.optional_text_list("tags", 5, 10), None);
        assert_eq!(fields.optional_object("more"), None);
        assert_eq!(fields.reasons.len(), 3, "{:?}", fields.reasons);
    }

    #[test]
    fn the_not_blank_pattern_names_exactly_the_whitespace_the_parser_trims() {
        let ranges = pattern_whitespace();
        for code in 0..=0x10_ffff_u32 {
            let Some(c) = char::from_u32(code) else {
                continue;
            };
            let in_pattern = ranges.iter().any(|(low, high)| (*low..=*high).contains(&c));
            assert_eq!(in_pattern, c.is_whitespace(), "U+{code:04X}");
        }
        assert!(is_blank(" \t\u{3000}"));
        assert!(!is_blank(" x "));
    }
}
