//! Turning the `--database-url` into what sqlx connects to, and into a form safe to print.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::ConnectOptions;

use super::error::StoreError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    Postgres,
    Sqlite,
}

impl Backend {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Backend::Postgres => "postgres",
            Backend::Sqlite => "sqlite",
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub(crate) backend: Backend,
    /// What sqlx's Any driver is given; may carry a password, so never printed.
    pub(crate) url: String,
    /// The URL without credentials or query, for errors and logs.
    pub(crate) display: String,
}

impl Target {
    /// For SQLite this touches the file system: it creates the database's parent folders.
    pub(crate) fn resolve(url: &str) -> Result<Target, StoreError> {
        let scheme = url.split_once(':').map(|(s, _)| s).unwrap_or_default();
        match scheme {
            "postgres" | "postgresql" => Ok(Target {
                backend: Backend::Postgres,
                url: url.to_string(),
                display: redact_postgres(url),
            }),
            "sqlite" => sqlite_target(url),
            _ => Err(StoreError::InvalidInput(format!(
                "unsupported database URL scheme {scheme:?}: expected postgres://… or sqlite://…"
            ))),
        }
    }
}

/// `postgres://user:secret@host:5432/db?password=…` → `postgres://user@host:5432/db`.
fn redact_postgres(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "postgres://(unparseable URL)".to_string();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{user}@{host}")
        }
        None => authority.to_string(),
    };
    let path = tail.split('?').next().unwrap_or_default();
    format!("{scheme}://{authority}{path}")
}

fn sqlite_target(url: &str) -> Result<Target, StoreError> {
    let path = sqlite_file_path(url)?;
    let path = prepare_sqlite_file(&path)?;
    let display = format!("sqlite://{}", path.display());
    let options = SqliteConnectOptions::from_str(url)
        .map_err(|e| StoreError::InvalidInput(format!("invalid SQLite URL {display}: {e}")))?
        .filename(&path)
        .create_if_missing(true);
    // The Any driver only takes URLs: re-render ours with the absolute path and `mode=rwc`, so
    // every pooled connection opens the same file whatever the working directory becomes.
    Ok(Target {
        backend: Backend::Sqlite,
        url: options.to_url_lossy().to_string(),
        display,
    })
}

/// The file a `sqlite:` URL names: `sqlite://relative/path.db` is relative to the working
/// directory, `sqlite:///abs/path.db` absolute (sqlx's reading of both forms).
fn sqlite_file_path(url: &str) -> Result<PathBuf, StoreError> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    let (database, params) = rest.split_once('?').unwrap_or((rest, ""));
    let mode = params
        .split('&')
        .find_map(|p| p.strip_prefix("mode="))
        .unwrap_or("rwc");
    if database.is_empty() || database == ":memory:" || mode == "memory" {
        return Err(StoreError::InvalidInput(format!(
            "in-memory SQLite ({url}) is not supported: each pooled connection would see its own \
             empty database; give a file path"
        )));
    }
    if mode == "ro" {
        return Err(StoreError::InvalidInput(format!(
            "read-only SQLite ({url}) is not supported: the store runs its migrations at connect"
        )));
    }
    // Let sqlx do the percent-decoding (and reject unknown parameters) exactly as it will
    // when connecting.
    let options = SqliteConnectOptions::from_str(url)
        .map_err(|e| StoreError::InvalidInput(format!("invalid SQLite URL {url}: {e}")))?;
    Ok(options.get_filename().to_path_buf())
}

/// Creates the parent folders and returns the absolute path of the database file.
fn prepare_sqlite_file(path: &Path) -> Result<PathBuf, StoreError> {
    let file_name = path.file_name().ok_or_else(|| {
        StoreError::InvalidInput(format!(
            "SQLite path {} does not name a file",
            path.display()
        ))
    })?;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(parent).map_err(|e| {
        StoreError::Unavailable(format!(
            "cannot create the folder {} for the SQLite database: {e}",
            parent.display()
        ))
    })?;
    let parent = parent.canonicalize().map_err(|e| {
        StoreError::Unavailable(format!(
            "cannot resolve the SQLite database folder {}: {e}",
            parent.display()
        ))
    })?;
    Ok(parent.join(file_name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_name_relative_and_absolute_files() {
        let path = |url| sqlite_file_path(url).unwrap();
        assert_eq!(
            path("sqlite://relative/path.db"),
            Path::new("relative/path.db")
        );
        assert_eq!(
            path("sqlite:relative/path.db"),
            Path::new("relative/path.db")
        );
        assert_eq!(path("sqlite:///abs/path.db"), Path::new("/abs/path.db"));
        assert_eq!(
            path("sqlite:///abs/path.db?mode=rwc"),
            Path::new("/abs/path.db")
        );
        assert_eq!(
            path("sqlite:///abs/with%20space.db"),
            Path::new("/abs/with space.db")
        );
    }

    #[test]
    fn sqlite_urls_the_store_cannot_serve_are_refused() {
        for url in [
            "sqlite::memory:",
            "sqlite://",
            "sqlite://x.db?mode=memory",
            "sqlite://x.db?mode=ro",
        ] {
            assert!(
                matches!(sqlite_file_path(url), Err(StoreError::InvalidInput(_))),
                "{url}"
            );
        }
        assert!(matches!(
            sqlite_file_path("sqlite://x.db?journal=wal"),
            Err(StoreError::InvalidInput(_))
        ));
    }

    #[test]
    fn sqlite_target_uses_an_absolute_path_and_creates_folders() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/a/b/store.db", dir.path().display());
        let target = Target::resolve(&url).unwrap();
        assert_eq!(target.backend, Backend::Sqlite);
        assert!(dir.path().join("a/b").is_dir());
        let expected = dir.path().canonicalize().unwrap().join("a/b/store.db");
        assert_eq!(sqlite_file_path(&target.url).unwrap(), expected);
        assert!(target.url.contains("mode=rwc"), "{}", target.url);
    }

    #[test]
    fn postgres_display_drops_credentials_and_query() {
        let cases = [
            (
                "postgres://u:secret@db:5432/hm?password=x",
                "postgres://u@db:5432/hm",
            ),
            ("postgresql://db/hm", "postgresql://db/hm"),
            ("postgres://u:p@ss@db/hm", "postgres://u@db/hm"),
            ("postgres://db?sslmode=require", "postgres://db"),
        ];
        for (url, shown) in cases {
            let target = Target::resolve(url).unwrap();
            assert_eq!(target.backend, Backend::Postgres);
            assert_eq!(target.display, shown);
        }
    }

    #[test]
    fn other_schemes_are_refused_by_name() {
        let err = Target::resolve("mysql://db/hm").unwrap_err();
        assert!(err.to_string().contains("\"mysql\""), "{err}");
    }
}
