//! [`LeaseSlot`]: the lock-free, allocation-free way to track a long-lived resource that is
//! checked out again and again (a pooled connection).
//!
//! A slot is registered once, when the resource is created. Each
//! [`checkout`](LeaseSlot::checkout) / [`checkin`](LeaseSlot::checkin) pair then counts for the
//! kind exactly as a [`track`](crate::ResourceTracker::track) and a guard drop would, with a
//! handful of stores on the slot's own cache line (its counts have one writer at a time) plus
//! the kind's shared `active` counter, which keeps the peak exact.
//!
//! # The checkout word
//!
//! A slot's state is one `AtomicU64`, `generation << 3 | LEAKED | OUT | BUSY`, beside the
//! checkout's location (an index in the tracker's [`LocationTable`]) and its time (nanoseconds
//! since the tracker's epoch). A checkout is a seqlock write: the word goes `BUSY` (then a
//! release fence), the location and time are stored, and the word becomes `OUT` with a new
//! generation (release). A scan reads the word (acquire), the fields, an acquire fence and the
//! word again; it trusts the fields only when both reads show the same checkout, so it never
//! pairs one checkout's location with another's time. A scan that finds a checkout past its
//! threshold marks it `LEAKED` with a compare-exchange on the exact word it validated, and the
//! checkin *swaps* the word: exactly one of the two wins, so a checkout is counted once in
//! `leaked_total`, and in `leaked_released` exactly when it was counted there.
//!
//! # Lease groups
//!
//! A [`LeaseGroup`] is the set of slots one owner registers under one kind and label (a
//! pool's connections). Its slots share a counter of their checkouts currently counted as
//! leaked, kept by the same two events: the scan that marks a checkout `LEAKED` adds one, and
//! the checkin (or slot drop) whose swap finds `LEAKED` takes it away. So the owner reads its
//! leaked figure with one atomic load instead of a scan of every live resource.

