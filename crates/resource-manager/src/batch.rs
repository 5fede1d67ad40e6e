//! [`Batch`]: several resources of different kinds acquired as one unit, rolled back in
//! reverse order when an acquisition fails, closed together in reverse order.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{BatchError, BoxError, CloseFailure};
use crate::managed::{Managed, ManagedResource};

type CloseFuture = Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send>>;

/// A type-erased batch member: something that can be closed and downcast.
trait BatchItem: Send {
    fn close(self: Box<Self>) -> CloseFuture;
    fn as_any(&self) -> &dyn Any;
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

impl<T: ManagedResource> BatchItem for Managed<T> {
    fn close(self: Box<Self>) -> CloseFuture {
        Box::pin(async move { Managed::close(*self).await.map_err(BoxError::from) })
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

struct Member {
    step: String,
    item: Box<dyn BatchItem>,
}

/// Source of [`Batch`] ids. An id generator, not shared state: it only makes every batch of
/// the process distinguishable, so a slot of one batch is never honoured by another.
static NEXT_BATCH_ID: AtomicU64 = AtomicU64::new(1);

/// Typed handle to a resource held by a [`Batch`] (returned by [`Batch::acquire`] and
/// [`Batch::push`]).
///
/// It names its batch and the batch's generation: used on another batch, or on its own batch
/// after a rollback emptied it, [`Batch::get`] and [`Batch::get_mut`] return `None` instead of
/// whatever now sits at the same position.
pub struct BatchSlot<T> {
    batch: u64,
    generation: u64,
    index: usize,
    _resource: PhantomData<fn() -> T>,
}

impl<T> BatchSlot<T> {
    /// Zero-based position of the resource in its batch.
    #[must_use]
    pub fn index(&self) -> usize {
        self.index
    }
}

impl<T> Clone for BatchSlot<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for BatchSlot<T> {}

impl<T> fmt::Debug for BatchSlot<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BatchSlot")
            .field("batch", &self.batch)
            .field("generation", &self.generation)
            .field("index", &self.index)
            .finish()
    }
}

/// Resources of different kinds held as one unit.
///
/// - [`acquire`](Self::acquire) adds one resource per step; when a step fails, the resources
///   already held are closed in reverse order (rollback) and the error names the failed step
///   and any close that failed during the rollback. The batch is then empty.
/// - [`close_all`](Self::close_all) closes every resource in reverse order and reports every
///   failure, never stopping at the first.
/// - Dropping a non-empty batch drops its resources in reverse order: each counts as a release
///   without close, is logged with its acquiring line and cleaned up best-effort, as for
///   [`Managed`].
pub struct Batch {
    /// Unique in the process (from [`NEXT_BATCH_ID`]).
    id: u64,
    /// Changes on every rollback, so slots handed out before it stop resolving.
    generation: u64,
    members: Vec<Member>,
}

impl Default for Batch {
    fn default() -> Self {
        Self {
            id: NEXT_BATCH_ID.fetch_add(1, Ordering::Relaxed),
            generation: 0,
            members: Vec::new(),
        }
    }
}

impl fmt::Debug for Batch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Batch")
            .field("id", &self.id)
            .field("generation", &self.generation)
            .field("steps", &self.steps().collect::<Vec<_>>())
            .finish()
    }
}

impl Batch {
    /// An empty batch.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// How many resources the batch holds.
    #[must_use]
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether the batch holds no resource.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Step names of the held resources, in acquisition order.
    pub fn steps(&self) -> impl Iterator<Item = &str> {
        self.members.iter().map(|member| member.step.as_str())
    }

    /// Runs `acquisition` as step `step`. On success the resource joins the batch; on failure
    /// the batch is rolled back (see [`Batch`]) and [`BatchError::Acquire`] is returned.
    pub async fn acquire<T, E, F>(
        &mut self,
        step: impl Into<String>,
        acquisition: F,
    ) -> Result<BatchSlot<T>, BatchError>
    where
        T: ManagedResource,
        E: Into<BoxError>,
        F: Future<Output = Result<Managed<T>, E>>,
    {
        let step = step.into();
        match acquisition.await {
            Ok(resource) => Ok(self.push(step, resource)),
            Err(error) => {
                let index = self.members.len();
                let source = error.into();
                tracing::warn!(
                    index,
                    step = %step,
                    error = %source,
                    held = index,
                    "batch acquisition failed; rolling back"
                );
                let rollback_failures = self.close_members().await;
                // Slots handed out before the rollback must not resolve to later members.
                self.generation = self.generation.wrapping_add(1);
                Err(BatchError::Acquire {
                    index,
                    step,
                    source,
                    rollback_failures,
                })
            }
        }
    }

    /// Adds a resource acquired elsewhere as step `step`.
    pub fn push<T: ManagedResource>(
        &mut self,
        step: impl Into<String>,
        resource: Managed<T>,
    ) -> BatchSlot<T> {
        let index = self.members.len();
        self.members.push(Member {
            step: step.into(),
            item: Box::new(resource),
        });
        BatchSlot {
            batch: self.id,
            generation: self.generation,
            index,
            _resource: PhantomData,
        }
    }

    /// Whether `slot` was handed out by this batch since its last rollback.
    fn owns<T>(&self, slot: BatchSlot<T>) -> bool {
        slot.batch == self.id && slot.generation == self.generation
    }

    /// The resource behind `slot`; `None` when the slot comes from another batch or from
    /// before a rollback of this one.
    #[must_use]
    pub fn get<T: ManagedResource>(&self, slot: BatchSlot<T>) -> Option<&Managed<T>> {
        if !self.owns(slot) {
            return None;
        }
        self.members
            .get(slot.index)?
            .item
            .as_any()
            .downcast_ref::<Managed<T>>()
    }

    /// The resource behind `slot`, mutably (`None` as for [`get`](Self::get)).
    #[must_use]
    pub fn get_mut<T: ManagedResource>(&mut self, slot: BatchSlot<T>) -> Option<&mut Managed<T>> {
        if !self.owns(slot) {
            return None;
        }
        self.members
            .get_mut(slot.index)?
            .item
            .as_any_mut()
            .downcast_mut::<Managed<T>>()
    }

    /// Closes every resource in reverse acquisition order; [`BatchError::Close`] lists every
    /// failed close.
    pub async fn close_all(mut self) -> Result<(), BatchError> {
        let attempted = self.members.len();
        let failures = self.close_members().await;
        if failures.is_empty() {
            Ok(())
        } else {
            Err(BatchError::Close {
                attempted,
                failures,
            })
        }
    }

    /// Closes and removes every member, last first, collecting each failure.
    async fn close_members(&mut self) -> Vec<CloseFailure> {
        let mut failures = Vec::new();
        while let Some(member) = self.members.pop() {
            let index = self.members.len();
            if let Err(error) = member.item.close().await {
                failures.push(CloseFailure {
                    index,
                    step: member.step,
                    error,
                });
            }
        }
        failures
    }
}

impl Drop for Batch {
    fn drop(&mut self) {
        if self.members.is_empty() {
            return;
        }
        tracing::warn!(
            held = self.members.len(),
            steps = ?self.steps().collect::<Vec<_>>(),
            "batch dropped without close_all; its resources are cleaned up best-effort"
        );
        // Reverse order, like close_all; each Managed logs and counts its own drop.
        while let Some(member) = self.members.pop() {
            drop(member);
        }
    }
}
