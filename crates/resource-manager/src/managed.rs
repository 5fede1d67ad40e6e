//! [`Managed`] and [`SyncManaged`]: a resource held together with its [`ResourceGuard`],
//! closed deterministically by `close()`, cleaned up best-effort when dropped without it.

use std::fmt;
use std::future::Future;
use std::io;
use std::ops::{Deref, DerefMut};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::guard::ResourceGuard;
use crate::tracker::ResourceTracker;

/// A resource with an asynchronous close (flush, sync, shutdown, goodbye message…).
pub trait ManagedResource: Send + Sized + 'static {
    /// The close error.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Closes the resource, returning the first thing that went wrong.
    fn close(self) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Synchronous best-effort cleanup, used when a [`Managed`] is dropped without `close()`
    /// and no tokio runtime is current (with one, `close()` is spawned on it instead). The
    /// default drops the resource, which releases its operating-system handle.
    fn cleanup_sync(self) {
        drop(self);
    }
}

/// A resource with a blocking close, for synchronous code.
pub trait SyncManagedResource: Send + Sized + 'static {
    /// The close error.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Closes the resource, returning the first thing that went wrong.
    fn close(self) -> Result<(), Self::Error>;

    /// Best-effort cleanup when a [`SyncManaged`] is dropped without `close()`. The default
    /// runs `close()`; its error is logged.
    fn cleanup_on_drop(self) -> Result<(), Self::Error> {
        self.close()
    }
}

/// An async resource plus its tracking guard. Derefs to the resource.
///
/// `close().await` is the deterministic path. Dropping it without `close()` counts a release
/// without close, logs a warning naming the kind, label and acquiring source line, and cleans
/// up best-effort: `close()` is spawned on the current tokio runtime when there is one,
/// otherwise [`ManagedResource::cleanup_sync`] runs. It never panics outside a runtime.
#[derive(Debug)]
pub struct Managed<T: ManagedResource> {
    // Both are `Some` until `close`, `into_parts` or `drop` take them.
    resource: Option<T>,
    guard: Option<ResourceGuard>,
}

impl<T: ManagedResource> Managed<T> {
    /// Tracks `resource` as `kind` with `label`, acquired at the caller's source line.
    #[track_caller]
    pub fn new(
        tracker: &ResourceTracker,
        kind: &'static str,
        label: impl Into<String>,
        resource: T,
    ) -> Self {
        Self::with_guard(resource, tracker.track(kind, label))
    }

    /// Pairs a resource with a guard obtained elsewhere (e.g. from `track_at` or `try_track`).
    pub fn with_guard(resource: T, guard: ResourceGuard) -> Self {
        Self {
            resource: Some(resource),
            guard: Some(guard),
        }
    }

    /// The resource's tracking guard.
    pub fn guard(&self) -> &ResourceGuard {
        self.guard
            .as_ref()
            .expect("the guard is present until close, into_parts or drop")
    }

    /// Closes the resource and records a deliberate close (also when the close fails: the
    /// attempt was made and its error is returned).
    pub async fn close(mut self) -> Result<(), T::Error> {
        let resource = self
            .resource
            .take()
            .expect("the resource is present until close, into_parts or drop");
        let mut guard = self
            .guard
            .take()
            .expect("the guard is present until close, into_parts or drop");
        let result = resource.close().await;
        guard.mark_closed();
        if let Err(error) = &result {
            tracing::warn!(
                kind = guard.kind(),
                label = %guard.label(),
                acquired_at = %guard.acquired_at(),
                error = %error,
                "closing resource failed"
            );
        }
        result
    }

    /// Takes the resource and its guard apart without closing (the caller takes over both).
    pub fn into_parts(mut self) -> (T, ResourceGuard) {
        let resource = self
            .resource
            .take()
            .expect("the resource is present until close, into_parts or drop");
        let guard = self
            .guard
            .take()
            .expect("the guard is present until close, into_parts or drop");
        (resource, guard)
    }
}

impl<T: ManagedResource> Deref for Managed<T> {
    type Target = T;

    fn deref(&self) -> &T {
        self.resource
            .as_ref()
            .expect("the resource is present until close, into_parts or drop")
    }
}

impl<T: ManagedResource> DerefMut for Managed<T> {
    fn deref_mut(&mut self) -> &mut T {
        self.resource
            .as_mut()
            .expect("the resource is present until close, into_parts or drop")
    }
}

