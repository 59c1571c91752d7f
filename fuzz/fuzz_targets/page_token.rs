//! Any string as ListSubjects' page token: refused or decoded, never a panic, and what
//! decodes encodes back to the same token (lowercase hex is the one spelling issued).
#![no_main]

use handmatch_server::service::page_token::{decode, encode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|token: &str| {
    if let Ok(Some(subject)) = decode(token) {
        assert_eq!(encode(&subject), token.to_ascii_lowercase());
    }
});
