//! The erased future shapes every registered function runs as.

use std::future::Future;
use std::pin::Pin;

/// A boxed, `Send` future: the erased shape every registered function runs as.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// A boxed, `Send` future that may borrow for `'a` (entity operations borrow their state).
pub type BoxFutureOf<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
