//! Idempotent producers: per partition, the last batches of each producer id, so that a retried
//! batch is acknowledged with its original offset instead of being appended twice, and a batch
//! that skips sequence numbers is refused.

use std::collections::{HashMap, VecDeque};

use kafka_protocol::ResponseError;
use millrace_log::BatchHeader;

/// How many recent batches per producer are remembered for duplicate detection; the same as
/// Kafka's (max.in.flight.requests.per.connection is at most 5 with idempotence).
const REMEMBERED_BATCHES: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct BatchSpan {
    first_sequence: i32,
    last_sequence: i32,
    first_offset: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct ProducerEntry {
    epoch: i16,
    recent: VecDeque<BatchSpan>,
}

/// What to do with an incoming batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceCheck {
    /// Append it.
    Append,
    /// It was appended before at this offset: acknowledge without appending.
    Duplicate { first_offset: i64 },
}

/// Producer state of one partition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProducerStateTable {
    producers: HashMap<i64, ProducerEntry>,
}

fn next_sequence(sequence: i32) -> i32 {
    if sequence == i32::MAX {
        0
    } else {
        sequence + 1
    }
}

impl ProducerStateTable {
    /// Checks one batch against the producer's state, without changing it.
    pub fn check(&self, batch: &BatchHeader) -> Result<SequenceCheck, ResponseError> {
        if batch.producer_id < 0 {
            return Ok(SequenceCheck::Append);
        }
        let Some(entry) = self.producers.get(&batch.producer_id) else {
            // A producer this partition has no state for (new, or its state was removed with
            // old segments) starts wherever it says.
            return Ok(SequenceCheck::Append);
        };
        if batch.producer_epoch < entry.epoch {
            return Err(ResponseError::InvalidProducerEpoch);
        }
        if batch.producer_epoch > entry.epoch {
            // A bumped epoch restarts sequences at zero.
            return if batch.base_sequence == 0 {
                Ok(SequenceCheck::Append)
            } else {
                Err(ResponseError::OutOfOrderSequenceNumber)
            };
        }
        let last_sequence = batch.last_sequence();
        if let Some(span) = entry.recent.iter().find(|span| {
            span.first_sequence == batch.base_sequence && span.last_sequence == last_sequence
        }) {
            return Ok(SequenceCheck::Duplicate {
                first_offset: span.first_offset,
            });
        }
        match entry.recent.back() {
            Some(last) if batch.base_sequence != next_sequence(last.last_sequence) => {
                Err(ResponseError::OutOfOrderSequenceNumber)
            }
            _ => Ok(SequenceCheck::Append),
        }
    }

    /// Records a batch that was appended (its base offset assigned).
    pub fn record(&mut self, batch: &BatchHeader) {
        if batch.producer_id < 0 {
            return;
        }
        let entry = self.producers.entry(batch.producer_id).or_default();
        if batch.producer_epoch != entry.epoch {
            entry.epoch = batch.producer_epoch;
            entry.recent.clear();
        }
        entry.recent.push_back(BatchSpan {
            first_sequence: batch.base_sequence,
            last_sequence: batch.last_sequence(),
            first_offset: batch.base_offset,
        });
        while entry.recent.len() > REMEMBERED_BATCHES {
            entry.recent.pop_front();
        }
    }

    /// Forgets everything (the log was truncated below what the state describes).
    pub fn clear(&mut self) {
        self.producers.clear();
    }

    /// Forgets the producers whose last batch starts below `log_start`: their batches are gone
    /// (retention, DeleteRecords), as Kafka forgets them, so the table does not grow with every
    /// producer that ever wrote. Such a producer that writes again starts wherever it says.
    pub fn remove_before(&mut self, log_start: i64) {
        self.producers.retain(|_, entry| {
            entry
                .recent
                .back()
                .is_some_and(|last| last.first_offset >= log_start)
        });
    }

    pub fn producer_count(&self) -> usize {
        self.producers.len()
    }

    /// One line per producer, `<id> <epoch> <first_seq>:<last_seq>:<first_offset> ...` (its
    /// remembered batches, oldest first), sorted by id: the producer-state snapshot's entries.
    pub fn to_lines(&self) -> Vec<String> {
        let mut ids: Vec<&i64> = self.producers.keys().collect();
        ids.sort();
        ids.into_iter()
            .map(|id| {
                let entry = &self.producers[id];
                let mut line = format!("{id} {}", entry.epoch);
                for span in &entry.recent {
                    line.push_str(&format!(
                        " {}:{}:{}",
                        span.first_sequence, span.last_sequence, span.first_offset
                    ));
                }
                line
            })
            .collect()
    }

