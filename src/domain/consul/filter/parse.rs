//! The filter grammar (module docs of `filter`), read by recursive descent over the text's bytes.
//! `and` and `or` chains are loops, so only `not` and parentheses nest, and their depth is capped.

use super::{Expr, FilterSchema, Kind, Match, Op, Operand, MAX_FILTER_DEPTH, MAX_FILTER_LEN};
use crate::domain::ValidationError;

pub(super) fn parse(text: &str, schema: FilterSchema) -> Result<Expr, ValidationError> {
    if text.len() > MAX_FILTER_LEN {
        return Err(error(format!(
            "the expression is longer than {MAX_FILTER_LEN} bytes"
        )));
    }
    let mut parser = Parser {
        text,
        pos: 0,
        depth: 0,
        schema,
    };
    parser.skip_ws();
    if parser.at_end() {
        return Err(error("the expression is empty".to_owned()));
    }
    let expr = parser.or()?;
    parser.skip_ws();
    if !parser.at_end() {
        return Err(parser.fail("unexpected text; expected and, or, or the end"));
    }
    Ok(expr)
}

fn error(message: String) -> ValidationError {
    ValidationError::new(
        "filter",
        format!("Failed to create boolean expression evaluator: {message}"),
    )
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
    depth: usize,
    schema: FilterSchema,
}

/// A selector or a value, before the operator says which it is.
enum Term {
    Selector { path: Vec<String>, text: String },
    Number(String),
    Text(String),
}

impl Term {
    /// The value this term stands for on the right of `==` (a selector's text, as go-bexpr reads it).
    fn into_value(self) -> String {
        match self {
            Term::Selector { text, .. } => text,
            Term::Number(text) | Term::Text(text) => text,
        }
    }
}