use std::collections::HashMap;
use std::fmt;
use std::panic::Location;
use std::sync::atomic::{fence, AtomicI64, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use resync_perf_core::stripes::Padded;
use resync_perf_core::sync::lock;

use crate::kinds::{
    current_stripe, duration_to_nanos, CounterTotals, KindState, KindTable, STRIPES,
};
use crate::leaks::Leaked;
use crate::locations::{LocationTable, UNKNOWN_LOCATION};
use crate::registry::IdSequences;

/// A checkout is being written: scans skip the slot.
const BUSY: u64 = 1;
/// The resource is checked out.
const OUT: u64 = 1 << 1;
/// A scan reported this checkout as leaked.
const LEAKED: u64 = 1 << 2;
const GENERATION_SHIFT: u32 = 3;

/// Signed nanoseconds from `epoch` to `at` (a caller may give an instant it read before the
/// tracker existed), saturating at ±292 years.
fn offset_nanos(epoch: Instant, at: Instant) -> i64 {
    match at.checked_duration_since(epoch) {
        Some(after) => i64::try_from(duration_to_nanos(after)).unwrap_or(i64::MAX),
        None => i64::try_from(duration_to_nanos(epoch.duration_since(at)))
            .map_or(i64::MIN, |before| -before),
    }
}

/// Nanoseconds from the offset `since` to the offset `until`, zero when `until` is earlier.
fn nanos_between(since: i64, until: i64) -> u64 {
    u64::try_from(until.saturating_sub(since)).unwrap_or(0)
}

/// What a slot shares with the scans and stats reads: the checkout word and fields, the
/// slot's own counts, and what a report names.
///
/// The counts (`checkouts`, `checkins`, `held_nanos`) have one writer at a time, the slot's
/// current borrower (calls on a slot do not overlap), so they are bumped with a plain load and
/// store on the line the checkout writes anyway, not with a read-modify-write on a shared
/// stripe; a stats read adds them to the kind's stripes, and a dropped slot folds them in.
/// Held `Padded`, so that no other slot shares its cache lines.
#[derive(Debug)]
pub(crate) struct LeaseCell {
    word: AtomicU64,
    location: AtomicU32,
    /// The checkout's [`offset_nanos`] from the tracker's epoch.
    since_nanos: AtomicI64,
    /// The address of the `Location` whose index `location` holds: a checkout from the same
    /// line as the last one reuses the index without probing the table.
    location_addr: AtomicUsize,
    checkouts: AtomicU64,
    checkins: AtomicU64,
    held_nanos: AtomicU64,
    pub(crate) id: u64,
    kind_index: u32,
    pub(crate) kind_name: &'static str,
    pub(crate) label: String,
    /// Where the slot was created: reported when the location table is full.
    created_at: &'static Location<'static>,
    /// The leaked-checkout counter of the slot's [`LeaseGroup`], if it belongs to one.
    group_leaked: Option<Arc<AtomicU64>>,
}

/// One checkout as a scan validated it.
#[derive(Debug, Clone, Copy)]
struct Checkout {
    word: u64,
    location: u32,
    since_nanos: i64,
}

/// Adds `n` to a counter that has one writer at a time (no read-modify-write needed),
/// saturating: a slot's hold times add up to at most the time it has existed (its checkouts
/// do not overlap), far below `u64::MAX` nanoseconds (584 years), unless a caller passes
/// made-up instants to the `*_nanos` methods.
#[inline]
fn bump(counter: &AtomicU64, n: u64) {
    counter.store(
        counter.load(Ordering::Relaxed).saturating_add(n),
        Ordering::Relaxed,
    );
}

impl LeaseCell {
    /// The slot's own counts, as a kind's stripes would hold them.
    fn totals(&self) -> CounterTotals {
        CounterTotals {
            created: self.checkouts.load(Ordering::Relaxed),
            released: self.checkins.load(Ordering::Relaxed),
            released_without_close: 0,
            lifetime_total_nanos: u128::from(self.held_nanos.load(Ordering::Relaxed)),
        }
    }

    /// The current checkout, read as a seqlock reader; `None` when idle or changing.
    fn checkout(&self) -> Option<Checkout> {
        let word = self.word.load(Ordering::Acquire);
        if word & (OUT | BUSY) != OUT {
            return None;
        }
        let location = self.location.load(Ordering::Relaxed);
        let since_nanos = self.since_nanos.load(Ordering::Relaxed);
        fence(Ordering::Acquire);
        let again = self.word.load(Ordering::Relaxed);
        // A scan may have set LEAKED in between; any other change is another checkout state.
        (again & !LEAKED == word & !LEAKED).then_some(Checkout {
            word: again,
            location,
            since_nanos,
        })
    }
}

/// Every registered slot, for the scans, and what a slot needs of its tracker: the kinds, the
/// id sequences, the interned checkout locations and the epoch checkouts count from. Locked
/// only to register, unregister and scan.
#[derive(Debug)]
pub(crate) struct LeaseRegistry {
    cells: Mutex<Cells>,
    /// Spreads slots' ids over the id stripes, round robin.
    next_stripe: AtomicUsize,
    kinds: Arc<KindTable>,
    ids: Arc<IdSequences>,
    locations: LocationTable,
    /// Time zero of checkouts (they store nanoseconds since it).
    epoch: Instant,
}

/// The registered cells and the indices of vacant ones.
#[derive(Debug, Default)]
struct Cells {
    cells: Vec<Option<Arc<Padded<LeaseCell>>>>,
    vacant: Vec<u32>,
}

impl LeaseRegistry {
    pub(crate) fn new(kinds: Arc<KindTable>, ids: Arc<IdSequences>) -> Self {
        Self {
            cells: Mutex::new(Cells::default()),
            next_stripe: AtomicUsize::new(0),
            kinds,
            ids,
            locations: LocationTable::new(),
            epoch: Instant::now(),
        }
    }

    /// The instant checkouts count their nanoseconds from.
    pub(crate) fn epoch(&self) -> Instant {
        self.epoch
    }

    fn insert(&self, cell: Arc<Padded<LeaseCell>>) -> u32 {
        let mut cells = lock(&self.cells);
        if let Some(index) = cells.vacant.pop() {
            cells.cells[index as usize] = Some(cell);
            return index;
        }
        // 2^32 live slots would need far more memory than any machine has.
        let index = u32::try_from(cells.cells.len()).expect("fewer than 2^32 lease slots");
        cells.cells.push(Some(cell));
        index
    }

    /// Unregisters the cell at `index` and folds its counts (plus `without_close` releases)
    /// into `kind`, under the lock a stats read takes, so the counts are never seen twice or
    /// not at all.
    fn remove(&self, index: u32, kind: &KindState, without_close: u64) {
        let mut cells = lock(&self.cells);
        if let Some(cell) = cells.cells.get_mut(index as usize).and_then(Option::take) {
            let totals = CounterTotals {
                released_without_close: without_close,
                ..cell.totals()
            };
            kind.fold_lease(current_stripe(), totals);
            cells.vacant.push(index);
        }
    }

    /// Calls `read` with the live slots' own counts summed per kind index, under the lock
    /// that dropped slots fold their counts under: `read` must read the kinds' stripes too,
    /// and only copy (it holds the registry lock).
    pub(crate) fn totals_by_kind<R>(
        &self,
        read: impl FnOnce(&HashMap<u32, CounterTotals>) -> R,
    ) -> R {
        let cells = lock(&self.cells);
        let mut totals: HashMap<u32, CounterTotals> = HashMap::new();
        for cell in cells.cells.iter().flatten() {
            let sum = totals.entry(cell.kind_index).or_default();
            *sum = sum.plus(cell.totals());
        }
        read(&totals)
    }

    /// Visits every checkout past its kind's threshold at `now`, with whether this scan is the
    /// first to see it (then it is marked and counted in `leaked_total`). Runs under the
    /// registry lock: `on_leak` must only copy cheap fields.
    pub(crate) fn scan(
        &self,
        default_threshold: Duration,
        now: Instant,
        mut on_leak: impl FnMut(&Leaked<'_>, bool),
    ) {
        let now_nanos = offset_nanos(self.epoch, now);
        let cells = lock(&self.cells);
        for cell in cells.cells.iter().flatten() {
            let Some(checkout) = cell.checkout() else {
                continue;
            };
            let Some(kind) = self.kinds.get(cell.kind_index) else {
                continue;
            };
            let Some(threshold) = kind.threshold(default_threshold) else {
                continue;
            };
            let age = Duration::from_nanos(nanos_between(checkout.since_nanos, now_nanos));
            if age <= threshold {
                continue;
            }
            let newly = checkout.word & LEAKED == 0;
            if newly {
                // The group's count goes up before the mark, so the checkin that finds the
                // mark (and takes the count down) always comes after it: never below zero.
                if let Some(leaked) = &cell.group_leaked {
                    leaked.fetch_add(1, Ordering::Relaxed);
                }
                // Fails only when the slot was checked in (or out again) since it was read.
                if cell
                    .word
                    .compare_exchange(
                        checkout.word,
                        checkout.word | LEAKED,
                        Ordering::AcqRel,
                        Ordering::Relaxed,
                    )
                    .is_err()
                {
                    if let Some(leaked) = &cell.group_leaked {
                        leaked.fetch_sub(1, Ordering::Relaxed);
                    }
                    continue;
                }
                kind.leaked_total.fetch_add(1, Ordering::Relaxed);
            }
            let location = self
                .locations
                .get(checkout.location)
                .unwrap_or(cell.created_at);
            let leaked = Leaked::lease(
                cell.id,
                cell.kind_index,
                cell.kind_name,
                &cell.label,
                location,
                age,
            );
            on_leak(&leaked, newly);
        }
    }
}

/// A reusable tracking slot for one long-lived resource that is checked out repeatedly (one
/// pooled connection). Made by
/// [`ResourceTracker::lease_slot`](crate::ResourceTracker::lease_slot).
///
/// Each [`checkout`](Self::checkout) counts for the kind as a
/// [`track`](crate::ResourceTracker::track) would (created, active, peak) and each
/// [`checkin`](Self::checkin) as a guard closed and dropped (released, lifetime = the hold
/// time). A checkout held past the kind's threshold is reported by `leaks()`, `stats()` and the
/// scanner with the checkout's `file:line:column`, once per checkout, exactly like a guard.
/// Neither call locks nor allocates.
///
/// A slot is one resource: calls on one slot must not overlap (a pool hands a connection to
/// one borrower at a time). Overlapping calls are memory-safe but may miscount. Dropping the
/// slot unregisters it; a slot dropped while checked out counts as released without close.
#[must_use = "dropping the slot unregisters it at once"]
pub struct LeaseSlot {
    cell: Arc<Padded<LeaseCell>>,
    kind: Arc<KindState>,
    epoch: Instant,
    leases: Arc<LeaseRegistry>,
    index: u32,
}

impl fmt::Debug for LeaseSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LeaseSlot")
            .field("id", &self.cell.id)
            .field("kind", &self.cell.kind_name)
            .field("label", &self.cell.label)
            .field("checked_out", &self.is_checked_out())
            .finish_non_exhaustive()
    }
}

