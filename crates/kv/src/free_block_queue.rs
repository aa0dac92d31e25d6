//! [`FreeBlockQueue`]: the unreferenced blocks, in the order they will be reused.

use crate::BlockId;

/// Marks a node that is not in the list.
const DETACHED: u32 = u32::MAX;

/// A doubly linked list over block ids, threaded through two index arrays, so that every
/// operation is O(1) and none allocates: pop the front (allocation), push the back (freeing) or
/// front (freeing a block worth nothing), and unlink from the middle (a prefix-cache hit revives
/// an unreferenced cached block).
///
/// Two sentinel nodes after the blocks (head at `num_blocks`, tail at `num_blocks + 1`) mean no
/// operation has an empty-list or end-of-list special case, and "in the list" is simply "has
/// links".
#[derive(Debug)]
pub(crate) struct FreeBlockQueue {
    /// `[num_blocks + 2]`: the previous node of each node, or `DETACHED`.
    prev: Vec<u32>,
    /// `[num_blocks + 2]`: the next node of each node, or `DETACHED`.
    next: Vec<u32>,
    num_free_blocks: usize,
}

impl FreeBlockQueue {
    /// A queue holding every block, in id order. `num_blocks + 2` must fit in `u32` (checked by
    /// the manager's constructor).
    pub(crate) fn new(num_blocks: usize) -> Self {
        let num_nodes = num_blocks + 2;
        let mut queue = Self {
            prev: vec![DETACHED; num_nodes],
            next: vec![DETACHED; num_nodes],
            num_free_blocks: 0,
        };
        let (head, tail) = (queue.head(), queue.tail());
        queue.next[head as usize] = tail;
        queue.prev[tail as usize] = head;
        for block in 0..num_blocks {
            queue.push_back(BlockId(block as u32));
        }
        queue
    }

    pub(crate) fn len(&self) -> usize {
        self.num_free_blocks
    }

    pub(crate) fn contains(&self, block: BlockId) -> bool {
        self.next[block.index()] != DETACHED
    }

    /// Takes the block that has been free longest.
    pub(crate) fn pop_front(&mut self) -> Option<BlockId> {
        let first = self.next[self.head() as usize];
        if first == self.tail() {
            return None;
        }
        let block = BlockId(first);
        self.remove(block);
        Some(block)
    }

    /// Appends a block: it will be reused after every block already in the queue.
    pub(crate) fn push_back(&mut self, block: BlockId) {
        let last = self.prev[self.tail() as usize];
        self.link_after(last, block);
    }

    /// Prepends a block: it will be reused before every block already in the queue.
    pub(crate) fn push_front(&mut self, block: BlockId) {
        self.link_after(self.head(), block);
    }

    /// Unlinks a block from anywhere in the queue.
    ///
    /// # Panics
    /// If the block is not in the queue: the caller's reference counts are then wrong.
    pub(crate) fn remove(&mut self, block: BlockId) {
        assert!(self.contains(block), "{block:?} is not in the free queue");
        let node = block.index();
        let (prev, next) = (self.prev[node], self.next[node]);
        self.next[prev as usize] = next;
        self.prev[next as usize] = prev;
        self.prev[node] = DETACHED;
        self.next[node] = DETACHED;
        self.num_free_blocks -= 1;
    }

