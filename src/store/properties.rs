//! How one entity property is read and written: the spellings of times, statuses and circuits, the
//! numeric shapes other clients send, and the `@odata.type` annotations this handler writes.
//!
//! Rows may come from other clients, so every read is tolerant: a number may arrive as Int32,
//! Double or an Int64 string; a time or status may hold text this handler does not understand. Such
//! text is kept as it was stored (`Stored`), because discovery shows it and a rewrite keeps it; the
//! rules only ever see the decoded value, or its absence.

use crate::domain::{Circuit, HealthState};
use chrono::{DateTime, Utc};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// A value with a stored spelling (a time, a health status, a circuit state).
pub trait Spelling: Sized {
    fn spell(&self) -> String;
    fn read(text: &str) -> Option<Self>;
}

/// Times as the recipe's `new Date().toISOString()` writes them; any RFC 3339 text reads.
impl Spelling for DateTime<Utc> {
    fn spell(&self) -> String {
        crate::iso(*self)
    }
    fn read(text: &str) -> Option<Self> {
        crate::parse_iso(text)
    }
}

/// The recipe's `status` values.
impl Spelling for HealthState {
    fn spell(&self) -> String {
        self.as_str().to_owned()
    }
    fn read(text: &str) -> Option<Self> {
        match text {
            "healthy" => Some(HealthState::Healthy),
            "degraded" => Some(HealthState::Degraded),
            "unhealthy" => Some(HealthState::Unhealthy),
            _ => None,
        }
    }
}

impl Spelling for Circuit {
    fn spell(&self) -> String {
        self.as_str().to_owned()
    }
    fn read(text: &str) -> Option<Self> {
        Circuit::parse(text)
    }
}

/// A property as read: the decoded value when the text is one this handler understands, and the
/// text exactly as stored (shown by discovery, kept by a rewrite). Made from a value, the text is
/// that value's spelling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored<T> {
    value: Option<T>,
    text: String,
}

impl<T: Spelling> Stored<T> {
    pub fn read(text: impl Into<String>) -> Self {
        let text = text.into();
        Stored {
            value: T::read(&text),
            text,
        }
    }
}

impl<T: Spelling> From<T> for Stored<T> {
    fn from(value: T) -> Self {
        Stored {
            text: value.spell(),
            value: Some(value),
        }
    }
}

impl<T: Copy> Stored<T> {
    /// `None`: the stored text is not one this handler reads.
    pub fn value(&self) -> Option<T> {
        self.value
    }
}

impl<T> Stored<T> {
    pub fn text(&self) -> &str {
        &self.text
    }
}

pub(super) fn string(entity: &Map<String, Value>, name: &str) -> Option<String> {
    match entity.get(name)? {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

pub(super) fn stored<T: Spelling>(entity: &Map<String, Value>, name: &str) -> Option<Stored<T>> {
    string(entity, name).map(Stored::read)
}

/// A property never shown nor rewritten as read: only its value matters, and unreadable text is absent.
pub(super) fn decoded<T: Spelling>(entity: &Map<String, Value>, name: &str) -> Option<T> {
    string(entity, name).as_deref().and_then(T::read)
}

/// A JSON document stored as text (`tags`, `metadata`), kept as its compact JSON text rather than as
/// a parsed `Value`: at 10,000 rows a cached copy of the registry held about 6.5 MiB of small maps
/// and vectors for two short properties, and a refresh or a sweep holds two copies for a moment.
/// Discovery writes the text into its answers as it is; the few readers that look inside it
/// (attribute filters, the connector's checks) parse it on demand.
#[derive(Clone)]
pub struct JsonText(Box<RawValue>);

impl JsonText {
    /// The value's compact text (the spelling a parsed `Value` is written with).
    pub fn of(value: &Value) -> Self {
        JsonText(serde_json::value::to_raw_value(value).expect("a JSON value serialises"))
    }

    /// The value, parsed anew on every call.
    pub fn value(&self) -> Value {
        serde_json::from_str(self.0.get()).expect("the text was written from a JSON value")
    }

    pub fn text(&self) -> &str {
        self.0.get()
    }
}

impl PartialEq for JsonText {
    fn eq(&self, other: &Self) -> bool {
        self.text() == other.text()
    }
}

impl std::fmt::Debug for JsonText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.text())
    }
}

/// Written as the JSON it holds, not as a string.
impl serde::Serialize for JsonText {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

/// A JSON document stored as text; `fallback` when absent or not the expected shape. The text is
/// parsed once, to check its shape and to write it compactly (as discovery always showed it).
pub(super) fn json_text(entity: &Map<String, Value>, name: &str, fallback: Value) -> JsonText {
    let parsed = string(entity, name).and_then(|text| serde_json::from_str::<Value>(&text).ok());
    match parsed {
        Some(v) if std::mem::discriminant(&v) == std::mem::discriminant(&fallback) => {
            JsonText::of(&v)
        }
        Some(_) | None => {
            if entity.contains_key(name) {
                tracing::warn!(
                    partition_key = string(entity, "PartitionKey").unwrap_or_default(),
                    row_key = string(entity, "RowKey").unwrap_or_default(),
                    property = name,
                    "stored property is not the expected JSON text; returning an empty value"
                );
            }
            JsonText::of(&fallback)
        }
    }
}

pub(super) fn number(entity: &Map<String, Value>, name: &str) -> Option<f64> {
    match entity.get(name)? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse::<f64>().ok(),
        _ => None,
    }
    .filter(|f| f.is_finite())
}

