//! [`wire_enum!`]: the one way a closed set of names (phases, priorities, statuses, verdicts) is
//! declared. Each variant is written once with its wire name, and the macro derives from that
//! the serde and JSON Schema form, `ALL`, `as_str`, `FromStr` (exactly the wire names, as the
//! JSON form accepts them), `Display` and the error naming the text it refused, so that a name
//! cannot be spelled two ways.
//!
//! Pure: no I/O; the macro only writes items.

/// Declares `enum $name` with one wire name per variant, and `$error`, the error of parsing a
/// text that is none of them (`unknown $noun `…`; expected one of …`).
macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident, error $error:ident($noun:literal) {
            $($(#[$variant_meta:meta])* $variant:ident = $wire:literal,)+
        }
    ) => {
        $(#[$meta])*
        #[derive(
            Debug,
            Clone,
            Copy,
            PartialEq,
            Eq,
            Hash,
            serde::Serialize,
            serde::Deserialize,
            schemars::JsonSchema,
        )]
        pub enum $name {
            $($(#[$variant_meta])* #[serde(rename = $wire)] $variant,)+
        }

        #[doc = concat!("A ", $noun, " name that is none of the wire names of [`", stringify!($name), "`]; carries the refused text.")]
        #[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
        #[error(
            "unknown {noun} `{text}`; expected one of {list}",
            noun = $noun,
            text = .0,
            list = $name::ALL.map($name::as_str).join(", ")
        )]
        pub struct $error(pub String);

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: [$name; [$($wire),+].len()] = [$($name::$variant),+];

            /// The wire name used in messages, the API and the database.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $wire,)+
                }
            }
        }

        impl std::str::FromStr for $name {
            type Err = $error;

            /// Accepts exactly the wire names, like the JSON form does.
            fn from_str(text: &str) -> Result<Self, Self::Err> {
                match text {
                    $($wire => Ok($name::$variant),)+
                    other => Err($error(other.to_owned())),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

pub(crate) use wire_enum;

#[cfg(test)]
mod tests {
    use crate::{GateStatus, Phase, Priority, TaskStatus, Verdict};

    #[test]
    fn every_wire_name_reads_back_as_its_value_and_as_its_json() {
        fn check<T>(all: &[T])
        where
            T: Copy + PartialEq + std::fmt::Debug + std::fmt::Display + std::str::FromStr,
            T: serde::Serialize + serde::de::DeserializeOwned,
            <T as std::str::FromStr>::Err: std::fmt::Debug,
        {
            for value in all {
                let name = value.to_string();
                assert_eq!(name.parse::<T>().unwrap(), *value);
                assert_eq!(
                    serde_json::to_value(value).unwrap(),
                    serde_json::json!(name)
                );
                assert_eq!(
                    serde_json::from_value::<T>(serde_json::json!(name)).unwrap(),
                    *value
                );
            }
        }
        check(&Phase::ALL);
        check(&Priority::ALL);
        check(&TaskStatus::ALL);
        check(&GateStatus::ALL);
        check(&Verdict::ALL);
    }

    #[test]
    fn a_refused_name_is_quoted_with_every_accepted_one() {
        let error = "passed!".parse::<GateStatus>().unwrap_err().to_string();
        assert_eq!(
            error,
            "unknown gate status `passed!`; expected one of passed, failed, pending, overridden"
        );
    }
}
