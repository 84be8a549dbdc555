//! Background tasks tied to the life of their owner.

use tokio::task::JoinHandle;

/// Aborts a background task when dropped.
#[derive(Debug)]
pub(crate) struct Background(pub JoinHandle<()>);

impl Drop for Background {
    fn drop(&mut self) {
        self.0.abort();
    }
}