/// Int32 and Double arrive as JSON numbers; Int64 arrives as a string annotated `Edm.Int64`.
pub(super) fn integer(entity: &Map<String, Value>, name: &str) -> Option<i64> {
    match entity.get(name)? {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f.round() as i64)),
        Value::String(s) => s
            .parse::<i64>()
            .ok()
            .or_else(|| s.parse::<f64>().ok().map(|f| f.round() as i64)),
        _ => None,
    }
}

/// A count: an integer that is not negative and fits a `u32`; anything else reads as absent.
pub(super) fn count(entity: &Map<String, Value>, name: &str) -> Option<u32> {
    integer(entity, name).and_then(|n| u32::try_from(n).ok())
}

/// A count or duration: an Int32, the type the recipe's `responseTime` is stored as (an Int64 would
/// travel as a string, which the recipe's reader would not expect), so the value is clamped into
/// Int32 range.
pub(super) fn put_int32(entity: &mut Map<String, Value>, name: &str, n: i64) {
    let n = n.clamp(0, i64::from(i32::MAX)) as i32;
    entity.insert(format!("{name}@odata.type"), "Edm.Int32".into());
    entity.insert(name.to_owned(), n.into());
}

/// A 64-bit count, annotated: an Int64 travels as decimal text, and without its type it would be
/// stored as a string.
pub(super) fn put_int64(entity: &mut Map<String, Value>, name: &str, n: u64) {
    let n = n.min(i64::MAX as u64);
    entity.insert(format!("{name}@odata.type"), "Edm.Int64".into());
    entity.insert(name.to_owned(), n.to_string().into());
}

/// A Double, annotated: the service types an unannotated number by its value, so a whole one
/// (`12.0`) would be stored, and read back, as the Int32 `12`.
pub(super) fn put_double(entity: &mut Map<String, Value>, name: &str, f: f64) {
    entity.insert(format!("{name}@odata.type"), "Edm.Double".into());
    entity.insert(name.to_owned(), f.into());
}

pub(super) fn put_spelled<T: Spelling>(entity: &mut Map<String, Value>, name: &str, value: &T) {
    entity.insert(name.to_owned(), value.spell().into());
}

pub(super) fn put_text(entity: &mut Map<String, Value>, name: &str, text: &str) {
    entity.insert(name.to_owned(), text.into());
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn stored_text_is_kept_and_decoded_when_understood() {
        let t = Stored::<DateTime<Utc>>::read("2026-11-25T05:10:00Z");
        assert_eq!(t.text(), "2026-11-25T05:10:00Z");
        assert_eq!(
            t.value().map(crate::iso).as_deref(),
            Some("2026-11-25T05:10:00.000Z")
        );
        let t = Stored::<DateTime<Utc>>::read("yesterday");
        assert_eq!((t.text(), t.value()), ("yesterday", None));
        let s = Stored::<HealthState>::read("passing");
        assert_eq!((s.text(), s.value()), ("passing", None));
        assert_eq!(
            Stored::<HealthState>::read("degraded").value(),
            Some(HealthState::Degraded)
        );
        assert_eq!(Stored::from(HealthState::Healthy).text(), "healthy");
        assert_eq!(
            Stored::<HealthState>::read("healthy").value(),
            Some(HealthState::Healthy)
        );
        assert_eq!(Stored::from(Circuit::HalfOpen).text(), "half-open");
        assert_eq!(
            Stored::<Circuit>::read("half-open").value(),
            Some(Circuit::HalfOpen)
        );
        assert_eq!(Stored::<Circuit>::read("ajar").value(), None);
    }

    #[test]
    fn json_text_is_kept_compact_in_its_stored_order_and_written_as_json() {
        let entity = json!({
            "metadata": "{ \"z\": 1,  \"a\": [true, \"x\"] }",
            "tags": "[\"b\", \"a\"]", "notArray": "{}", "broken": "{"
        });
        let entity = entity.as_object().unwrap();
        let metadata = json_text(entity, "metadata", json!({}));
        assert_eq!(metadata.text(), r#"{"z":1,"a":[true,"x"]}"#);
        assert_eq!(metadata.value(), json!({"z": 1, "a": [true, "x"]}));
        assert_eq!(json_text(entity, "tags", json!([])).text(), r#"["b","a"]"#);
        for name in ["notArray", "broken", "absent"] {
            assert_eq!(json_text(entity, name, json!([])).text(), "[]", "{name}");
        }
        // Inside a document it is the JSON it holds, not a string.
        #[derive(serde::Serialize)]
        struct View {
            metadata: JsonText,
        }
        assert_eq!(
            serde_json::to_string(&View { metadata }).unwrap(),
            r#"{"metadata":{"z":1,"a":[true,"x"]}}"#
        );
    }

    #[test]
    fn counts_outside_u32_read_as_absent() {
        let e = json!({"a": 3, "b": -1, "c": "9007199254740993", "d": 2.6, "e": "x"});
        let e = e.as_object().unwrap();
        let counts: Vec<_> = ["a", "b", "c", "d", "e", "f"]
            .iter()
            .map(|n| count(e, n))
            .collect();
        assert_eq!(counts, vec![Some(3), None, None, Some(3), None, None]);
    }

    #[test]
    fn numbers_are_written_with_their_edm_type() {
        let mut e = Map::new();
        put_int32(&mut e, "n", i64::MAX);
        put_double(&mut e, "d", 12.0);
        put_int64(&mut e, "l", u64::MAX);
        assert_eq!(
            Value::Object(e.clone()),
            json!({"n@odata.type": "Edm.Int32", "n": i32::MAX,
                   "d@odata.type": "Edm.Double", "d": 12.0,
                   "l@odata.type": "Edm.Int64", "l": i64::MAX.to_string()})
        );
        assert_eq!(integer(&e, "l"), Some(i64::MAX));
    }
}
