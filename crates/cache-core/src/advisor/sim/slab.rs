//! The simulator's entries: a vector of slots linked by index into an access-order and a
//! write-order list, with a free list; no allocation once the vector has grown.

/// The end of a list.
pub(super) const NIL: u32 = u32::MAX;

/// Links of one list through the slab.
#[derive(Debug, Clone, Copy)]
pub(super) struct Links {
    pub(super) prev: u32,
    pub(super) next: u32,
}

const UNLINKED: Links = Links {
    prev: NIL,
    next: NIL,
};

/// Head and tail of a list; the head is the LRU (or oldest-write) end.
#[derive(Debug, Clone, Copy)]
pub(super) struct List {
    pub(super) head: u32,
    pub(super) tail: u32,
}

const EMPTY: List = List {
    head: NIL,
    tail: NIL,
};

/// Which of an entry's two lists.
#[derive(Debug, Clone, Copy)]
pub(super) enum Order {
    /// moka's probation access-order deque: LRU for eviction, idle order for TTI.
    Access,
    /// moka's write-order deque, kept only with a TTL.
    Write,
}

/// One entry. `entry_gen` counts writes, `policy_gen` the writes applied; they differ while
/// a write is queued (moka's `is_dirty`).
#[derive(Debug, Clone)]
pub(super) struct Slot {
    pub(super) key: u64,
    pub(super) weight: u32,
    pub(super) access: Links,
    pub(super) write: Links,
    pub(super) entry_gen: u16,
    pub(super) policy_gen: u16,
    pub(super) admitted: bool,
    pub(super) alive: bool,
    pub(super) last_modified: u64,
    pub(super) last_accessed: u64,
}

/// Entries in a vector, linked by index, with a free list (through `access.next`).
#[derive(Debug)]
pub(super) struct Slab {
    slots: Vec<Slot>,
    free: u32,
    /// moka's probation access-order deque: LRU at the head.
    pub(super) access: List,
    /// moka's write-order deque (only with a TTL): oldest write at the head.
    pub(super) write: List,
}

impl Slab {
    /// No entries.
    pub(super) fn new() -> Self {
        Self {
            slots: Vec::new(),
            free: NIL,
            access: EMPTY,
            write: EMPTY,
        }
    }

    /// Forgets every entry, keeping the vector's room.
    pub(super) fn clear(&mut self) {
        self.slots.clear();
        self.free = NIL;
        self.access = EMPTY;
        self.write = EMPTY;
    }

    /// A new, live, not yet admitted entry.
    pub(super) fn allocate(&mut self, key: u64, weight: u32, now: u64) -> u32 {
        let slot = Slot {
            key,
            weight,
            access: UNLINKED,
            write: UNLINKED,
            entry_gen: 1,
            policy_gen: 0,
            admitted: false,
            alive: true,
            last_modified: now,
            last_accessed: now,
        };
        if self.free == NIL {
            let index = u32::try_from(self.slots.len()).expect("fewer than 2³² entries");
            self.slots.push(slot);
            index
        } else {
            let index = self.free;
            self.free = self.slots[index as usize].access.next;
            self.slots[index as usize] = slot;
            index
        }
    }

    /// Returns a slot, already out of both lists, to the free list.
    pub(super) fn release(&mut self, index: u32) {
        let slot = &mut self.slots[index as usize];
        slot.alive = false;
        slot.admitted = false;
        slot.access.next = self.free;
        self.free = index;
    }

    /// The entry at `index`.
    /// Slots allocated so far, alive or free (tests walk them).
    #[cfg(test)]
    pub(super) fn len(&self) -> u32 {
        u32::try_from(self.slots.len()).expect("fewer than 2³² entries")
    }

    /// The free list, head first (tests check it against the live slots).
    #[cfg(test)]
    pub(super) fn free_slots(&self) -> Vec<u32> {
        let mut free = Vec::new();
        let mut index = self.free;
        while index != NIL {
            free.push(index);
            index = self.slots[index as usize].access.next;
        }
        free
    }

    pub(super) fn slot(&self, index: u32) -> &Slot {
        &self.slots[index as usize]
    }

    /// The entry at `index`, to change.
    pub(super) fn slot_mut(&mut self, index: u32) -> &mut Slot {
        &mut self.slots[index as usize]
    }

    fn list(&mut self, order: Order) -> &mut List {
        match order {
            Order::Access => &mut self.access,
            Order::Write => &mut self.write,
        }
    }

    fn links(&mut self, index: u32, order: Order) -> &mut Links {
        let slot = &mut self.slots[index as usize];
        match order {
            Order::Access => &mut slot.access,
            Order::Write => &mut slot.write,
        }
    }

    /// Appends at the tail (MRU or newest end).
    pub(super) fn push_back(&mut self, order: Order, index: u32) {
        let tail = self.list(order).tail;
        *self.links(index, order) = Links {
            prev: tail,
            next: NIL,
        };
        if tail == NIL {
            self.list(order).head = index;
        } else {
            self.links(tail, order).next = index;
        }
        self.list(order).tail = index;
    }

    /// Takes a slot out of a list.
    pub(super) fn unlink(&mut self, order: Order, index: u32) {
        let Links { prev, next } = *self.links(index, order);
        if prev == NIL {
            self.list(order).head = next;
        } else {
            self.links(prev, order).next = next;
        }
        if next == NIL {
            self.list(order).tail = prev;
        } else {
            self.links(next, order).prev = prev;
        }
        *self.links(index, order) = UNLINKED;
    }

    /// Moves a linked slot to the tail.
    pub(super) fn move_to_back(&mut self, order: Order, index: u32) {
        if self.list(order).tail != index {
            self.unlink(order, index);
            self.push_back(order, index);
        }
    }
}
