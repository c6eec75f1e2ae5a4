//! AIP-158 pagination: `page_size` (default 50, max 1000, negative is an error) and opaque page
//! tokens bound to the caller, the method and the filter.

use super::AppState;
use crate::app::error::ApiError;
use crate::domain::principal::Principal;

/// Default page size.
pub const DEFAULT_PAGE_SIZE: i64 = 50;
/// Largest page size; larger requests are coerced down.
pub const MAX_PAGE_SIZE: i64 = 1000;

/// A validated page request.
#[derive(Debug, Clone)]
pub struct Page {
    /// Items to return.
    pub size: i64,
    /// Resume after this key (from the token).
    pub after: Option<String>,
    binding: String,
}

impl Page {
    /// Validates `page_size` and `page_token` for `principal` calling `method` with `filter`
    /// (a canonical description of every filter field).
    pub fn parse(
        state: &AppState,
        principal: &Principal,
        method: &str,
        filter: &str,
        page_size: i32,
        token: &str,
    ) -> Result<Page, ApiError> {
        Self::parse_sized(
            state,
            principal,
            method,
            filter,
            (page_size, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE),
            token,
        )
    }

    /// [`Page::parse`] for a list of small items with its own default and largest page size
    /// (`sizes`: requested, default, largest).
    pub fn parse_sized(
        state: &AppState,
        principal: &Principal,
        method: &str,
        filter: &str,
        sizes: (i32, i64, i64),
        token: &str,
    ) -> Result<Page, ApiError> {
        let (page_size, default, max) = sizes;
        if page_size < 0 {
            return Err(ApiError::invalid("page_size", "must not be negative"));
        }
        let size = match page_size as i64 {
            0 => default,
            n => n.min(max),
        };
        let binding = format!(
            "{}|{}|{}|{}",
            principal.sub, principal.scope, method, filter
        );
        let after = if token.is_empty() {
            None
        } else {
            Some(state.pages.decode(&binding, token).ok_or_else(|| {
                ApiError::invalid(
                    "page_token",
                    "is not a token issued for this caller and filter",
                )
            })?)
        };
        Ok(Page {
            size,
            after,
            binding,
        })
    }

    /// Rows to fetch: one more than the page, to know whether another page follows.
    pub fn fetch_limit(&self) -> i64 {
        self.size + 1
    }

    /// The sequence number to resume after (0: from the start), for lists keyed by one.
    pub fn after_seq(&self) -> Result<i64, ApiError> {
        self.after.as_deref().map_or(Ok(0), |s| {
            s.parse()
                .map_err(|_| ApiError::invalid("page_token", "malformed"))
        })
    }

    /// The key to resume after, for lists keyed by UUID (ids are time-ordered, newest first).
    pub fn after_uuid<T: From<uuid::Uuid>>(&self) -> Result<Option<T>, ApiError> {
        self.after
            .as_deref()
            .map(|s| uuid::Uuid::parse_str(s).map(T::from))
            .transpose()
            .map_err(|_| ApiError::invalid("page_token", "malformed"))
    }

    /// Trims the extra row and returns the next page token (empty at the end).
    pub fn finish<T>(
        &self,
        state: &AppState,
        rows: &mut Vec<T>,
        key: impl Fn(&T) -> String,
    ) -> String {
        if rows.len() as i64 > self.size {
            rows.truncate(self.size as usize);
            rows.last()
                .map(|r| state.pages.encode(&self.binding, &key(r)))
                .unwrap_or_default()
        } else {
            String::new()
        }
    }
}
