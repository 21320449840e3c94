//! The validated message body.
//!
//! A body is not empty or blank, holds at most [`MAX_BODY_CHARS`] Unicode scalar values and no
//! control characters but `\n` and `\t`. It is stored and delivered exactly as sent.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::ValidationError;
use crate::limits::MAX_BODY_CHARS;

/// A message body that passed the protocol's rules.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Body(String);

impl Body {
    /// Validates `text` against the protocol's default limit.
    pub fn new(text: impl Into<String>) -> Result<Self, ValidationError> {
        Self::with_limit(text, MAX_BODY_CHARS)
    }

    /// Validates `text` against a limit of `max_chars` Unicode scalar values.
    pub fn with_limit(text: impl Into<String>, max_chars: usize) -> Result<Self, ValidationError> {
        let text = text.into();
        let chars = text.chars().count();
        if chars > max_chars {
            return Err(ValidationError::BodyTooLarge {
                chars,
                max: max_chars,
            });
        }
        if text.trim().is_empty() {
            return Err(ValidationError::BodyBlank);
        }
        if let Some(bad) = text
            .chars()
            .find(|c| c.is_control() && !matches!(c, '\n' | '\t'))
        {
            return Err(ValidationError::BodyControlCharacter {
                code_point: u32::from(bad),
            });
        }
        Ok(Self(text))
    }

    /// The body's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Number of Unicode scalar values in the body.
    pub fn char_count(&self) -> usize {
        self.0.chars().count()
    }
}

impl TryFrom<String> for Body {
    type Error = ValidationError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<Body> for String {
    fn from(body: Body) -> String {
        body.0
    }
}

impl fmt::Display for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_text_exactly_as_sent() {
        let body = Body::new("  hi\n\tthere  ").expect("valid");
        assert_eq!(body.as_str(), "  hi\n\tthere  ");
    }

    #[test]
    fn rejects_blank_long_and_control_characters() {
        assert_eq!(Body::new(" \n\t "), Err(ValidationError::BodyBlank));
        assert!(matches!(
            Body::new("x".repeat(4_001)),
            Err(ValidationError::BodyTooLarge { chars: 4_001, .. })
        ));
        assert!(Body::new("é".repeat(4_000)).is_ok());
        assert!(matches!(
            Body::new("bell\u{7}"),
            Err(ValidationError::BodyControlCharacter { code_point: 7 })
        ));
    }
}
