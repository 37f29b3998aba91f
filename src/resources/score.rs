//! Pacemaker's score arithmetic: integers clamped to ±INFINITY (1,000,000),
//! where -INFINITY wins over everything (a node that is banned stays
//! banned whatever else prefers it) and INFINITY over every finite score.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Pacemaker's INFINITY.
pub const INFINITY: i64 = 1_000_000;

/// A score (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Score(i64);

impl Score {
    pub const ZERO: Score = Score(0);
    pub const INFINITY: Score = Score(INFINITY);
    pub const MINUS_INFINITY: Score = Score(-INFINITY);

    /// `v`, clamped to ±INFINITY.
    pub fn new(v: i64) -> Score {
        Score(v.clamp(-INFINITY, INFINITY))
    }

    pub fn value(self) -> i64 {
        self.0
    }

    /// Whether a resource may run where it has this score.
    pub fn allowed(self) -> bool {
        self.0 >= 0
    }

    /// This score weighted by a colocation's `factor` (factor / INFINITY),
    /// as Pacemaker merges a dependent's preferences into its primary's.
    pub fn scaled(self, factor: Score) -> Score {
        if factor.0 >= INFINITY {
            return self;
        }
        Score::new(((self.0 as i128 * factor.0 as i128) / INFINITY as i128) as i64)
    }

    /// `INFINITY`, `+INFINITY`, `-INFINITY` (also `inf`, case-insensitive)
    /// or an integer (clamped).
    pub fn parse(s: &str) -> Option<Score> {
        let t = s.trim();
        let (neg, body) = match t.strip_prefix('-') {
            Some(b) => (true, b),
            None => (false, t.strip_prefix('+').unwrap_or(t)),
        };
        if body.eq_ignore_ascii_case("infinity") || body.eq_ignore_ascii_case("inf") {
            return Some(if neg {
                Score::MINUS_INFINITY
            } else {
                Score::INFINITY
            });
        }
        let v: i64 = t.parse().ok()?;
        Some(Score::new(v))
    }
}

/// Pacemaker's `pcmk__add_scores`: -INFINITY absorbs, then +INFINITY, else
/// the clamped sum.
impl std::ops::Add for Score {
    type Output = Score;
    fn add(self, other: Score) -> Score {
        if self.0 <= -INFINITY || other.0 <= -INFINITY {
            Score::MINUS_INFINITY
        } else if self.0 >= INFINITY || other.0 >= INFINITY {
            Score::INFINITY
        } else {
            Score::new(self.0 + other.0)
        }
    }
}

impl fmt::Display for Score {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            v if v >= INFINITY => f.write_str("INFINITY"),
            v if v <= -INFINITY => f.write_str("-INFINITY"),
            v => write!(f, "{v}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_follows_pacemaker() {
        let s = Score::new;
        assert_eq!(s(5) + s(7), s(12));
        assert_eq!(
            Score::INFINITY + Score::MINUS_INFINITY,
            Score::MINUS_INFINITY
        );
        assert_eq!(Score::INFINITY + s(-500), Score::INFINITY);
        assert_eq!(s(999_999) + s(999_999), Score::INFINITY);
        assert_eq!(s(-999_999) + s(-999_999), Score::MINUS_INFINITY);
        assert_eq!(s(7_000_000), Score::INFINITY);
    }

    #[test]
    fn parse_and_display() {
        for (text, v) in [
            ("INFINITY", INFINITY),
            ("+INFINITY", INFINITY),
            ("-INFINITY", -INFINITY),
            ("-inf", -INFINITY),
            ("100", 100),
            ("-5", -5),
            ("3000000", INFINITY),
        ] {
            assert_eq!(Score::parse(text), Some(Score::new(v)), "{text}");
        }
        assert_eq!(Score::parse("lots"), None);
        assert_eq!(Score::INFINITY.to_string(), "INFINITY");
        assert_eq!(Score::new(-3).to_string(), "-3");
    }
}