impl Parser<'_> {
    fn fail(&self, what: &str) -> ValidationError {
        error(format!("{what} (at byte {})", self.pos))
    }

    fn rest(&self) -> &str {
        &self.text[self.pos..]
    }

    fn at_end(&self) -> bool {
        self.pos >= self.text.len()
    }

    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    /// Skips whitespace; true when there was some.
    fn skip_ws(&mut self) -> bool {
        let start = self.pos;
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\r' | b'\n')) {
            self.pos += 1;
        }
        self.pos > start
    }

    /// `WS word WS` at the current position: consumes it and answers true, or leaves the position.
    fn spaced_keyword(&mut self, word: &str) -> bool {
        let start = self.pos;
        if self.skip_ws() && self.rest().starts_with(word) {
            self.pos += word.len();
            if self.skip_ws() {
                return true;
            }
        }
        self.pos = start;
        false
    }

    /// `word` followed by whitespace, consumed with the whitespace.
    fn keyword_then_ws(&mut self, word: &str) -> bool {
        let start = self.pos;
        if self.rest().starts_with(word) {
            self.pos += word.len();
            if self.skip_ws() {
                return true;
            }
        }
        self.pos = start;
        false
    }

    fn or(&mut self) -> Result<Expr, ValidationError> {
        let mut terms = vec![self.and()?];
        while self.spaced_keyword("or") {
            terms.push(self.and()?);
        }
        Ok(if terms.len() == 1 {
            terms.remove(0)
        } else {
            Expr::Or(terms)
        })
    }

    fn and(&mut self) -> Result<Expr, ValidationError> {
        let mut terms = vec![self.not()?];
        while self.spaced_keyword("and") {
            terms.push(self.not()?);
        }
        Ok(if terms.len() == 1 {
            terms.remove(0)
        } else {
            Expr::And(terms)
        })
    }

    fn nest(&mut self) -> Result<(), ValidationError> {
        self.depth += 1;
        if self.depth > MAX_FILTER_DEPTH {
            return Err(self.fail(&format!(
                "the expression nests `not` and parentheses deeper than {MAX_FILTER_DEPTH} levels"
            )));
        }
        Ok(())
    }

    fn not(&mut self) -> Result<Expr, ValidationError> {
        if self.keyword_then_ws("not") {
            self.nest()?;
            let inner = self.not()?;
            self.depth -= 1;
            return Ok(Expr::Not(Box::new(inner)));
        }
        if self.peek() == Some(b'(') {
            self.nest()?;
            self.pos += 1;
            self.skip_ws();
            let inner = self.or()?;
            self.skip_ws();
            if self.peek() != Some(b')') {
                return Err(self.fail("Unmatched parentheses"));
            }
            self.pos += 1;
            self.depth -= 1;
            return Ok(inner);
        }
        self.matching()
    }

    fn matching(&mut self) -> Result<Expr, ValidationError> {
        let term = self.term()?;
        let start = self.pos;
        self.skip_ws();
        for (symbol, op) in [("==", Op::Equal), ("!=", Op::NotEqual)] {
            if self.rest().starts_with(symbol) {
                self.pos += symbol.len();
                self.skip_ws();
                let value = self.term()?.into_value();
                return self.finish(term, op, Some(value));
            }
        }
        self.pos = start;
        if !self.skip_ws() {
            return Err(self.fail("expected an operator: ==, !=, in, not in, contains, not contains, is empty, is not empty"));
        }
        let negated = self.keyword_then_ws("not");
        if self.keyword_then_ws("contains") {
            let value = self.term()?.into_value();
            let op = if negated { Op::NotIn } else { Op::In };
            return self.finish(term, op, Some(value));
        }
        if self.keyword_then_ws("in") {
            let op = if negated { Op::NotIn } else { Op::In };
            let selector = self.term()?;
            if !matches!(selector, Term::Selector { .. }) {
                return Err(self.fail("Invalid selector after in"));
            }
            return self.finish(selector, op, Some(term.into_value()));
        }
        if self.keyword_then_ws("matches") {
            return Err(
                self.fail("the matches operator (regular expressions) is not supported here")
            );
        }
        if !negated && self.keyword_then_ws("is") {
            let op = if self.keyword_then_ws("not") {
                Op::NotEmpty
            } else {
                Op::Empty
            };
            if !self.rest().starts_with("empty") {
                return Err(self.fail("expected empty after is"));
            }
            self.pos += "empty".len();
            return self.finish(term, op, None);
        }
        Err(self.fail("expected an operator: ==, !=, in, not in, contains, not contains, is empty, is not empty"))
    }

    /// Checks the selector against the schema and the operator against its kind.
    fn finish(&self, term: Term, op: Op, value: Option<String>) -> Result<Expr, ValidationError> {
        let (path, text) = match term {
            Term::Selector { path, text } => (path, text),
            _ => return Err(self.fail("expected a selector before the operator")),
        };
        let refs: Vec<&str> = path.iter().map(String::as_str).collect();
        let shown = if text.len() <= 128 && text.chars().all(|c| c.is_ascii_graphic()) {
            text.as_str()
        } else {
            "(a selector)"
        };
        let kind = self
            .schema
            .kind(&refs)
            .ok_or_else(|| error(format!("Selector \"{shown}\" is not valid")))?;
        if !kind.supports(op) {
            return Err(error(format!(
                "the operator is not supported for selector \"{shown}\" (see the table of operators by kind of field)"
            )));
        }
        let value = match (kind, value) {
            (_, None) => Operand::None,
            (Kind::Integer, Some(raw)) => {
                raw.parse::<i64>().map(Operand::Integer).map_err(|_| {
                    error(format!(
                        "the value for selector \"{shown}\" must be a whole number"
                    ))
                })?
            }
            (_, Some(raw)) => Operand::Text(raw),
        };
        Ok(Expr::Match(Match {
            path,
            kind,
            op,
            value,
        }))
    }

    /// A selector, a number or a string.
    fn term(&mut self) -> Result<Term, ValidationError> {
        match self.peek() {
            Some(c) if c.is_ascii_alphabetic() => self.selector(),
            Some(b'"' | b'`') => self.string().map(Term::Text),
            Some(c) if c.is_ascii_digit() || c == b'-' => self.number(),
            Some(b'[') => Err(self.fail("inline lists are not supported here")),
            _ => Err(self.fail("expected a selector, a number or a quoted string")),
        }
    }

    fn identifier(&mut self) -> Option<String> {
        let start = self.pos;
        if !self.peek().is_some_and(|c| c.is_ascii_alphabetic()) {
            return None;
        }
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'/')
        {
            self.pos += 1;
        }
        Some(self.text[start..self.pos].to_owned())
    }

    fn selector(&mut self) -> Result<Term, ValidationError> {
        let mut path = vec![self.identifier().expect("term() saw a letter")];
        loop {
            match self.peek() {
                Some(b'.') => {
                    self.pos += 1;
                    if let Some(name) = self.identifier() {
                        path.push(name);
                    } else if self.peek().is_some_and(|c| c.is_ascii_digit()) {
                        let digits = self.pos;
                        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                            self.pos += 1;
                        }
                        path.push(self.text[digits..self.pos].to_owned());
                    } else {
                        return Err(self.fail("expected a name after '.'"));
                    }
                }
                Some(b'[') => {
                    self.pos += 1;
                    self.skip_ws();
                    if !matches!(self.peek(), Some(b'"' | b'`')) {
                        return Err(self.fail("Invalid index"));
                    }
                    path.push(self.string()?);
                    self.skip_ws();
                    if self.peek() != Some(b']') {
                        return Err(self.fail("Unclosed index expression"));
                    }
                    self.pos += 1;
                }
                _ => break,
            }
        }
        Ok(Term::Selector {
            text: path.join("."),
            path,
        })
    }

    /// `-`? (`0` | [1-9][0-9]*) (`.` [0-9]+)?, followed by whitespace, `)` or the end.
    fn number(&mut self) -> Result<Term, ValidationError> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        let digits = |p: &mut Self| {
            let from = p.pos;
            while p.peek().is_some_and(|c| c.is_ascii_digit()) {
                p.pos += 1;
            }
            p.pos - from
        };
        let whole_start = self.pos;
        let whole = digits(self);
        let leading_zero = whole > 1 && self.text.as_bytes()[whole_start] == b'0';
        let mut valid = whole > 0 && !leading_zero;
        if self.peek() == Some(b'.') {
            self.pos += 1;
            valid &= digits(self) > 0;
        }
        let ends = matches!(
            self.peek(),
            None | Some(b' ' | b'\t' | b'\r' | b'\n' | b')')
        );
        if !valid || !ends {
            return Err(self.fail("Invalid number literal"));
        }
        Ok(Term::Number(self.text[start..self.pos].to_owned()))
    }

    /// A double-quoted string (Go escapes) or a backquoted raw string.
    fn string(&mut self) -> Result<String, ValidationError> {
        let quote = self.text.as_bytes()[self.pos];
        let body_start = self.pos + 1;
        let Some(length) = self.text[body_start..].find(quote as char) else {
            return Err(self.fail("Unterminated string literal"));
        };
        let body = &self.text[body_start..body_start + length];
        self.pos = body_start + length + 1;
        if quote == b'`' {
            return Ok(body.replace('\r', ""));
        }
        unescape(body).ok_or_else(|| self.fail("invalid escape or line break in a quoted string"))
    }
}

