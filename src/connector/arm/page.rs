//! One page of an ARM list answer (`{"value": […], "nextLink": …}`) read item by item: each item of
//! `value` is decoded into the caller's small typed shape (fields it does not name are skipped as
//! they are read) and handed over before the next one is read. A page therefore costs its bytes
//! and one item at a time, never a tree of all its items: a 4 MiB page of tiny items holds over a
//! million of them, and as `serde_json::Value`s they cost hundreds of megabytes.
//!
//! An item of another shape does not spoil the page: the caller gets `None` for it and decides.
//! (Each item's text is located first, borrowed from the page, then read as the caller's type:
//! nothing of an item is buffered but the item it becomes.)
//! The caller may stop the page (an item cap, an item it cannot accept) by returning an error.
//!
//! Pure: bytes in, items out, so every shape of answer is unit-tested here.

use serde::de::{self, DeserializeOwned, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess};
use serde_json::value::RawValue;
use std::fmt;
use std::marker::PhantomData;

/// Why a page could not be read to its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageError {
    NotJson,
    /// No `value` array (or not an object at all).
    NoValueArray,
    /// A `nextLink` that is neither a string nor null.
    BadNextLink,
    /// The caller stopped at an item, saying why.
    Stopped(String),
}

/// Reads `body`, handing each item of `value` to `on_item` in order (`None` for an item that is
/// not a `T`); returns the `nextLink` (`None` when absent or null).
pub fn read<T, F>(body: &[u8], on_item: F) -> Result<Option<String>, PageError>
where
    T: DeserializeOwned,
    F: FnMut(Option<T>) -> Result<(), String>,
{
    let mut state = State {
        on_item,
        // Until the answer turns out to be an object, it is not a list page.
        failure: Some(PageError::NoValueArray),
        stopped: None,
        saw_value: false,
    };
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let result = PageSeed::<T, F> {
        state: &mut state,
        item: PhantomData,
    }
    .deserialize(&mut deserializer)
    .and_then(|next| deserializer.end().map(|()| next));
    match result {
        Ok(_) if !state.saw_value => Err(PageError::NoValueArray),
        Ok(next) => Ok(next),
        Err(_) if state.stopped.is_some() => Err(PageError::Stopped(state.stopped.unwrap())),
        Err(e) if e.is_syntax() || e.is_eof() => Err(PageError::NotJson),
        Err(_) => Err(state.failure.unwrap_or(PageError::NoValueArray)),
    }
}

struct State<F> {
    on_item: F,
    /// What a data error at this point of the page means.
    failure: Option<PageError>,
    stopped: Option<String>,
    saw_value: bool,
}

struct PageSeed<'s, T, F> {
    state: &'s mut State<F>,
    item: PhantomData<T>,
}

impl<'de, T, F> DeserializeSeed<'de> for PageSeed<'_, T, F>
where
    T: DeserializeOwned,
    F: FnMut(Option<T>) -> Result<(), String>,
{
    type Value = Option<String>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, T, F> de::Visitor<'de> for PageSeed<'_, T, F>
where
    T: DeserializeOwned,
    F: FnMut(Option<T>) -> Result<(), String>,
{
    type Value = Option<String>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an ARM list page")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        self.state.failure = None;
        let mut next = None;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "value" => {
                    self.state.failure = Some(PageError::NoValueArray);
                    map.next_value_seed(ItemsSeed::<T, F> {
                        state: &mut *self.state,
                        item: PhantomData,
                    })?;
                    self.state.saw_value = true;
                }
                "nextLink" => {
                    self.state.failure = Some(PageError::BadNextLink);
                    next = map.next_value::<Option<String>>()?;
                }
                _ => {
                    self.state.failure = None;
                    map.next_value::<IgnoredAny>()?;
                }
            }
            self.state.failure = None;
        }
        Ok(next)
    }
}

struct ItemsSeed<'s, T, F> {
    state: &'s mut State<F>,
    item: PhantomData<T>,
}

impl<'de, T, F> DeserializeSeed<'de> for ItemsSeed<'_, T, F>
where
    T: DeserializeOwned,
    F: FnMut(Option<T>) -> Result<(), String>,
{
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de, T, F> de::Visitor<'de> for ItemsSeed<'_, T, F>
where
    T: DeserializeOwned,
    F: FnMut(Option<T>) -> Result<(), String>,
{
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of items")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        // Each item's text is found (borrowed from the page, not copied), then read as a `T`: an
        // item of another shape is `None`, and the page reads on.
        while let Some(raw) = seq.next_element::<&'de RawValue>()? {
            let item = serde_json::from_str::<T>(raw.get()).ok();
            if let Err(reason) = (self.state.on_item)(item) {
                self.state.stopped = Some(reason);
                return Err(de::Error::custom("stopped by the caller"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize, PartialEq)]
    struct Named {
        name: String,
    }

    fn names(body: &str) -> Result<(Vec<Option<String>>, Option<String>), PageError> {
        let mut seen = Vec::new();
        let next = read::<Named, _>(body.as_bytes(), |item| {
            seen.push(item.map(|n| n.name));
            Ok(())
        })?;
        Ok((seen, next))
    }

    #[test]
    fn items_arrive_in_order_with_unknown_fields_skipped_and_odd_items_as_none() {
        let body = r#"{"odd":{"deep":[1,2]},"value":[{"name":"a","extra":{"x":[1]}},"text",{"name":5},{"name":"b"}],"nextLink":"https://x/next"}"#;
        assert_eq!(
            names(body),
            Ok((
                vec![Some("a".into()), None, None, Some("b".into())],
                Some("https://x/next".into())
            ))
        );
        // nextLink first, absent or null: all the same to the reader.
        assert_eq!(names(r#"{"nextLink":null,"value":[]}"#), Ok((vec![], None)));
        assert_eq!(names(r#"{"value":[{"name":"c"}]}"#).unwrap().1, None);
    }

    #[test]
    fn a_page_that_is_not_a_list_page_says_what_is_wrong() {
        for (body, error) in [
            ("<html>", PageError::NotJson),
            (r#"{"value":[{"name":"a"}"#, PageError::NotJson),
            (r#"{"value":[]} trailing"#, PageError::NotJson),
            (r#"{"items":"not a list"}"#, PageError::NoValueArray),
            (r#"{"value":"not a list"}"#, PageError::NoValueArray),
            (r#"{"value":null}"#, PageError::NoValueArray),
            (r#"[{"name":"a"}]"#, PageError::NoValueArray),
            ("42", PageError::NoValueArray),
            (r#"{"value":[],"nextLink":7}"#, PageError::BadNextLink),
            (
                r#"{"value":[],"nextLink":{"a":"b"}}"#,
                PageError::BadNextLink,
            ),
        ] {
            assert_eq!(names(body), Err(error), "{body}");
        }
    }

    #[test]
    fn the_caller_stops_a_page_and_no_item_after_it_is_read() {
        let mut seen = 0;
        let result = read::<Named, _>(
            br#"{"value":[{"name":"a"},{"name":"b"},{"name":"c"}]}"#,
            |_| {
                seen += 1;
                if seen == 2 {
                    Err("enough".to_owned())
                } else {
                    Ok(())
                }
            },
        );
        assert_eq!(result, Err(PageError::Stopped("enough".into())));
        assert_eq!(seen, 2);
    }
}
