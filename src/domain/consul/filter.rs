//! Consul's `filter` query parameter: a boolean expression over the entries an endpoint returns,
//! parsed once against the schema of what that endpoint lists, then matched against each entry.
//!
//! It follows go-bexpr, the library Consul evaluates filters with (`hashicorp/go-bexpr`:
//! `grammar/grammar.peg` for the syntax, `field_config.go` and `evaluate.go` for what each kind of
//! field supports and how it matches), and Consul's filtering page
//! (`website/content/api-docs/features/filtering.mdx`). The grammar (`filter::parse`):
//!
//! ```text
//! expr   := or
//! or     := and ( WS "or" WS and )*          -- lowest precedence
//! and    := not ( WS "and" WS not )*
//! not    := "not" WS not | "(" WS? or WS? ")" | match
//! match  := selector WS? ("==" | "!=") WS? value
//!         | selector WS ("contains" | "not" WS "contains") WS value
//!         | selector WS "is" WS ("empty" | "not" WS "empty")
//!         | value WS ("in" | "not" WS "in") WS selector
//! selector := IDENT ( "." IDENT | "." DIGITS | "[" WS? string WS? "]" )*    IDENT := [A-Za-z][A-Za-z0-9_/]*
//! value  := selector (its text) | number | string
//! string := "..." (Go escapes) | `...` (raw)
//! ```
//!
//! `and`, `or`, `not`, `in`, `is`, `contains` need whitespace around them, as in go-bexpr
//! (`not(a == "b")` is refused). Selectors are case-sensitive and must be among the schema's
//! ([`FilterSchema`]); an unknown one is a 400 naming `filter` (Consul: `Selector "X" is not
//! valid`). What each kind of field supports (go-bexpr's `field_config.go`):
//!
//! | field | operators | how it matches |
//! |---|---|---|
//! | text (`Service.Service`, `Node.Meta.k`) | `==` `!=` `in`/`contains` `not in`/`not contains` | exact; `in` is a substring test |
//! | number (`Service.Port`) | `==` `!=` | the value must be a whole number |
//! | list of text (`Service.Tags`) | `in` `not in` `is empty` `is not empty` | membership; `==` is refused, as in go-bexpr |
//! | map (`Service.Meta`) | `in` `not in` `is empty` `is not empty` | `in` tests the keys |
//! | field of each check (`Checks.Status`) | as text | true when **any** check matches (go-bexpr's rule for a slice of structs), so `Checks.Status != "passing"` means "some check is not passing"; no checks: false |
//! | `Checks` | `is empty` `is not empty` | |
//!
//! A map key that is absent matches as go-bexpr's missing key does: `==`, `in`, `is not empty`
//! are false; `!=`, `not in`, `is empty` are true. `matches`/`not matches` (regular expressions)
//! and go-bexpr's JSON-pointer and inline-list selectors are refused with a 400 rather than
//! evaluated differently. Limits: 4 KiB of text and 32 levels of `not`/parentheses.

mod parse;
#[cfg(test)]
mod tests;

use crate::domain::ValidationError;
use std::borrow::Cow;

/// The longest filter accepted, in bytes.
pub const MAX_FILTER_LEN: usize = 4096;
/// The deepest nesting of `not` and parentheses accepted.
pub const MAX_FILTER_DEPTH: usize = 32;

/// What an endpoint lists, and so which selectors its filter may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterSchema {
    /// `/v1/health/service/<name>`: `Node.{ID,Node,Address,Datacenter,Meta}`,
    /// `Service.{ID,Service,Tags,Address,Port,Meta}`, `Checks`,
    /// `Checks.{Node,CheckID,Name,Status,ServiceID,ServiceName,Type}`.
    HealthServiceEntry,
    /// `/v1/catalog/service/<name>`: `ID`, `Node`, `Address`, `Datacenter`, `NodeMeta`, `ServiceID`,
    /// `ServiceName`, `ServiceAddress`, `ServicePort`, `ServiceTags`, `ServiceMeta`.
    CatalogServiceNode,
    /// `/v1/health/state/<state>`, `/v1/health/checks/<name>`, `/v1/agent/checks`: `Node`,
    /// `CheckID`, `Name`, `Status`, `ServiceID`, `ServiceName`, `ServiceTags`, `Type`, `Notes`,
    /// `Output` (health.mdx's list for these endpoints).
    HealthCheck,
    /// `/v1/agent/services`: `ID`, `Service`, `Tags`, `Address`, `Port`, `Meta`.
    AgentService,
}