impl<T: ManagedResource> Drop for Managed<T> {
    fn drop(&mut self) {
        let (Some(resource), Some(guard)) = (self.resource.take(), self.guard.take()) else {
            return;
        };
        let kind = guard.kind();
        let label = guard.label();
        let acquired_at = guard.acquired_at();
        tracing::warn!(
            kind,
            label = %label,
            acquired_at = %acquired_at,
            age_secs = guard.age().as_secs_f64(),
            "resource dropped without close; cleaning up best-effort"
        );
        // The release (without close) is recorded now; the cleanup is best-effort.
        drop(guard);
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    if let Err(error) = resource.close().await {
                        tracing::warn!(
                            kind,
                            label = %label,
                            acquired_at = %acquired_at,
                            error = %error,
                            "background close of a dropped resource failed"
                        );
                    }
                });
            }
            Err(_) => resource.cleanup_sync(),
        }
    }
}

impl<T: ManagedResource + AsyncRead + Unpin> AsyncRead for Managed<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut **self.get_mut()).poll_read(cx, buf)
    }
}

impl<T: ManagedResource + AsyncWrite + Unpin> AsyncWrite for Managed<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut **self.get_mut()).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut **self.get_mut()).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut **self.get_mut()).poll_shutdown(cx)
    }
}

/// A blocking resource plus its tracking guard. Derefs to the resource.
///
/// `close()` is the deterministic path. Dropping it without `close()` counts a release
/// without close, logs a warning with the acquiring source line and runs
/// [`SyncManagedResource::cleanup_on_drop`] (logging its error).
pub struct SyncManaged<T: SyncManagedResource> {
    // Both are `Some` until `close`, `into_parts` or `drop` take them.
    resource: Option<T>,
    guard: Option<ResourceGuard>,
}

impl<T: SyncManagedResource + fmt::Debug> fmt::Debug for SyncManaged<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SyncManaged")
            .field("resource", &self.resource)
            .field("guard", &self.guard)
            .finish()
    }
}

impl<T: SyncManagedResource> SyncManaged<T> {
    /// Tracks `resource` as `kind` with `label`, acquired at the caller's source line.
    #[track_caller]
    pub fn new(
        tracker: &ResourceTracker,
        kind: &'static str,
        label: impl Into<String>,
        resource: T,
    ) -> Self {
        Self::with_guard(resource, tracker.track(kind, label))
    }

    /// Pairs a resource with a guard obtained elsewhere.
    pub fn with_guard(resource: T, guard: ResourceGuard) -> Self {
        Self {
            resource: Some(resource),
            guard: Some(guard),
        }
    }

    /// The resource's tracking guard.
    pub fn guard(&self) -> &ResourceGuard {
        self.guard
            .as_ref()
            .expect("the guard is present until close, into_parts or drop")
    }

    /// Closes the resource and records a deliberate close (also when the close fails).
    pub fn close(mut self) -> Result<(), T::Error> {
        let resource = self
            .resource
            .take()
            .expect("the resource is present until close, into_parts or drop");
        let mut guard = self
            .guard
            .take()
            .expect("the guard is present until close, into_parts or drop");
        let result = resource.close();
        guard.mark_closed();
        result
    }

    /// Takes the resource and its guard apart without closing.
    pub fn into_parts(mut self) -> (T, ResourceGuard) {
        let resource = self
            .resource
            .take()
            .expect("the resource is present until close, into_parts or drop");
        let guard = self
            .guard
            .take()
            .expect("the guard is present until close, into_parts or drop");
        (resource, guard)
    }
}

impl<T: SyncManagedResource> Deref for SyncManaged<T> {
    type Target = T;

    fn deref(&self) -> &T {
        self.resource
            .as_ref()
            .expect("the resource is present until close, into_parts or drop")
    }
}

impl<T: SyncManagedResource> DerefMut for SyncManaged<T> {
    fn deref_mut(&mut self) -> &mut T {
        self.resource
            .as_mut()
            .expect("the resource is present until close, into_parts or drop")
    }
}

impl<T: SyncManagedResource> Drop for SyncManaged<T> {
    fn drop(&mut self) {
        let (Some(resource), Some(guard)) = (self.resource.take(), self.guard.take()) else {
            return;
        };
        let kind = guard.kind();
        let label = guard.label();
        let acquired_at = guard.acquired_at();
        tracing::warn!(
            kind,
            label = %label,
            acquired_at = %acquired_at,
            age_secs = guard.age().as_secs_f64(),
            "resource dropped without close; cleaning up best-effort"
        );
        drop(guard);
        if let Err(error) = resource.cleanup_on_drop() {
            tracing::warn!(
                kind,
                label = %label,
                acquired_at = %acquired_at,
                error = %error,
                "cleanup of a dropped resource failed"
            );
        }
    }
}

impl<T: SyncManagedResource + io::Read> io::Read for SyncManaged<T> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (**self).read(buf)
    }
}

impl<T: SyncManagedResource + io::Write> io::Write for SyncManaged<T> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (**self).write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        (**self).flush()
    }
}

impl<T: SyncManagedResource + io::Seek> io::Seek for SyncManaged<T> {
    fn seek(&mut self, pos: io::SeekFrom) -> io::Result<u64> {
        (**self).seek(pos)
    }
}
