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

/// A resource and its guard, held together until `close`, `into_parts` or `drop` takes them.
struct Held<T>(Option<(T, ResourceGuard)>);

/// Why [`Held`] cannot be empty: only `close`, `into_parts` and `drop` empty it, and the first
/// two consume the wrapper, so nothing can observe it afterwards.
const PRESENT: &str = "the resource is present until close, into_parts or drop";

impl<T> Held<T> {
    fn new(resource: T, guard: ResourceGuard) -> Self {
        Self(Some((resource, guard)))
    }

    fn resource(&self) -> &T {
        &self.0.as_ref().expect(PRESENT).0
    }

    fn resource_mut(&mut self) -> &mut T {
        &mut self.0.as_mut().expect(PRESENT).0
    }

    fn guard(&self) -> &ResourceGuard {
        &self.0.as_ref().expect(PRESENT).1
    }

    /// Takes both out (by `close` and `into_parts`, which consume the wrapper).
    fn take(&mut self) -> (T, ResourceGuard) {
        self.0.take().expect(PRESENT)
    }

    /// For `drop`: takes both out if `close` or `into_parts` did not, logs the drop without
    /// close and records the release (without close), and returns the resource to clean up
    /// with what the cleanup's own failure log needs.
    fn abandon(&mut self) -> Option<(T, Abandoned)> {
        let (resource, guard) = self.0.take()?;
        let abandoned = Abandoned {
            kind: guard.kind(),
            label: guard.label(),
            acquired_at: guard.acquired_at(),
        };
        tracing::warn!(
            kind = abandoned.kind,
            label = %abandoned.label,
            acquired_at = %abandoned.acquired_at,
            age_secs = guard.age().as_secs_f64(),
            "resource dropped without close; cleaning up best-effort"
        );
        // The release (without close) is recorded now; the cleanup is best-effort.
        drop(guard);
        Some((resource, abandoned))
    }

    fn fmt(&self, name: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result
    where
        T: fmt::Debug,
    {
        let held = self.0.as_ref();
        f.debug_struct(name)
            .field("resource", &held.map(|(resource, _)| resource))
            .field("guard", &held.map(|(_, guard)| guard))
            .finish()
    }
}

/// Records a deliberate close (also when it failed: the attempt was made) and logs its error.
fn finish_close<E: fmt::Display>(mut guard: ResourceGuard, result: &Result<(), E>) {
    guard.mark_closed();
    if let Err(error) = result {
        tracing::warn!(
            kind = guard.kind(),
            label = %guard.label(),
            acquired_at = %guard.acquired_at(),
            error = %error,
            "closing resource failed"
        );
    }
}

/// What the log of a failed cleanup names, kept after the guard of a dropped resource is gone.
struct Abandoned {
    kind: &'static str,
    label: String,
    acquired_at: &'static std::panic::Location<'static>,
}

impl Abandoned {
    /// Logs that the best-effort `cleanup` ("background close", "cleanup") of the dropped
    /// resource failed with `error`.
    fn cleanup_failed(&self, cleanup: &str, error: &dyn fmt::Display) {
        tracing::warn!(
            kind = self.kind,
            label = %self.label,
            acquired_at = %self.acquired_at,
            error = %error,
            "{cleanup} of a dropped resource failed"
        );
    }
}

/// What [`Managed`] and [`SyncManaged`] share, written once for both: the constructors, the
/// guard and parts accessors, `Debug` and `Deref` over their [`Held`] resource and guard.
/// Only closing differs (awaited or blocking, on `close()` and on drop), so each type writes
/// just that.
macro_rules! held_wrapper {
    ($wrapper:ident, $resource:ident) => {
        impl<T: $resource + fmt::Debug> fmt::Debug for $wrapper<T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.held.fmt(stringify!($wrapper), f)
            }
        }

        impl<T: $resource> $wrapper<T> {
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

            /// Pairs a resource with a guard obtained elsewhere (e.g. from `track_at` or
            /// `try_track`).
            pub fn with_guard(resource: T, guard: ResourceGuard) -> Self {
                Self {
                    held: Held::new(resource, guard),
                }
            }

            /// The resource's tracking guard.
            pub fn guard(&self) -> &ResourceGuard {
                self.held.guard()
            }

            /// Takes the resource and its guard apart without closing (the caller takes over
            /// both).
            pub fn into_parts(mut self) -> (T, ResourceGuard) {
                self.held.take()
            }
        }

        impl<T: $resource> Deref for $wrapper<T> {
            type Target = T;

            fn deref(&self) -> &T {
                self.held.resource()
            }
        }

        impl<T: $resource> DerefMut for $wrapper<T> {
            fn deref_mut(&mut self) -> &mut T {
                self.held.resource_mut()
            }
        }
    };
}

held_wrapper!(Managed, ManagedResource);
held_wrapper!(SyncManaged, SyncManagedResource);

/// An async resource plus its tracking guard. Derefs to the resource.
///
/// `close().await` is the deterministic path. Dropping it without `close()` counts a release
/// without close, logs a warning naming the kind, label and acquiring source line, and cleans
/// up best-effort: `close()` is spawned on the current tokio runtime when there is one,
/// otherwise [`ManagedResource::cleanup_sync`] runs. It never panics outside a runtime.
pub struct Managed<T: ManagedResource> {
    held: Held<T>,
}

impl<T: ManagedResource> Managed<T> {
    /// Closes the resource and records a deliberate close (also when the close fails: the
    /// attempt was made, its error is logged and returned).
    pub async fn close(mut self) -> Result<(), T::Error> {
        let (resource, guard) = self.held.take();
        let result = resource.close().await;
        finish_close(guard, &result);
        result
    }
}

impl<T: ManagedResource> Drop for Managed<T> {
    fn drop(&mut self) {
        let Some((resource, abandoned)) = self.held.abandon() else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    if let Err(error) = resource.close().await {
                        abandoned.cleanup_failed("background close", &error);
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
    held: Held<T>,
}

impl<T: SyncManagedResource> SyncManaged<T> {
    /// Closes the resource and records a deliberate close (also when the close fails: the
    /// attempt was made, its error is logged and returned).
    pub fn close(mut self) -> Result<(), T::Error> {
        let (resource, guard) = self.held.take();
        let result = resource.close();
        finish_close(guard, &result);
        result
    }
}

impl<T: SyncManagedResource> Drop for SyncManaged<T> {
    fn drop(&mut self) {
        let Some((resource, abandoned)) = self.held.abandon() else {
            return;
        };
        if let Err(error) = resource.cleanup_on_drop() {
            abandoned.cleanup_failed("cleanup", &error);
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