    /// The table [`ProducerStateTable::to_lines`] wrote; `None` when a line does not parse.
    pub fn from_lines(lines: &[String]) -> Option<ProducerStateTable> {
        let mut producers = HashMap::with_capacity(lines.len());
        for line in lines {
            let mut fields = line.split_ascii_whitespace();
            let id: i64 = fields.next()?.parse().ok()?;
            let epoch: i16 = fields.next()?.parse().ok()?;
            let recent = fields
                .map(|span| {
                    let mut parts = span.split(':');
                    let span = BatchSpan {
                        first_sequence: parts.next()?.parse().ok()?,
                        last_sequence: parts.next()?.parse().ok()?,
                        first_offset: parts.next()?.parse().ok()?,
                    };
                    parts.next().is_none().then_some(span)
                })
                .collect::<Option<VecDeque<BatchSpan>>>()?;
            if id < 0 || recent.len() > REMEMBERED_BATCHES {
                return None;
            }
            producers.insert(id, ProducerEntry { epoch, recent });
        }
        Some(ProducerStateTable { producers })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(
        producer_id: i64,
        epoch: i16,
        base_sequence: i32,
        records: i32,
        offset: i64,
    ) -> BatchHeader {
        BatchHeader {
            base_offset: offset,
            batch_length: 0,
            partition_leader_epoch: 0,
            magic: 2,
            crc: 0,
            attributes: 0,
            last_offset_delta: records - 1,
            base_timestamp: 0,
            max_timestamp: 0,
            producer_id,
            producer_epoch: epoch,
            base_sequence,
            records_count: records,
        }
    }

    #[test]
    fn in_order_batches_append_and_retries_are_duplicates() {
        let mut table = ProducerStateTable::default();
        let first = batch(7, 0, 0, 10, 100);
        assert_eq!(table.check(&first), Ok(SequenceCheck::Append));
        table.record(&first);
        let second = batch(7, 0, 10, 5, 110);
        assert_eq!(table.check(&second), Ok(SequenceCheck::Append));
        table.record(&second);
        assert_eq!(
            table.check(&batch(7, 0, 0, 10, -1)),
            Ok(SequenceCheck::Duplicate { first_offset: 100 })
        );
        assert_eq!(
            table.check(&batch(7, 0, 10, 5, -1)),
            Ok(SequenceCheck::Duplicate { first_offset: 110 })
        );
    }

    #[test]
    fn gaps_old_epochs_and_new_epochs_are_checked() {
        let mut table = ProducerStateTable::default();
        table.record(&batch(7, 1, 0, 10, 0));
        assert_eq!(
            table.check(&batch(7, 1, 11, 1, -1)),
            Err(ResponseError::OutOfOrderSequenceNumber)
        );
        assert_eq!(
            table.check(&batch(7, 0, 10, 1, -1)),
            Err(ResponseError::InvalidProducerEpoch)
        );
        assert_eq!(
            table.check(&batch(7, 2, 5, 1, -1)),
            Err(ResponseError::OutOfOrderSequenceNumber)
        );
        assert_eq!(
            table.check(&batch(7, 2, 0, 1, -1)),
            Ok(SequenceCheck::Append)
        );
        assert_eq!(
            table.check(&batch(-1, -1, -1, 3, -1)),
            Ok(SequenceCheck::Append)
        );
    }

    #[test]
    fn the_snapshot_lines_round_trip_and_garbage_is_refused() {
        let mut table = ProducerStateTable::default();
        for i in 0..7 {
            table.record(&batch(1, 0, i * 2, 2, 100 + i as i64 * 2));
        }
        table.record(&batch(42, 3, 0, 1, 500));
        let lines = table.to_lines();
        assert_eq!(lines[1], "42 3 0:0:500");
        assert_eq!(ProducerStateTable::from_lines(&lines), Some(table));
        assert_eq!(
            ProducerStateTable::from_lines(&[]),
            Some(ProducerStateTable::default())
        );
        for bad in ["x 0", "1", "1 0 0:1", "1 0 0:1:2:3", "-1 0", "1 0 a:b:c"] {
            assert_eq!(
                ProducerStateTable::from_lines(&[bad.to_string()]),
                None,
                "{bad}"
            );
        }
    }

    #[test]
    fn producers_whose_batches_are_gone_are_forgotten() {
        let mut table = ProducerStateTable::default();
        table.record(&batch(1, 0, 0, 10, 0));
        table.record(&batch(2, 0, 0, 10, 10));
        table.record(&batch(1, 0, 10, 10, 20));
        table.remove_before(20);
        assert_eq!(table.producer_count(), 1);
        assert_eq!(
            table.check(&batch(1, 0, 10, 10, -1)),
            Ok(SequenceCheck::Duplicate { first_offset: 20 })
        );
        table.remove_before(21);
        assert_eq!(table.producer_count(), 0);
    }

    #[test]
    fn only_the_last_five_batches_are_remembered() {
        let mut table = ProducerStateTable::default();
        for i in 0..7 {
            table.record(&batch(1, 0, i, 1, i as i64));
        }
        assert_eq!(
            table.check(&batch(1, 0, 6, 1, -1)),
            Ok(SequenceCheck::Duplicate { first_offset: 6 })
        );
        assert_eq!(
            table.check(&batch(1, 0, 0, 1, -1)),
            Err(ResponseError::OutOfOrderSequenceNumber)
        );
    }
}
