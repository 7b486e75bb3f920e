//! Flat JSON objects, one per line: the format of every benchmark record.
//!
//! The records are flat (strings, numbers, booleans, null) so that Python's `json.dumps` and this
//! file read and write the same lines without a serialisation crate. Non-finite numbers are
//! written as `null`, since JSON has no NaN and Python would otherwise emit a bare `NaN`.
//!
//! ```
//! use sinkless::bench::json::{Object, Value};
//! let mut o = Object::new();
//! o.push("impl", "torch-flash");
//! o.push("median_ms", 1.25);
//! o.push("causal", true);
//! let line = o.to_line();
//! assert_eq!(line, r#"{"impl":"torch-flash","median_ms":1.25,"causal":true}"#);
//! let back = Object::parse(&line).unwrap();
//! assert_eq!(back.get("median_ms"), Some(&Value::Num(1.25)));
//! ```

use std::fmt::{self, Write as _};

/// A JSON value of a flat record.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// `null`, also what a non-finite number becomes.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A number.
    Num(f64),
    /// A string.
    Str(String),
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Str(s.to_owned())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Str(s)
    }
}

impl From<f64> for Value {
    fn from(x: f64) -> Self {
        Value::Num(x)
    }
}

impl From<usize> for Value {
    fn from(x: usize) -> Self {
        // Exact for every count a benchmark produces (below 2^53).
        Value::Num(x as f64)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(x: Option<T>) -> Self {
        x.map_or(Value::Null, Into::into)
    }
}

/// A flat JSON object that keeps its keys in insertion order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Object(Vec<(String, Value)>);

/// Why a line is not a flat JSON object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// Byte offset in the line where reading stopped.
    pub at: usize,
    /// What was expected there.
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at byte {}: {}", self.at, self.message)
    }
}

impl std::error::Error for ParseError {}

impl Object {
    /// An empty object.
    pub fn new() -> Self {
        Object(Vec::new())
    }

    /// Sets `key` (replacing an earlier value of the same key).
    pub fn push(&mut self, key: &str, value: impl Into<Value>) -> &mut Self {
        let value = value.into();
        match self.0.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value,
            None => self.0.push((key.to_owned(), value)),
        }
        self
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// The string value of `key`, if it is a string.
    pub fn str(&self, key: &str) -> Option<&str> {
        match self.get(key) {
            Some(Value::Str(s)) => Some(s),
            _ => None,
        }
    }

    /// The numeric value of `key`, if it is a number.
    pub fn num(&self, key: &str) -> Option<f64> {
        match self.get(key) {
            Some(Value::Num(x)) => Some(*x),
            _ => None,
        }
    }

    /// The value of `key` as a count, if it is a non-negative integer.
    pub fn count(&self, key: &str) -> Option<usize> {
        self.num(key)
            .filter(|x| *x >= 0.0 && x.fract() == 0.0 && *x < 9.0e15)
            .map(|x| x as usize)
    }

    /// The boolean value of `key`, if it is a boolean.
    pub fn bool(&self, key: &str) -> Option<bool> {
        match self.get(key) {
            Some(Value::Bool(b)) => Some(*b),
            _ => None,
        }
    }

    /// Every key and value, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The object as one line of JSON, without a newline.
    pub fn to_line(&self) -> String {
        let mut s = String::from("{");
        for (i, (k, v)) in self.0.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            write_str(&mut s, k);
            s.push(':');
            match v {
                Value::Null => s.push_str("null"),
                Value::Bool(b) => s.push_str(if *b { "true" } else { "false" }),
                Value::Num(x) if x.is_finite() => {
                    // Rust's shortest round-trip formatting; integers print without ".0".
                    let _ = write!(s, "{x}");
                }
                Value::Num(_) => s.push_str("null"),
                Value::Str(t) => write_str(&mut s, t),
            }
        }
        s.push('}');
        s
    }

    /// Reads one flat JSON object (surrounding whitespace allowed).
    ///
    /// # Errors
    /// A [`ParseError`] at the first byte that does not fit; nested arrays and objects are
    /// rejected, since no record has them.
    pub fn parse(line: &str) -> Result<Object, ParseError> {
        let mut p = Parser {
            s: line.as_bytes(),
            at: 0,
        };
        p.ws();
        p.expect(b'{')?;
        let mut obj = Object::new();
        p.ws();
        if p.peek() == Some(b'}') {
            p.at += 1;
        } else {
            loop {
                p.ws();
                let key = p.string()?;
                p.ws();
                p.expect(b':')?;
                p.ws();
                let value = p.value()?;
                obj.push(&key, value);
                p.ws();
                match p.next() {
                    Some(b',') => continue,
                    Some(b'}') => break,
                    _ => return Err(p.error("',' or '}'")),
                }
            }
        }
        p.ws();
        if p.at != p.s.len() {
            return Err(p.error("end of line after the object"));
        }
        Ok(obj)
    }
}

fn write_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

struct Parser<'a> {
    s: &'a [u8],
    at: usize,
}

