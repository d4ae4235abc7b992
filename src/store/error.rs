//! What a storage failure means for the caller, decided in one place.
//!
//! The Tables crate reports everything as one `azure_core::Error`; callers need two kinds:
//! `Unavailable` (network faults, timeouts, throttling, 5xx, a vanished table: retrying may help, so a
//! 503) and `Unexpected` (anything else: a 500 and a log line). `From<azure_core::Error>` is the only
//! conversion; an operation first matches the answers it expects (409 on create, 404 for a row, 412
//! for a stale ETag: see the helpers below) and hands every other error to `?`.
//!
//! The crate's messages can quote request URLs, and a SAS URL carries its signature: the text kept
//! for display and logs is redacted when the error is made, and the crate error itself is kept only
//! for the store to inspect, never exposed as `Error::source` (error reporters print the chain).

use crate::telemetry::redact;
use azure_core::error::ErrorKind;
use azure_core::StatusCode;
use std::sync::Arc;

/// `Clone`, so one failed read can be handed to every caller waiting on it (see `cache`).
#[derive(Clone, thiserror::Error)]
pub enum StoreError {
    #[error("storage unavailable: {detail}")]
    Unavailable {
        /// Redacted: safe for logs.
        detail: String,
        /// The crate's error, when there was one; see `crate_error`.
        cause: Option<Arc<azure_core::Error>>,
    },
    #[error("unexpected storage response: {detail}")]
    Unexpected {
        /// Redacted: safe for logs.
        detail: String,
        cause: Option<Arc<azure_core::Error>>,
    },
    /// Storage is fine, but other requests kept creating and deleting the same row faster than this
    /// write could land; nothing of it was written. The caller may retry at once.
    #[error("write contended: {detail}")]
    Contended { detail: String },
}

impl StoreError {
    /// A failure the store detected itself (a timeout, a short transaction answer): no crate error.
    pub fn unavailable(detail: impl Into<String>) -> Self {
        StoreError::Unavailable {
            detail: detail.into(),
            cause: None,
        }
    }

    pub fn unexpected(detail: impl Into<String>) -> Self {
        StoreError::Unexpected {
            detail: detail.into(),
            cause: None,
        }
    }

    /// The same failure, classified as not worth retrying: for an answer the operation knows is no
    /// outage whatever its status (a 404 to "create table" is a wrong endpoint, not a vanished table).
    pub(super) fn into_unexpected(self) -> Self {
        match self {
            StoreError::Unavailable { detail, cause } => StoreError::Unexpected { detail, cause },
            unexpected => unexpected,
        }
    }

    /// Every word `kind` gives, in the order of the variants.
    pub const KINDS: [&'static str; 3] = ["unavailable", "unexpected", "contended"];

    /// The kind as one fixed word (one of `KINDS`): a metrics label.
    pub fn kind(&self) -> &'static str {
        match self {
            StoreError::Unavailable { .. } => "unavailable",
            StoreError::Unexpected { .. } => "unexpected",
            StoreError::Contended { .. } => "contended",
        }
    }

    /// The redacted text: what the logs and `ApiError` carry.
    pub fn detail(&self) -> &str {
        match self {
            StoreError::Unavailable { detail, .. }
            | StoreError::Unexpected { detail, .. }
            | StoreError::Contended { detail } => detail,
        }
    }

    /// The crate's error behind this one, for the store's own decisions (a vanished table). Its
    /// text is not redacted: never log it.
    pub(super) fn crate_error(&self) -> Option<&azure_core::Error> {
        match self {
            StoreError::Unavailable { cause, .. } | StoreError::Unexpected { cause, .. } => {
                cause.as_deref()
            }
            StoreError::Contended { .. } => None,
        }
    }

    /// Storage answered that the table does not exist (deleted, or an emulator restarted without
    /// persistence).
    pub(super) fn is_table_missing(&self) -> bool {
        self.crate_error().is_some_and(is_table_missing)
    }
}

/// As a plain detail string, as the former `Unavailable(String)` printed: the crate error's own
/// `Debug` would print its unredacted text (a panic message or `{:?}` must not leak a SAS).
impl std::fmt::Debug for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self {
            StoreError::Unavailable { .. } => "Unavailable",
            StoreError::Unexpected { .. } => "Unexpected",
            StoreError::Contended { .. } => "Contended",
        };
        f.debug_tuple(name).field(&self.detail()).finish()
    }
}

/// The one conversion of crate errors. A 404 that reaches it is not a missing row (callers that
/// expect one match `is_row_missing` first): it is a missing table, an outage the next call heals
/// by recreating the table.
impl From<azure_core::Error> for StoreError {
    fn from(error: azure_core::Error) -> Self {
        let detail = redact(&describe(&error));
        let retryable = match error.kind() {
            ErrorKind::Io | ErrorKind::Credential => true,
            ErrorKind::HttpResponse { status, .. } => {
                status.is_server_error()
                    || matches!(
                        status,
                        StatusCode::TooManyRequests
                            | StatusCode::RequestTimeout
                            | StatusCode::NotFound
                    )
            }
            _ => false,
        };
        let cause = Some(Arc::new(error));
        if retryable {
            StoreError::Unavailable { detail, cause }
        } else {
            StoreError::Unexpected { detail, cause }
        }
    }
}

/// The error's own text; for a credential failure, with its causes: there the crate's outer
/// messages ("failed to get bearer token") say nothing about what failed.
fn describe(error: &azure_core::Error) -> String {
    let mut text = error.to_string();
    if matches!(error.kind(), ErrorKind::Credential) {
        let mut source = std::error::Error::source(error);
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
    }
    text
}