impl LeaseRegistry {
    /// Registers a slot of `kind` labelled `label`, counted in `group_leaked` when given (see
    /// [`ResourceTracker::lease_slot`](crate::ResourceTracker::lease_slot)).
    pub(crate) fn slot(
        self: &Arc<Self>,
        kind: &'static str,
        label: String,
        group_leaked: Option<Arc<AtomicU64>>,
        created_at: &'static Location<'static>,
    ) -> LeaseSlot {
        let (kind_index, state) = self.kinds.get_or_insert(kind);
        let stripe = self.next_stripe.fetch_add(1, Ordering::Relaxed) % STRIPES;
        let cell = Arc::new(Padded::new(LeaseCell {
            word: AtomicU64::new(0),
            location: AtomicU32::new(UNKNOWN_LOCATION),
            since_nanos: AtomicI64::new(0),
            location_addr: AtomicUsize::new(0),
            checkouts: AtomicU64::new(0),
            checkins: AtomicU64::new(0),
            held_nanos: AtomicU64::new(0),
            id: self.ids.next(stripe),
            kind_index,
            kind_name: state.name,
            label,
            created_at,
            group_leaked,
        }));
        let index = self.insert(Arc::clone(&cell));
        LeaseSlot {
            cell,
            kind: state.to_arc(),
            epoch: self.epoch,
            leases: Arc::clone(self),
            index,
        }
    }

