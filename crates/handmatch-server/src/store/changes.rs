//! The change feed (`gallery_changes`): written in the transaction of every write that
//! changes what a search can find, read by every replica in sequence order
//! (`changes_after`), pruned past a retention window (`prune_changes`).

use std::time::Duration;

use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use super::error::StoreError;
use super::target::Backend;
use super::template_store::{now_ms, TemplateStore};

/// Serialises the feed's writers (Postgres): the lock is taken just before the feed row
/// is inserted and held until commit, so sequence order is commit order. Any fixed key
/// works; this one is "handmatc" in ASCII.
const FEED_LOCK: i64 = 0x6861_6e64_6d61_7463;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// Templates were added to a subject.
    Enrolled,
    /// A subject and all its templates went.
    SubjectDeleted,
    /// Every template of one model went.
    ModelDeleted,
}

impl ChangeKind {
    // Part of the schema (CHECK in both migrations): never renumber.
    fn code(self) -> i16 {
        match self {
            ChangeKind::Enrolled => 1,
            ChangeKind::SubjectDeleted => 2,
            ChangeKind::ModelDeleted => 3,
        }
    }

    fn from_code(code: i16) -> Result<Self, StoreError> {
        match code {
            1 => Ok(ChangeKind::Enrolled),
            2 => Ok(ChangeKind::SubjectDeleted),
            3 => Ok(ChangeKind::ModelDeleted),
            other => Err(StoreError::Corrupt(format!("change op {other}"))),
        }
    }
}

/// One row of the feed.
#[derive(Debug, Clone, PartialEq)]
pub struct GalleryChange {
    pub seq: i64,
    pub kind: ChangeKind,
    /// The subject changed: `Some` for `Enrolled` and `SubjectDeleted`.
    pub subject: Option<(String, String)>,
    pub model_id: Option<String>,
    pub template_ids: Vec<i64>,
    pub created_at_ms: i64,
}

/// What one read of the feed returns.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeBatch {
    /// Changes after the asked sequence number, in order.
    pub changes: Vec<GalleryChange>,
    /// The highest sequence number ever pruned: a reader that had applied less than this
    /// has missed changes and must reload.
    pub pruned_through: i64,
}

/// A change to record in a write's transaction.
pub(super) struct NewChange<'a> {
    pub kind: ChangeKind,
    pub subject: Option<(&'a str, &'a str)>,
    pub model_id: Option<&'a str>,
    pub template_ids: &'a [i64],
}

/// Inserts the change as the transaction's last statement (after taking the feed lock on
/// Postgres; SQLite's single writer already orders commits).
pub(super) async fn record(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    change: NewChange<'_>,
) -> Result<(), StoreError> {
    if backend == Backend::Postgres {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(FEED_LOCK)
            .execute(&mut **tx)
            .await?;
    }
    let ids = change
        .template_ids
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(",");
    sqlx::query(
        "INSERT INTO gallery_changes \
         (op, gallery, subject_id, model_id, template_ids, created_at_ms) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(change.kind.code())
    .bind(change.subject.map(|(g, _)| g))
    .bind(change.subject.map(|(_, s)| s))
    .bind(change.model_id)
    .bind(ids)
    .bind(now_ms())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl TemplateStore {
    /// The newest sequence number written (0 before the first change). Read before loading
    /// the templates, it is where a replica's feed reading starts.
    pub async fn change_head(&self) -> Result<i64, StoreError> {
        let newest: Option<i64> = sqlx::query_scalar("SELECT MAX(seq) FROM gallery_changes")
            .fetch_one(&self.pool)
            .await?;
        Ok(newest.unwrap_or(0).max(self.pruned_through().await?))
    }

    /// Up to `limit` changes numbered above `after`, in order, and how far the feed was
    /// pruned. The prune mark is read after the changes, so a prune between the two reads
    /// is seen (and costs a reload) rather than missed.
    pub async fn changes_after(&self, after: i64, limit: u32) -> Result<ChangeBatch, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, op, gallery, subject_id, model_id, template_ids, created_at_ms \
             FROM gallery_changes WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(after)
        .bind(i64::from(limit.max(1)))
        .fetch_all(&self.pool)
        .await?;
        let changes = rows.iter().map(change).collect::<Result<Vec<_>, _>>()?;
        Ok(ChangeBatch {
            changes,
            pruned_through: self.pruned_through().await?,
        })
    }

    /// Deletes changes written more than `age` ago, always keeping the newest (so the head
    /// stays readable), and raises the prune mark; returns how many went.
    pub async fn prune_changes(&self, age: Duration) -> Result<u64, StoreError> {
        let before_ms = now_ms() - i64::try_from(age.as_millis()).unwrap_or(i64::MAX);
        let mut tx = self.pool.begin().await?;
        let through: Option<i64> = sqlx::query_scalar(
            "SELECT MAX(seq) FROM gallery_changes WHERE created_at_ms < $1 \
             AND seq < (SELECT MAX(seq) FROM gallery_changes)",
        )
        .bind(before_ms)
        .fetch_one(&mut *tx)
        .await?;
        let Some(through) = through else {
            return Ok(0);
        };
        let pruned = sqlx::query("DELETE FROM gallery_changes WHERE seq <= $1")
            .bind(through)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query("UPDATE gallery_feed SET pruned_through = $1 WHERE pruned_through < $1")
            .bind(through)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(pruned)
    }

    async fn pruned_through(&self) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT pruned_through FROM gallery_feed WHERE id = 1")
                .fetch_one(&self.pool)
                .await?,
        )
    }
}

fn change(row: &AnyRow) -> Result<GalleryChange, StoreError> {
    let seq: i64 = row.try_get("seq")?;
    let ids: String = row.try_get("template_ids")?;
    let template_ids = ids
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse()
                .map_err(|_| StoreError::Corrupt(format!("change {seq}: template id {s:?}")))
        })
        .collect::<Result<Vec<i64>, _>>()?;
    let gallery: Option<String> = row.try_get("gallery")?;
    let subject_id: Option<String> = row.try_get("subject_id")?;
    Ok(GalleryChange {
        seq,
        kind: ChangeKind::from_code(row.try_get("op")?)?,
        subject: gallery.zip(subject_id),
        model_id: row.try_get("model_id")?,
        template_ids,
        created_at_ms: row.try_get("created_at_ms")?,
    })
}
