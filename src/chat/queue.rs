//! The chat mirror's bounded queue: records accepted from device actors and not yet committed.
//!
//! A record is only ever removed by a successful commit: a failed batch goes back to the front,
//! in its order, and is retried. The queue holds about `chat.queue_max` records: a sender that
//! finds it full is *parked* with its records and told (through a oneshot) once they are
//! admitted after a commit made room. Device actors await that answer before reading more from
//! their sessions, so while the database is down WhatsApp traffic waits in the sessions instead
//! of piling up here; at most one record set per waiting device sits parked.

use std::collections::VecDeque;

use tokio::sync::oneshot;

use super::store::ChatWrite;

/// A write with the tenant it belongs to.
pub type TenantWrite = (i64, ChatWrite);

/// Records waiting for a commit, and senders waiting for room.
pub struct MirrorQueue {
    /// Accepted records, oldest first.
    pending: VecDeque<TenantWrite>,
    /// Senders that found the queue full, oldest first.
    parked: VecDeque<Parked>,
    /// Records taken by the commit under way: they count against the bound until it ends.
    in_flight: usize,
    /// Records past which senders are parked.
    max: usize,
}

/// A sender's records that did not fit yet.
struct Parked {
    writes: Vec<TenantWrite>,
    admitted: oneshot::Sender<()>,
}

impl MirrorQueue {
    /// An empty queue holding about `max` records (at least one).
    pub fn new(max: usize) -> Self {
        Self {
            pending: VecDeque::new(),
            parked: VecDeque::new(),
            in_flight: 0,
            max: max.max(1),
        }
    }

    /// Accepts one sender's records: queued at once when there is room (`None`; a large set
    /// may pass the bound once, so one sender's records stay together), else parked behind
    /// earlier parked senders (`Some`: fires once they are queued).
    pub fn offer(&mut self, writes: Vec<TenantWrite>) -> Option<oneshot::Receiver<()>> {
        if self.parked.is_empty() && self.held() < self.max {
            self.pending.extend(writes);
            return None;
        }
        let (admitted, receiver) = oneshot::channel();
        self.parked.push_back(Parked { writes, admitted });
        Some(receiver)
    }

    /// Takes up to `max` of the oldest records for a commit; they stay counted until
    /// [`committed`](Self::committed) or [`put_back`](Self::put_back).
    pub fn take_batch(&mut self, max: usize) -> Vec<TenantWrite> {
        let n = self.pending.len().min(max.max(1));
        self.in_flight = n;
        self.pending.drain(..n).collect()
    }

    /// The batch taken last committed: its records no longer count.
    pub fn committed(&mut self) {
        self.in_flight = 0;
    }

    /// A batch that did not commit goes back to the front, in its order.
    pub fn put_back(&mut self, batch: Vec<TenantWrite>) {
        self.in_flight = 0;
        for write in batch.into_iter().rev() {
            self.pending.push_front(write);
        }
    }

    /// After a commit: admits parked senders, oldest first, while there is room.
    pub fn admit_parked(&mut self) {
        while self.held() < self.max {
            let Some(parked) = self.parked.pop_front() else {
                return;
            };
            self.pending.extend(parked.writes);
            // A sender that stopped waiting still has its records stored.
            let _ = parked.admitted.send(());
        }
    }

    /// Records queued for the next commit (not counting parked ones).
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Records accepted and not yet committed: queued and in the commit under way.
    pub fn held(&self) -> usize {
        self.pending.len() + self.in_flight
    }

    /// Nothing queued.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Senders waiting for room.
    pub fn parked(&self) -> usize {
        self.parked.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ack(n: usize) -> TenantWrite {
        (
            1,
            ChatWrite::Ack {
                device_id: 1,
                wa_ids: vec![n.to_string()],
                status: "read",
            },
        )
    }

    fn ids(batch: &[TenantWrite]) -> Vec<String> {
        batch
            .iter()
            .map(|(_, w)| match w {
                ChatWrite::Ack { wa_ids, .. } => wa_ids[0].clone(),
                ChatWrite::Message { row, .. } => row.wa_id.clone(),
                ChatWrite::Change { change, .. } => change.id.clone(),
            })
            .collect()
    }

    #[test]
    fn a_failed_batch_goes_back_in_order_and_full_queues_park_senders() {
        let mut queue = MirrorQueue::new(3);
        assert!(queue.offer(vec![ack(1), ack(2)]).is_none());
        assert!(queue.offer(vec![ack(3)]).is_none());
        let mut parked = queue.offer(vec![ack(4)]).unwrap();
        assert_eq!(queue.len(), 3);
        assert_eq!(queue.parked(), 1);

        let batch = queue.take_batch(2);
        assert_eq!(ids(&batch), ["1", "2"]);
        queue.put_back(batch);
        assert_eq!(ids(&queue.take_batch(10)), ["1", "2", "3"]);
        assert!(parked.try_recv().is_err(), "still waiting for a commit");
        queue.admit_parked();
        assert!(
            parked.try_recv().is_err(),
            "the batch in flight still counts"
        );

        queue.committed();
        queue.admit_parked();
        assert!(parked.try_recv().is_ok());
        assert_eq!(ids(&queue.take_batch(10)), ["4"]);
        assert!(queue.is_empty());
    }

    #[test]
    fn later_senders_queue_behind_parked_ones() {
        let mut queue = MirrorQueue::new(1);
        assert!(queue.offer(vec![ack(1)]).is_none());
        let _first = queue.offer(vec![ack(2)]).unwrap();
        queue.take_batch(1);
        let _second = queue.offer(vec![ack(3)]).unwrap();
        queue.committed();
        queue.admit_parked();
        assert_eq!(ids(&queue.take_batch(10)), ["2"]);
        queue.committed();
        queue.admit_parked();
        assert_eq!(ids(&queue.take_batch(10)), ["3"]);
    }

    #[test]
    fn records_in_the_commit_under_way_count_against_the_bound() {
        let mut queue = MirrorQueue::new(2);
        assert!(queue.offer(vec![ack(1), ack(2)]).is_none());
        assert_eq!(ids(&queue.take_batch(10)), ["1", "2"]);
        assert!(queue.is_empty());
        assert_eq!(queue.held(), 2);
        let mut parked = queue
            .offer(vec![ack(3)])
            .expect("full while the batch commits");
        queue.committed();
        assert_eq!(queue.held(), 0);
        queue.admit_parked();
        assert!(parked.try_recv().is_ok());
        assert_eq!(queue.held(), 1);
    }
}
