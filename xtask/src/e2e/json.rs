//! Just enough JSON to read hcr's control-protocol responses (xtask has no dependencies, so no serde).
//!
//! hcr answers with small, machine-written objects (`docs/protocol.md`), so this reader is a plain recursive
//! descent over the grammar with no streaming and no error recovery: it parses a whole line into a [`Json`]
//! value or says where it stopped. Numbers are kept as their text, since the runner only ever compares them or
//! prints them. String escapes are decoded, including `\uXXXX` with surrogate pairs, because clang's messages
//! (which hcr passes through) may contain any character.

/// A parsed JSON value.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    /// The number's text, as written.
    Number(String),
    String(String),
    Array(Vec<Json>),
    /// Fields in the order they were written.
    Object(Vec<(String, Json)>),
}

impl Json {
    /// The field `key` of an object, or `None` (also for anything that is not an object).
    pub fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Object(fields) => fields.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The string's contents, when this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Json::String(s) => Some(s),
            _ => None,
        }
    }

    /// The elements, when this is an array (an empty slice otherwise).
    pub fn items(&self) -> &[Json] {
        match self {
            Json::Array(items) => items,
            _ => &[],
        }
    }
}

/// Parses one complete JSON text (surrounding whitespace allowed).
pub fn parse(text: &str) -> Result<Json, String> {
    let mut parser = Parser { bytes: text.as_bytes(), pos: 0 };
    let value = parser.value()?;
    parser.skip_ws();
    if parser.pos != parser.bytes.len() {
        return Err(parser.error("trailing characters after the value"));
    }
    Ok(value)
}

struct Parser<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Parser<'_> {
    fn error(&self, what: &str) -> String {
        format!("bad JSON at byte {}: {what}", self.pos)
    }

    fn skip_ws(&mut self) {
        while self.bytes.get(self.pos).is_some_and(|b| b.is_ascii_whitespace()) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, literal: &str) -> bool {
        if self.bytes[self.pos..].starts_with(literal.as_bytes()) {
            self.pos += literal.len();
            true
        } else {
            false
        }
    }

    fn value(&mut self) -> Result<Json, String> {
        self.skip_ws();
        match self.bytes.get(self.pos) {
            None => Err(self.error("unexpected end")),
            Some(b'{') => self.object(),
            Some(b'[') => self.array(),
            Some(b'"') => self.string().map(Json::String),
            Some(b'-' | b'0'..=b'9') => Ok(self.number()),
            Some(_) if self.eat("null") => Ok(Json::Null),
            Some(_) if self.eat("true") => Ok(Json::Bool(true)),
            Some(_) if self.eat("false") => Ok(Json::Bool(false)),
            Some(_) => Err(self.error("expected a value")),
        }
    }

    fn object(&mut self) -> Result<Json, String> {
        self.pos += 1;
        let mut fields = Vec::new();
        self.skip_ws();
        if self.eat("}") {
            return Ok(Json::Object(fields));
        }
        loop {
            self.skip_ws();
            if self.bytes.get(self.pos) != Some(&b'"') {
                return Err(self.error("expected a field name"));
            }
            let key = self.string()?;
            self.skip_ws();
            if !self.eat(":") {
                return Err(self.error("expected `:`"));
            }
            fields.push((key, self.value()?));
            self.skip_ws();
            if self.eat("}") {
                return Ok(Json::Object(fields));
            }
            if !self.eat(",") {
                return Err(self.error("expected `,` or `}`"));
            }
        }
    }

    fn array(&mut self) -> Result<Json, String> {
        self.pos += 1;
        let mut items = Vec::new();
        self.skip_ws();
        if self.eat("]") {
            return Ok(Json::Array(items));
        }
        loop {
            items.push(self.value()?);
            self.skip_ws();
            if self.eat("]") {
                return Ok(Json::Array(items));
            }
            if !self.eat(",") {
                return Err(self.error("expected `,` or `]`"));
            }
        }
    }

    fn number(&mut self) -> Json {
        let start = self.pos;
        while self.bytes.get(self.pos).is_some_and(|b| b"+-.eE0123456789".contains(b)) {
            self.pos += 1;
        }
        Json::Number(String::from_utf8_lossy(&self.bytes[start..self.pos]).into_owned())
    }

    /// A string starting at the opening quote.
    fn string(&mut self) -> Result<String, String> {
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            let Some(&b) = self.bytes.get(self.pos) else { return Err(self.error("unterminated string")) };
            self.pos += 1;
            match b {
                b'"' => return String::from_utf8(out).map_err(|_| self.error("string is not UTF-8")),
                b'\\' => {
                    let Some(&escape) = self.bytes.get(self.pos) else {
                        return Err(self.error("unterminated escape"));
                    };
                    self.pos += 1;
                    let c = match escape {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => self.unicode_escape()?,
                        _ => return Err(self.error("unknown escape")),
                    };
                    out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
                }
                _ => out.push(b),
            }
        }
    }

    /// The character of a `\uXXXX` escape (the `\u` already read), joining a surrogate pair.
    fn unicode_escape(&mut self) -> Result<char, String> {
        let first = self.hex4()?;
        let code = if (0xD800..0xDC00).contains(&first) && self.eat("\\u") {
            let second = self.hex4()?;
            0x10000 + ((first - 0xD800) << 10) + (second.wrapping_sub(0xDC00) & 0x3FF)
        } else {
            first
        };
        Ok(char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER))
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let digits = self.bytes.get(self.pos..self.pos + 4).ok_or_else(|| self.error("short \\u escape"))?;
        let text = std::str::from_utf8(digits).map_err(|_| self.error("bad \\u escape"))?;
        let value = u32::from_str_radix(text, 16).map_err(|_| self.error("bad \\u escape"))?;
        self.pos += 4;
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_hot_update_response() {
        let line = r#"{"id":1,"ok":true,"report":{"added":["_sink"],"moved":[{"from":4294983976,"reason":"grew","symbol":"_bar","to":4294984104}],"process":null}}"#;
        let value = parse(line).unwrap();
        assert_eq!(value.get("ok"), Some(&Json::Bool(true)));
        assert_eq!(value.get("id"), Some(&Json::Number("1".into())));
        let report = value.get("report").unwrap();
        assert_eq!(report.get("added").unwrap().items()[0].as_str(), Some("_sink"));
        let moved = &report.get("moved").unwrap().items()[0];
        assert_eq!(moved.get("symbol").and_then(Json::as_str), Some("_bar"));
        assert_eq!(moved.get("to"), Some(&Json::Number("4294984104".into())));
        assert_eq!(report.get("process"), Some(&Json::Null));
        assert_eq!(report.get("missing"), None);
    }

    #[test]
    fn decodes_escapes_and_whitespace() {
        let value =
            parse(" { \"m\" : \"a\\\"b\\\\c\\n\\u00e9\\ud83d\\ude00\" , \"e\" : [ ] , \"o\" : { } } ")
                .unwrap();
        assert_eq!(value.get("m").and_then(Json::as_str), Some("a\"b\\c\né😀"));
        assert_eq!(value.get("e"), Some(&Json::Array(Vec::new())));
        assert_eq!(value.get("o"), Some(&Json::Object(Vec::new())));
    }

    #[test]
    fn rejects_broken_text_with_a_position() {
        for (text, at) in
            [("{\"a\":1", 6), ("{\"a\" 1}", 5), ("[1,]", 3), ("\"open", 5), ("{} x", 3), ("", 0)]
        {
            let error = parse(text).unwrap_err();
            assert!(error.contains(&format!("byte {at}")), "{text:?}: {error}");
        }
    }
}