fn status_of(error: &azure_core::Error) -> Option<StatusCode> {
    match error.kind() {
        ErrorKind::HttpResponse { status, .. } => Some(*status),
        _ => None,
    }
}

pub(super) fn is_status(error: &azure_core::Error, wanted: StatusCode) -> bool {
    status_of(error) == Some(wanted)
}

/// A 404 about the row, not about the table (a missing table is an outage to heal, not "not found").
pub(super) fn is_row_missing(error: &azure_core::Error) -> bool {
    is_status(error, StatusCode::NotFound) && !is_table_missing(error)
}

/// A queue message's receipt no longer holds it: deleted, expired, or received again by another
/// (404 `MessageNotFound`, 400 `PopReceiptMismatch`).
pub(super) fn is_receipt_stale(error: &azure_core::Error) -> bool {
    is_status(error, StatusCode::NotFound)
        || matches!(error.kind(), ErrorKind::HttpResponse { error_code: Some(code), .. } if code == "PopReceiptMismatch")
}

pub(super) fn is_table_missing(error: &azure_core::Error) -> bool {
    matches!(error.kind(), ErrorKind::HttpResponse { error_code: Some(code), .. } if code == "TableNotFound")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_one_of_the_kinds() {
        let kinds = [
            StoreError::Unavailable {
                detail: String::new(),
                cause: None,
            }
            .kind(),
            StoreError::Unexpected {
                detail: String::new(),
                cause: None,
            }
            .kind(),
            StoreError::Contended {
                detail: String::new(),
            }
            .kind(),
        ];
        assert_eq!(kinds, StoreError::KINDS);
    }

    fn http(status: StatusCode, code: Option<&str>, message: &str) -> azure_core::Error {
        azure_core::Error::message(
            ErrorKind::HttpResponse {
                status,
                error_code: code.map(str::to_owned),
            },
            message.to_owned(),
        )
    }

    #[test]
    fn outages_are_unavailable_and_the_rest_unexpected() {
        for (status, code) in [
            (StatusCode::ServiceUnavailable, None),
            (StatusCode::InternalServerError, None),
            (StatusCode::TooManyRequests, None),
            (StatusCode::RequestTimeout, None),
            (StatusCode::NotFound, Some("TableNotFound")),
            (StatusCode::NotFound, None),
        ] {
            let e = StoreError::from(http(status, code, "x"));
            assert!(matches!(e, StoreError::Unavailable { .. }), "{status}: {e}");
        }
        for status in [
            StatusCode::BadRequest,
            StatusCode::Forbidden,
            StatusCode::Conflict,
        ] {
            let e = StoreError::from(http(status, None, "x"));
            assert!(matches!(e, StoreError::Unexpected { .. }), "{status}: {e}");
        }
        let io = azure_core::Error::message(ErrorKind::Io, "connection refused");
        assert!(matches!(
            StoreError::from(io),
            StoreError::Unavailable { .. }
        ));
        let serde = azure_core::Error::message(ErrorKind::DataConversion, "bad entity");
        assert!(matches!(
            StoreError::from(serde),
            StoreError::Unexpected { .. }
        ));
    }

    #[test]
    fn a_credential_failure_keeps_its_cause_in_the_detail() {
        use azure_core::error::ResultExt;
        let failed: azure_core::Result<()> = Err(azure_core::Error::message(
            ErrorKind::Credential,
            "managed identity: identity endpoint answered 500",
        ));
        let wrapped = failed
            .context(ErrorKind::Credential, "failed to get bearer token")
            .unwrap_err()
            .context("non-io error occurred which will not be retried");
        let e = StoreError::from(wrapped);
        assert!(matches!(e, StoreError::Unavailable { .. }));
        assert_eq!(
            e.detail(),
            "non-io error occurred which will not be retried: failed to get bearer token: managed identity: identity endpoint answered 500"
        );
    }

    #[test]
    fn a_missing_table_is_not_a_missing_row() {
        let table = http(StatusCode::NotFound, Some("TableNotFound"), "x");
        let row = http(StatusCode::NotFound, Some("ResourceNotFound"), "x");
        assert!(is_table_missing(&table) && !is_row_missing(&table));
        assert!(is_row_missing(&row) && !is_table_missing(&row));
        assert!(StoreError::from(table).is_table_missing());
        assert!(!StoreError::from(row).is_table_missing());
        assert!(!StoreError::unavailable("timeout").is_table_missing());
        let create = StoreError::from(http(StatusCode::NotFound, None, "x")).into_unexpected();
        assert!(matches!(
            create,
            StoreError::Unexpected { cause: Some(_), .. }
        ));
    }

    #[test]
    fn display_and_debug_are_redacted_while_the_cause_is_kept() {
        let e = StoreError::from(http(
            StatusCode::Forbidden,
            None,
            "GET https://acct.table.core.windows.net/t?sv=1&sig=SECRET failed",
        ));
        for text in [e.to_string(), format!("{e:?}"), e.detail().to_owned()] {
            assert!(!text.contains("SECRET"), "{text}");
        }
        assert!(e.to_string().starts_with("unexpected storage response: "));
        assert!(format!("{e:?}").starts_with("Unexpected(\""));
        assert!(std::error::Error::source(&e).is_none());
        assert!(e
            .crate_error()
            .is_some_and(|c| is_status(c, StatusCode::Forbidden)));
    }
}