impl Parser<'_> {
    fn error(&self, expected: &str) -> ParseError {
        ParseError {
            at: self.at,
            message: format!("expected {expected}"),
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.at).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let c = self.peek();
        self.at += usize::from(c.is_some());
        c
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    fn expect(&mut self, c: u8) -> Result<(), ParseError> {
        if self.peek() == Some(c) {
            self.at += 1;
            Ok(())
        } else {
            Err(self.error(&format!("'{}'", c as char)))
        }
    }

    fn literal(&mut self, word: &str, v: Value) -> Result<Value, ParseError> {
        if self.s[self.at..].starts_with(word.as_bytes()) {
            self.at += word.len();
            Ok(v)
        } else {
            Err(self.error(word))
        }
    }

    fn value(&mut self) -> Result<Value, ParseError> {
        match self.peek() {
            Some(b'"') => self.string().map(Value::Str),
            Some(b't') => self.literal("true", Value::Bool(true)),
            Some(b'f') => self.literal("false", Value::Bool(false)),
            Some(b'n') => self.literal("null", Value::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => Err(self.error("a string, number, boolean or null (records are flat)")),
        }
    }

    fn number(&mut self) -> Result<Value, ParseError> {
        let start = self.at;
        while matches!(
            self.peek(),
            Some(b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
        ) {
            self.at += 1;
        }
        let text = std::str::from_utf8(&self.s[start..self.at]).expect("ASCII digits");
        text.parse::<f64>().map(Value::Num).map_err(|_| ParseError {
            at: start,
            message: format!("expected a number, got {text:?}"),
        })
    }

    fn hex4(&mut self) -> Result<u32, ParseError> {
        let digits = self
            .s
            .get(self.at..self.at + 4)
            .and_then(|d| std::str::from_utf8(d).ok())
            .and_then(|d| u32::from_str_radix(d, 16).ok())
            .ok_or_else(|| self.error("four hex digits"))?;
        self.at += 4;
        Ok(digits)
    }

    fn string(&mut self) -> Result<String, ParseError> {
        self.expect(b'"')?;
        let mut out = Vec::new();
        loop {
            match self.next() {
                None => return Err(self.error("a closing '\"'")),
                Some(b'"') => break,
                Some(b'\\') => {
                    let c = match self.next() {
                        Some(b'"') => '"',
                        Some(b'\\') => '\\',
                        Some(b'/') => '/',
                        Some(b'b') => '\u{8}',
                        Some(b'f') => '\u{c}',
                        Some(b'n') => '\n',
                        Some(b'r') => '\r',
                        Some(b't') => '\t',
                        Some(b'u') => {
                            let hi = self.hex4()?;
                            // A UTF-16 surrogate pair arrives as two escapes.
                            let code = if (0xd800..0xdc00).contains(&hi) {
                                self.expect(b'\\')?;
                                self.expect(b'u')?;
                                let lo = self.hex4()?;
                                0x10000 + ((hi - 0xd800) << 10) + (lo.wrapping_sub(0xdc00) & 0x3ff)
                            } else {
                                hi
                            };
                            char::from_u32(code).ok_or_else(|| self.error("a valid code point"))?
                        }
                        _ => return Err(self.error("an escape character")),
                    };
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
                Some(c) => out.push(c),
            }
        }
        String::from_utf8(out).map_err(|_| self.error("UTF-8 text"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_every_kind_of_value() {
        let mut o = Object::new();
        o.push(
            "s",
            "quote \" backslash \\ newline \n tab \t bell \u{7} é ∞ 🙂",
        )
        .push("n", -1.5e-7)
        .push("i", 16384usize)
        .push("t", true)
        .push("f", false)
        .push("z", Value::Null)
        .push("nan", f64::NAN);
        let back = Object::parse(&o.to_line()).unwrap();
        assert_eq!(back.str("s"), o.str("s"));
        assert_eq!(back.num("n"), Some(-1.5e-7));
        assert_eq!(back.count("i"), Some(16384));
        assert_eq!(back.bool("t"), Some(true));
        assert_eq!(back.bool("f"), Some(false));
        assert_eq!(back.get("z"), Some(&Value::Null));
        assert_eq!(back.get("nan"), Some(&Value::Null), "NaN must become null");
    }

    #[test]
    fn reads_what_python_writes() {
        let line = r#" {"kind": "attention", "impl": "torch-flash", "median_ms": 0.5, "x": 1e3, "u": "\u00e9\ud83d\ude42", "none": null} "#;
        let o = Object::parse(line).unwrap();
        assert_eq!(o.str("impl"), Some("torch-flash"));
        assert_eq!(o.num("x"), Some(1000.0));
        assert_eq!(o.str("u"), Some("é🙂"));
        assert_eq!(Object::parse("{}").unwrap(), Object::new());
    }

    #[test]
    fn rejects_what_is_not_a_flat_object() {
        for bad in [
            "",
            "[1]",
            r#"{"a": [1]}"#,
            r#"{"a": {"b": 1}}"#,
            r#"{"a": 1,}"#,
            r#"{"a" 1}"#,
            r#"{"a": 1} x"#,
            r#"{"a": "open}"#,
            r#"{"a": 1.2.3}"#,
            r#"{"a": NaN}"#,
        ] {
            assert!(Object::parse(bad).is_err(), "accepted {bad:?}");
        }
        let e = Object::parse(r#"{"a": [1]}"#).unwrap_err();
        assert_eq!(e.at, 6);
    }

    #[test]
    fn push_replaces_an_existing_key() {
        let mut o = Object::new();
        o.push("a", 1.0).push("a", 2.0);
        assert_eq!(o.to_line(), r#"{"a":2}"#);
    }
}