    /// A group of slots of `kind` labelled `label` (see
    /// [`ResourceTracker::lease_group`](crate::ResourceTracker::lease_group)).
    pub(crate) fn group(self: &Arc<Self>, kind: &'static str, label: String) -> LeaseGroup {
        let (_, state) = self.kinds.get_or_insert(kind);
        LeaseGroup {
            leases: Arc::clone(self),
            kind: state.name,
            label: Arc::from(label),
            leaked: Arc::new(AtomicU64::new(0)),
        }
    }
}

/// The lease slots of one owner — one kind, one label, e.g. a pool's connections — with a
/// count of their checkouts currently leaked. Made by
/// [`ResourceTracker::lease_group`](crate::ResourceTracker::lease_group).
///
/// Every slot made by [`slot`](Self::slot) is an ordinary [`LeaseSlot`] (counted in the
/// kind's stats and reported by `leaks()` like any other) that also keeps the group's count:
/// a scan that finds one of its checkouts past the kind's threshold for the first time adds
/// one, and the checkin (or the slot's drop) of a checkout so counted takes it away. Reading
/// [`leaked_now`](Self::leaked_now) is one atomic load, where `leaks()` or `stats()` scan
/// every live resource of the tracker.
///
/// Cloning is cheap (clones share the count).
#[derive(Clone)]
pub struct LeaseGroup {
    leases: Arc<LeaseRegistry>,
    kind: &'static str,
    label: Arc<str>,
    leaked: Arc<AtomicU64>,
}

impl fmt::Debug for LeaseGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LeaseGroup")
            .field("kind", &self.kind)
            .field("label", &self.label)
            .field("leaked_now", &self.leaked_now())
            .finish_non_exhaustive()
    }
}

impl LeaseGroup {
    /// Registers a slot of the group's kind and label for one more resource (see
    /// [`ResourceTracker::lease_slot`](crate::ResourceTracker::lease_slot): a lock and an
    /// allocation, once per resource).
    #[track_caller]
    pub fn slot(&self) -> LeaseSlot {
        self.leases.slot(
            self.kind,
            self.label.to_string(),
            Some(Arc::clone(&self.leaked)),
            Location::caller(),
        )
    }

    /// Checkouts of the group's slots currently counted as leaked. Does not scan: the count
    /// is as of the tracker's last leak scan (`leaks()`, `leaks_older_than()`, `stats()`,
    /// `stats_for()`, `health()` or the [scanner](crate::ResourceTracker::spawn_leak_scanner)). A
    /// checkout enters it when a scan first sees it past the threshold, so it lags by up to
    /// one scan (and stays 0 while nothing scans); it leaves it the moment it is returned or
    /// its slot dropped. A counted checkout stays counted until then, even if the kind's
    /// threshold is raised meanwhile.
    #[must_use]
    pub fn leaked_now(&self) -> u64 {
        self.leaked.load(Ordering::Relaxed)
    }

    /// The group's kind.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// The group's label (every slot's label).
    #[must_use]
    pub fn label(&self) -> &str {
        &self.label
    }
}

impl LeaseSlot {
    /// Marks the resource checked out by the code at `location` at time `at` (the caller
    /// already read the clock). No lock, no allocation: a few atomic stores and the kind's
    /// counters (the first checkout from a new source line interns it, once per tracker).
    ///
    /// Checking out a slot that is already checked out first checks it in at `at`.
    pub fn checkout(&self, location: &'static Location<'static>, at: Instant) {
        self.checkout_nanos(location, offset_nanos(self.epoch, at));
    }