/// Go's escapes in a double-quoted string: `\\ \n \t \r \a \b \f \v \xHH` (ASCII) `\uHHHH`
/// `\UHHHHHHHH`. A line break, an octal escape or anything else is refused.
fn unescape(body: &str) -> Option<String> {
    let mut out = String::with_capacity(body.len());
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        match c {
            '\n' => return None,
            '\\' => {
                let hex = |chars: &mut std::str::Chars<'_>, n: usize| {
                    let digits: String = chars.by_ref().take(n).collect();
                    (digits.len() == n)
                        .then(|| u32::from_str_radix(&digits, 16).ok())
                        .flatten()
                };
                out.push(match chars.next()? {
                    '\\' => '\\',
                    'n' => '\n',
                    't' => '\t',
                    'r' => '\r',
                    'a' => '\u{7}',
                    'b' => '\u{8}',
                    'f' => '\u{c}',
                    'v' => '\u{b}',
                    'x' => char::from_u32(hex(&mut chars, 2).filter(|v| *v < 0x80)?)?,
                    'u' => char::from_u32(hex(&mut chars, 4)?)?,
                    'U' => char::from_u32(hex(&mut chars, 8)?)?,
                    _ => return None,
                });
            }
            other => out.push(other),
        }
    }
    Some(out)
}