    /// The free blocks from front (next to be reused) to back.
    #[cfg(test)]
    pub(crate) fn iter(&self) -> impl Iterator<Item = BlockId> + '_ {
        let tail = self.tail();
        let mut node = self.next[self.head() as usize];
        std::iter::from_fn(move || {
            if node == tail || node == DETACHED {
                return None;
            }
            let block = BlockId(node);
            node = self.next[node as usize];
            Some(block)
        })
    }

    /// Checks that the links form one list from head to tail whose length is `len()`, that
    /// every link is mirrored, and that nodes outside the list have no links.
    pub(crate) fn check(&self) -> std::result::Result<(), String> {
        let (head, tail) = (self.head(), self.tail());
        let mut num_linked = 0;
        let mut node = head;
        while node != tail {
            let next = self.next[node as usize];
            if next == DETACHED || next == head || next as usize >= self.next.len() {
                return Err(format!("free queue: node {node} has a bad next link {next}"));
            }
            if self.prev[next as usize] != node {
                return Err(format!("free queue: node {next} does not link back to {node}"));
            }
            if next != tail {
                num_linked += 1;
                if num_linked > self.num_blocks() {
                    return Err("free queue: the list has a cycle".to_string());
                }
            }
            node = next;
        }
        if num_linked != self.num_free_blocks {
            return Err(format!(
                "free queue: {num_linked} blocks linked but num_free_blocks = {}",
                self.num_free_blocks
            ));
        }
        let num_attached = (0..self.num_blocks()).filter(|&n| self.next[n] != DETACHED).count();
        if num_attached != num_linked {
            return Err(format!(
                "free queue: {num_attached} blocks have links but only {num_linked} are reachable"
            ));
        }
        if let Some(n) = (0..self.num_blocks())
            .find(|&n| (self.next[n] == DETACHED) != (self.prev[n] == DETACHED))
        {
            return Err(format!("free queue: block {n} has only one of its two links"));
        }
        Ok(())
    }

    fn num_blocks(&self) -> usize {
        self.next.len() - 2
    }

    fn head(&self) -> u32 {
        self.num_blocks() as u32
    }

    fn tail(&self) -> u32 {
        self.num_blocks() as u32 + 1
    }

    fn link_after(&mut self, prev: u32, block: BlockId) {
        assert!(!self.contains(block), "{block:?} is already in the free queue");
        let node = block.0;
        let next = self.next[prev as usize];
        self.next[prev as usize] = node;
        self.prev[node as usize] = prev;
        self.next[node as usize] = next;
        self.prev[next as usize] = node;
        self.num_free_blocks += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(queue: &FreeBlockQueue) -> Vec<u32> {
        queue.iter().map(|block| block.0).collect()
    }

    #[test]
    fn starts_with_every_block_in_id_order() {
        let queue = FreeBlockQueue::new(4);
        assert_eq!(ids(&queue), [0, 1, 2, 3]);
        assert_eq!(queue.len(), 4);
        queue.check().unwrap();
    }

    #[test]
    fn pop_front_push_back_remove_and_push_front() {
        let mut queue = FreeBlockQueue::new(4);
        assert_eq!(queue.pop_front(), Some(BlockId(0)));
        queue.remove(BlockId(2));
        assert_eq!(ids(&queue), [1, 3]);
        queue.push_back(BlockId(2));
        queue.push_front(BlockId(0));
        assert_eq!(ids(&queue), [0, 1, 3, 2]);
        assert!(queue.contains(BlockId(3)));
        queue.check().unwrap();
        for expected in [0, 1, 3, 2] {
            assert_eq!(queue.pop_front(), Some(BlockId(expected)));
            queue.check().unwrap();
        }
        assert_eq!(queue.pop_front(), None);
        assert!(!queue.contains(BlockId(3)));
        queue.push_back(BlockId(3));
        assert_eq!(ids(&queue), [3]);
        queue.check().unwrap();
    }

    #[test]
    fn empty_queue_is_consistent() {
        let mut queue = FreeBlockQueue::new(0);
        assert_eq!(queue.pop_front(), None);
        queue.check().unwrap();
    }

    #[test]
    #[should_panic(expected = "already in the free queue")]
    fn pushing_a_free_block_again_panics() {
        let mut queue = FreeBlockQueue::new(2);
        queue.push_back(BlockId(1));
    }

    #[test]
    fn check_reports_a_broken_link() {
        let mut queue = FreeBlockQueue::new(3);
        queue.prev[1] = 2;
        assert!(queue.check().is_err());
    }
}