    /// [`checkout`](Self::checkout) at `at_nanos` nanoseconds since [`epoch`](Self::epoch)
    /// (negative: before it), for a caller that keeps its own clock aligned with the
    /// tracker's — e.g. a cheaper counter-based one read on every checkout anyway.
    pub fn checkout_nanos(&self, location: &'static Location<'static>, at_nanos: i64) {
        let cell = &*self.cell;
        let mut word = cell.word.load(Ordering::Relaxed);
        if word & OUT != 0 {
            self.finish(at_nanos, true);
            word = cell.word.load(Ordering::Relaxed);
        }
        // Read and written only by the slot's borrower, like the counts.
        let address = std::ptr::from_ref(location) as usize;
        let location = if cell.location_addr.load(Ordering::Relaxed) == address {
            cell.location.load(Ordering::Relaxed)
        } else {
            cell.location_addr.store(address, Ordering::Relaxed);
            self.leases.locations.index_of(location)
        };
        let generation = (word >> GENERATION_SHIFT).wrapping_add(1) << GENERATION_SHIFT;
        // Seqlock write: BUSY, fence, fields, then the new checked-out word (release).
        cell.word.store(generation | BUSY, Ordering::Relaxed);
        fence(Ordering::Release);
        cell.location.store(location, Ordering::Relaxed);
        cell.since_nanos.store(at_nanos, Ordering::Relaxed);
        cell.word.store(generation | OUT, Ordering::Release);
        bump(&cell.checkouts, 1);
        self.kind.activate();
    }

    /// Marks the resource returned at `at`: counts a deliberate close (released, not
    /// "released without close") with the hold time as the lifetime. Nothing happens when the
    /// slot is not checked out.
    pub fn checkin(&self, at: Instant) {
        self.finish(offset_nanos(self.epoch, at), true);
    }

    /// [`checkin`](Self::checkin) at `at_nanos` nanoseconds since [`epoch`](Self::epoch).
    pub fn checkin_nanos(&self, at_nanos: i64) {
        self.finish(at_nanos, true);
    }

    /// The instant the tracker counts time from: the `*_nanos` methods take nanoseconds
    /// since it, and the leak scanner measures checkouts against it.
    #[must_use]
    pub fn epoch(&self) -> Instant {
        self.epoch
    }

    /// Ends the current checkout, if any, at `at_nanos` since the epoch; returns whether
    /// there was one. `closed` only says how a leak report logs it: the caller counts a
    /// release without close.
    fn finish(&self, at_nanos: i64, closed: bool) -> bool {
        let cell = &*self.cell;
        let word = cell.word.load(Ordering::Relaxed);
        if word & OUT == 0 {
            return false;
        }
        let hold = nanos_between(cell.since_nanos.load(Ordering::Relaxed), at_nanos);
        // A swap, not a store: it and a scan's LEAKED compare-exchange are ordered, so the
        // checkin knows for sure whether that scan counted this checkout as a leak.
        let previous = cell
            .word
            .swap(word & !(OUT | LEAKED | BUSY), Ordering::AcqRel);
        bump(&cell.checkins, 1);
        bump(&cell.held_nanos, hold);
        self.kind.deactivate(hold);
        if previous & LEAKED != 0 {
            self.leak_released(hold, closed);
        }
        true
    }

    #[cold]
    fn leak_released(&self, hold_nanos: u64, closed: bool) {
        self.kind.leaked_released.fetch_add(1, Ordering::Relaxed);
        if let Some(leaked) = &self.cell.group_leaked {
            leaked.fetch_sub(1, Ordering::Relaxed);
        }
        let location = self
            .leases
            .locations
            .get(self.cell.location.load(Ordering::Relaxed))
            .unwrap_or(self.cell.created_at);
        tracing::info!(
            kind = self.cell.kind_name,
            label = %self.cell.label,
            acquired_at = %location,
            lifetime_secs = Duration::from_nanos(hold_nanos).as_secs_f64(),
            closed,
            "leaked resource released"
        );
    }

    /// Whether the resource is checked out now.
    #[must_use]
    pub fn is_checked_out(&self) -> bool {
        self.cell.word.load(Ordering::Acquire) & OUT != 0
    }

    /// Whether a scan reported the current checkout as leaked. Reading it does not scan.
    #[must_use]
    pub fn is_leaked(&self) -> bool {
        self.cell.word.load(Ordering::Acquire) & (OUT | LEAKED) == OUT | LEAKED
    }

    /// The slot's id, unique within its tracker (it names the slot in leak reports).
    #[must_use]
    pub fn id(&self) -> u64 {
        self.cell.id
    }

    /// The slot's kind.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        self.cell.kind_name
    }
}

impl Drop for LeaseSlot {
    fn drop(&mut self) {
        let was_out = self.finish(offset_nanos(self.epoch, Instant::now()), false);
        self.leases
            .remove(self.index, &self.kind, u64::from(was_out));
    }
}
