//! `keep_alive`: how long a model stays loaded after a request, as Ollama's API spells it and as
//! uma accepts it on the OpenAI routes too (an extension field). A number is seconds; a string
//! is a Go-style duration (`"5m"`, `"1h30m"`, `"250ms"`, `"10"`); a negative value (or one
//! longer than 100 years) keeps the model loaded until it is needed elsewhere; zero unloads it as
//! soon as its requests end.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserialize, Deserializer, Visitor};
use uma_engine::KeepAlive;

/// A `keep_alive` request field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeepAliveField(pub KeepAlive);

/// Parses a Go-style duration: an optional sign, then one or more `<number><unit>` parts (units
/// `ns`, `us`, `µs`, `ms`, `s`, `m`, `h`), or a bare number of seconds.
pub fn parse_keep_alive(text: &str) -> Result<KeepAlive, String> {
    let invalid = || format!("invalid duration {text:?} (examples: \"5m\", \"1h30m\", \"-1\")");
    let trimmed = text.trim();
    let (negative, body) = match trimmed.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, trimmed.strip_prefix('+').unwrap_or(trimmed)),
    };
    if body.is_empty() {
        return Err(invalid());
    }
    if let Ok(seconds) = body.parse::<f64>() {
        return seconds_to_keep_alive(if negative { -seconds } else { seconds })
            .ok_or_else(invalid);
    }
    let mut total = 0.0_f64;
    let mut rest = body;
    while !rest.is_empty() {
        let number_end =
            rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).ok_or_else(invalid)?;
        let number: f64 = rest[..number_end].parse().map_err(|_| invalid())?;
        rest = &rest[number_end..];
        let unit_end = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let unit_seconds = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(invalid()),
        };
        total += number * unit_seconds;
        rest = &rest[unit_end..];
    }
    seconds_to_keep_alive(if negative { -total } else { total }).ok_or_else(invalid)
}

/// Longer than this is forever (100 years): every clock and timestamp can add it.
const LONGEST_KEEP_ALIVE_SECS: f64 = 100.0 * 365.25 * 86_400.0;

fn seconds_to_keep_alive(seconds: f64) -> Option<KeepAlive> {
    if seconds.is_nan() {
        None
    } else if !(0.0..=LONGEST_KEEP_ALIVE_SECS).contains(&seconds) {
        Some(KeepAlive::Forever)
    } else {
        Duration::try_from_secs_f64(seconds).ok().map(KeepAlive::For)
    }
}

impl<'de> Deserialize<'de> for KeepAliveField {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeepAliveVisitor;

        impl Visitor<'_> for KeepAliveVisitor {
            type Value = KeepAliveField;

            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a number of seconds or a duration such as \"5m\"")
            }

            fn visit_str<E: de::Error>(self, value: &str) -> Result<KeepAliveField, E> {
                parse_keep_alive(value).map(KeepAliveField).map_err(E::custom)
            }

            fn visit_i64<E: de::Error>(self, value: i64) -> Result<KeepAliveField, E> {
                self.visit_f64(value as f64)
            }

            fn visit_u64<E: de::Error>(self, value: u64) -> Result<KeepAliveField, E> {
                self.visit_f64(value as f64)
            }

            fn visit_f64<E: de::Error>(self, value: f64) -> Result<KeepAliveField, E> {
                seconds_to_keep_alive(value)
                    .map(KeepAliveField)
                    .ok_or_else(|| E::custom(format!("invalid keep_alive {value}")))
            }
        }

        deserializer.deserialize_any(KeepAliveVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(json: &str) -> Result<KeepAlive, String> {
        serde_json::from_str::<KeepAliveField>(json).map(|field| field.0).map_err(|e| e.to_string())
    }

    #[test]
    fn numbers_are_seconds_and_negative_means_forever() {
        assert_eq!(field("300"), Ok(KeepAlive::For(Duration::from_secs(300))));
        assert_eq!(field("0"), Ok(KeepAlive::For(Duration::ZERO)));
        assert_eq!(field("1.5"), Ok(KeepAlive::For(Duration::from_millis(1500))));
        assert_eq!(field("-1"), Ok(KeepAlive::Forever));
    }

    #[test]
    fn durations_past_a_century_are_forever() {
        assert_eq!(field("1.8e19"), Ok(KeepAlive::Forever));
        assert_eq!(field(&u64::MAX.to_string()), Ok(KeepAlive::Forever));
        assert_eq!(field(r#""2562047h""#), Ok(KeepAlive::Forever));
        assert_eq!(field("3000000000"), Ok(KeepAlive::For(Duration::from_secs(3_000_000_000))));
    }

    #[test]
    fn strings_are_go_durations() {
        let secs = |s| Ok(KeepAlive::For(Duration::from_secs(s)));
        assert_eq!(field(r#""5m""#), secs(300));
        assert_eq!(field(r#""1h30m""#), secs(5400));
        assert_eq!(field(r#""1.5h""#), secs(5400));
        assert_eq!(field(r#""10""#), secs(10));
        assert_eq!(field(r#""250ms""#), Ok(KeepAlive::For(Duration::from_millis(250))));
        assert_eq!(field(r#""-1m""#), Ok(KeepAlive::Forever));
        assert_eq!(field(r#""0s""#), secs(0));
    }

    #[test]
    fn garbage_is_refused_with_an_example() {
        for bad in [r#""""#, r#""5 minutes""#, r#""m5""#, r#""5d""#, r#""-""#, "true", "[1]"] {
            let error = field(bad).expect_err(bad);
            assert!(error.contains("duration") || error.contains("keep_alive"), "{bad}: {error}");
        }
    }
}
