//! Wake-ups for live pulls: one `tokio::sync::watch` channel per user with a waiting pull.
//!
//! A live pull subscribes *before* it reads the changes, so a commit between its read and its
//! wait still wakes it. A commit calls [`Notifier::notify`] after it is durable; users with no
//! waiter cost nothing (no entry). A waiter is a task parked on a channel: no thread, a few
//! hundred bytes.
//!
//! Credentials have a channel of their own: when a token is rotated or a user removed (by a
//! `user` command of any process, seen by [`watch_credentials`]), every waiting pull checks its
//! token again and answers 401 if it no longer names its user.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use std::time::Duration;

use tokio::sync::watch;

use crate::storage::Storage;

/// The key of a user's channel (the user's id in storage).
pub type UserKey = i64;

/// The per-user channels of one server process.
pub struct Notifier {
    channels: Mutex<HashMap<UserKey, watch::Sender<u64>>>,
    /// Bumped whenever a token or user may have been revoked.
    credentials: watch::Sender<u64>,
}

impl Default for Notifier {
    fn default() -> Self {
        Notifier {
            channels: Mutex::default(),
            credentials: watch::Sender::new(0),
        }
    }
}

impl Notifier {
    pub fn new() -> Arc<Notifier> {
        Arc::new(Notifier::default())
    }

    /// Starts listening for changes of `user`; changes committed from now on wake it.
    pub fn subscribe(self: &Arc<Self>, user: UserKey) -> Subscription {
        let receiver = {
            let mut channels = self.lock();
            match channels.get(&user) {
                Some(sender) => sender.subscribe(),
                None => {
                    let (sender, receiver) = watch::channel(0);
                    channels.insert(user, sender);
                    receiver
                }
            }
        };
        Subscription {
            notifier: self.clone(),
            user,
            receiver: Some(receiver),
        }
    }

    /// Wakes every waiting pull of `user`.
    pub fn notify(&self, user: UserKey) {
        if let Some(sender) = self.lock().get(&user) {
            sender.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    /// Wakes every waiting pull (e.g. after missing notifications from other processes).
    pub fn notify_all(&self) {
        for sender in self.lock().values() {
            sender.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    /// Tells every waiting pull to check its token again.
    pub fn credentials_changed(&self) {
        self.credentials.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Resolves at the next [`Notifier::credentials_changed`] after this call.
    pub fn credentials(&self) -> watch::Receiver<u64> {
        self.credentials.subscribe()
    }

    /// How many users have a waiting pull (for tests and logs).
    pub fn users_waiting(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<UserKey, watch::Sender<u64>>> {
        self.channels
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// One waiting pull's registration; dropping it removes the user's channel when it was the
/// last one.
pub struct Subscription {
    notifier: Arc<Notifier>,
    user: UserKey,
    receiver: Option<watch::Receiver<u64>>,
}

impl Subscription {
    /// Resolves at the next change of the user after the last call (or after subscribing).
    pub async fn changed(&mut self) {
        match self.receiver.as_mut() {
            Some(receiver) => {
                if receiver.changed().await.is_err() {
                    // The sender is only dropped with the notifier: nothing will come.
                    std::future::pending::<()>().await;
                }
            }
            None => std::future::pending::<()>().await,
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut channels = self.notifier.lock();
        drop(self.receiver.take());
        if channels
            .get(&self.user)
            .is_some_and(|sender| sender.receiver_count() == 0)
        {
            channels.remove(&self.user);
        }
    }
}

/// How often [`watch_credentials`] asks the storage whether credentials changed.
pub const CREDENTIALS_POLL: Duration = Duration::from_millis(250);

/// Runs until the process stops: whenever the storage's credentials version moves (a token
/// rotated or a user removed, by this process or a `tasksync-server user` command), wakes
/// every waiting pull to check its token again. A poll of one settings row every
/// [`CREDENTIALS_POLL`], so revocation reaches open requests within a second on every backend
/// and every process (PostgreSQL also sends a notification, which is quicker still).
pub async fn watch_credentials(storage: Arc<dyn Storage>, notifier: Arc<Notifier>) {
    let mut known = None;
    loop {
        match storage.credentials_version().await {
            Ok(version) => {
                if known.is_some_and(|known| known != version) {
                    tracing::debug!("credentials changed; waiting pulls check their tokens");
                    notifier.credentials_changed();
                }
                known = Some(version);
            }
            Err(error) => tracing::debug!("cannot read the credentials version: {error}"),
        }
        tokio::time::sleep(CREDENTIALS_POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_change_wakes_only_its_users_waiters_and_channels_go_away() {
        let notifier = Notifier::new();
        let mut alice = notifier.subscribe(1);
        let mut bob = notifier.subscribe(2);
        notifier.notify(1);
        tokio::time::timeout(Duration::from_secs(5), alice.changed())
            .await
            .expect("alice woken");
        assert!(
            tokio::time::timeout(Duration::from_millis(20), bob.changed())
                .await
                .is_err(),
            "bob must not wake for alice's change"
        );
        assert_eq!(notifier.users_waiting(), 2);
        drop(alice);
        drop(bob);
        assert_eq!(notifier.users_waiting(), 0);
        // Nobody waits: notifying is a no-op.
        notifier.notify(1);
        notifier.notify_all();
    }
}