/// One field of an entry, as the subject reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldValue<'a> {
    /// A text field, or a number as decimal text (`Service.Port`).
    Text(Cow<'a, str>),
    /// A list of text (`Service.Tags`), a map's keys (`Service.Meta`), or one value per check
    /// (`Checks.Status`).
    List(Vec<Cow<'a, str>>),
    /// A map key the entry does not have (or any field it cannot report).
    Missing,
}

/// An entry a filter can be matched against. `selector` is the path as written, with a map key as
/// its last element (`["Service", "Meta", "env"]`); only paths the schema admits are asked for.
/// What to answer:
///
/// - a text field: `Text`; a number: `Text` in decimal; a map key: `Text`, or `Missing` when absent;
/// - a list (`Service.Tags`): `List`; a map named whole (`["Service", "Meta"]`, for
///   `"k" in Service.Meta` and `is empty`): `List` of its keys;
/// - a field of each check (`["Checks", "Status"]`): `List`, one value per check; `Checks is empty`
///   asks for `["Checks", "CheckID"]`.
pub trait FilterSubject {
    fn field(&self, selector: &[&str]) -> FieldValue<'_>;
}

/// A parsed filter, ready to match entries.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    expr: Expr,
}

#[derive(Debug, Clone, PartialEq)]
enum Expr {
    Or(Vec<Expr>),
    And(Vec<Expr>),
    Not(Box<Expr>),
    Match(Match),
}

#[derive(Debug, Clone, PartialEq)]
struct Match {
    path: Vec<String>,
    kind: Kind,
    op: Op,
    value: Operand,
}

#[derive(Debug, Clone, PartialEq)]
enum Operand {
    None,
    Text(String),
    Integer(i64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Equal,
    NotEqual,
    In,
    NotIn,
    Empty,
    NotEmpty,
}

/// What a selector names, and so which operators apply (table in the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Integer,
    TextList,
    Map,
    EachText,
    Checks,
}

impl Kind {
    fn supports(self, op: Op) -> bool {
        use Op::*;
        match self {
            Kind::Text | Kind::EachText => matches!(op, Equal | NotEqual | In | NotIn),
            Kind::Integer => matches!(op, Equal | NotEqual),
            Kind::TextList | Kind::Map => matches!(op, In | NotIn | Empty | NotEmpty),
            Kind::Checks => matches!(op, Empty | NotEmpty),
        }
    }
}

impl FilterSchema {
    /// The kind of field a selector names, or `None` when the schema has no such field.
    fn kind(self, path: &[&str]) -> Option<Kind> {
        use Kind::*;
        match (self, path) {
            (FilterSchema::HealthServiceEntry, path) => match path {
                ["Node", "ID" | "Node" | "Address" | "Datacenter"] => Some(Text),
                ["Node", "Meta"] | ["Service", "Meta"] => Some(Map),
                ["Node", "Meta", _] | ["Service", "Meta", _] => Some(Text),
                ["Service", "ID" | "Service" | "Address"] => Some(Text),
                ["Service", "Port"] => Some(Integer),
                ["Service", "Tags"] => Some(TextList),
                ["Checks"] => Some(Checks),
                ["Checks", "Node" | "CheckID" | "Name" | "Status" | "ServiceID" | "ServiceName" | "Type"] => {
                    Some(EachText)
                }
                _ => None,
            },
            (FilterSchema::CatalogServiceNode, path) => match path {
                ["ID" | "Node" | "Address" | "Datacenter" | "ServiceID" | "ServiceName"
                | "ServiceAddress"] => Some(Text),
                ["ServicePort"] => Some(Integer),
                ["ServiceTags"] => Some(TextList),
                ["NodeMeta" | "ServiceMeta"] => Some(Map),
                ["NodeMeta" | "ServiceMeta", _] => Some(Text),
                _ => None,
            },
            (FilterSchema::HealthCheck, path) => match path {
                ["Node" | "CheckID" | "Name" | "Status" | "ServiceID" | "ServiceName" | "Type"
                | "Notes" | "Output"] => Some(Text),
                ["ServiceTags"] => Some(TextList),
                _ => None,
            },
            (FilterSchema::AgentService, path) => match path {
                ["ID" | "Service" | "Address"] => Some(Text),
                ["Port"] => Some(Integer),
                ["Tags"] => Some(TextList),
                ["Meta"] => Some(Map),
                ["Meta", _] => Some(Text),
                _ => None,
            },
        }
    }
}

