//! Wake-ups for the follower: a task that waits on the store's change notifications
//! (Postgres LISTEN) and turns each into a `Notify` permit, reconnecting with a pause when
//! the database is away. A permit is only a hint; the follower also polls.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::store::{TemplateStore, Wakeup};

/// Pause before listening again after the database could not be reached.
const RELISTEN_AFTER: Duration = Duration::from_secs(2);

/// Listens in a task of its own (so the follower's timer never cancels a read from the
/// connection midway) until aborted; the task ends at once on a store without
/// notifications.
pub(super) fn listen(store: TemplateStore, wake: Arc<Notify>) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match store.listen_for_changes().await {
                Ok(Some(mut listener)) => {
                    // Whatever happened before this listener existed is read now.
                    wake.notify_one();
                    loop {
                        match listener.next().await {
                            Ok(Wakeup::Changed) | Ok(Wakeup::Reconnected) => wake.notify_one(),
                            Err(e) => {
                                tracing::warn!(
                                    "change notifications lost ({e}); polling meanwhile"
                                );
                                break;
                            }
                        }
                    }
                }
                Ok(None) => return,
                Err(e) => tracing::debug!("cannot listen for changes yet: {e}"),
            }
            tokio::time::sleep(RELISTEN_AFTER).await;
        }
    })
}
