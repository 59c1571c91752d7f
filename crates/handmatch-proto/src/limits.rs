//! The API's limits: part of the contract, so the server enforces and the clients plan
//! with the same numbers.

/// `subject_id` is 1 to this many characters.
pub const MAX_SUBJECT_ID_CHARS: usize = 128;
/// Identify's `top_k` when the request leaves it out.
pub const DEFAULT_TOP_K: u32 = 10;
/// Identify's largest `top_k`: the deepest rank the service reports.
pub const MAX_TOP_K: u32 = 100;
/// ListSubjects' `page_size` when the request leaves it out.
pub const DEFAULT_PAGE_SIZE: u32 = 100;
/// The most subjects one ListSubjects page returns.
pub const MAX_PAGE_SIZE: u32 = 1000;
/// The gallery of requests that name none.
pub const DEFAULT_GALLERY: &str = "default";
/// Gallery and API key names are 1 to this many of `A-Z a-z 0-9 . _ -`.
pub const MAX_NAME_CHARS: usize = 64;