impl Filter {
    /// Parses `text` against `schema`; every error names `filter` (grammar in the module docs).
    pub fn parse(text: &str, schema: FilterSchema) -> Result<Filter, ValidationError> {
        parse::parse(text, schema).map(|expr| Filter { expr })
    }

    /// Whether the entry matches.
    pub fn matches(&self, subject: &dyn FilterSubject) -> bool {
        self.expr.eval(subject)
    }
}

impl Expr {
    fn eval(&self, subject: &dyn FilterSubject) -> bool {
        match self {
            Expr::Or(terms) => terms.iter().any(|term| term.eval(subject)),
            Expr::And(terms) => terms.iter().all(|term| term.eval(subject)),
            Expr::Not(inner) => !inner.eval(subject),
            Expr::Match(m) => m.eval(subject),
        }
    }
}

impl Match {
    fn eval(&self, subject: &dyn FilterSubject) -> bool {
        let mut path: Vec<&str> = self.path.iter().map(String::as_str).collect();
        if self.kind == Kind::Checks {
            path.push("CheckID");
        }
        let field = subject.field(&path);
        match (self.kind, field) {
            (Kind::Text | Kind::Integer, FieldValue::Text(text)) => self.scalar(&text),
            (Kind::EachText, FieldValue::List(items)) => items.iter().any(|item| self.scalar(item)),
            (Kind::EachText, FieldValue::Text(text)) => self.scalar(&text),
            (Kind::EachText, FieldValue::Missing) => false,
            (Kind::TextList | Kind::Map | Kind::Checks, FieldValue::List(items)) => {
                self.collection(&items)
            }
            (Kind::TextList | Kind::Map | Kind::Checks, FieldValue::Text(text)) => {
                self.collection(&[text])
            }
            (_, _) => self.missing(),
        }
    }

    /// One text (or number) against the operator.
    fn scalar(&self, text: &str) -> bool {
        match (&self.value, self.op) {
            (Operand::Integer(wanted), op) => {
                let equal = text.parse::<i64>().is_ok_and(|n| n == *wanted);
                if op == Op::Equal {
                    equal
                } else {
                    !equal
                }
            }
            (Operand::Text(wanted), Op::Equal) => text == wanted,
            (Operand::Text(wanted), Op::NotEqual) => text != wanted,
            (Operand::Text(wanted), Op::In) => text.contains(wanted.as_str()),
            (Operand::Text(wanted), Op::NotIn) => !text.contains(wanted.as_str()),
            _ => false,
        }
    }

    /// A list, a map's keys, or the checks, against the operator.
    fn collection(&self, items: &[Cow<'_, str>]) -> bool {
        let contains = |wanted: &str| items.iter().any(|item| item == wanted);
        match (&self.value, self.op) {
            (_, Op::Empty) => items.is_empty(),
            (_, Op::NotEmpty) => !items.is_empty(),
            (Operand::Text(wanted), Op::In) => contains(wanted),
            (Operand::Text(wanted), Op::NotIn) => !contains(wanted),
            _ => false,
        }
    }

    /// go-bexpr's answer for a missing map key: nothing equals, contains or is in it, and it is empty.
    fn missing(&self) -> bool {
        matches!(self.op, Op::NotEqual | Op::NotIn | Op::Empty)
    }
}
