//! Who may call what: API keys (a public id plus a 256-bit secret, stored as a hash), their
//! scopes and galleries, the per-request check, and key administration shared by the CLI
//! and the Admin RPCs. Depends on the store only; the service calls it.

pub mod api_key;
pub mod authenticator;
pub mod error;
pub mod grant;
pub mod key_admin;
pub mod scope;

pub use authenticator::{AuthMode, Authenticator};
pub use error::AccessError;
pub use grant::{GalleryAccess, Grant};
pub use scope::Scope;
