//! Test helpers: real Kafka batches built with the kafka-protocol crate, and a seeded RNG.

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

/// `count` records with timestamps `base_timestamp..`, values of `value_len` bytes.
pub fn simple_records(count: usize, base_timestamp: i64, value_len: usize) -> Vec<Record> {
    (0..count)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // The encoder groups records into one batch only while offset - sequence is
            // constant; offset - 1 keeps the batch's base sequence at -1 (not idempotent).
            sequence: i as i32 - 1,
            timestamp: base_timestamp + i as i64,
            key: Some(Bytes::from(format!("key-{i}"))),
            value: Some(Bytes::from(vec![b'a' + (i % 26) as u8; value_len])),
            headers: Default::default(),
        })
        .collect()
}

/// One batch holding `records`, as a producer would send it.
pub fn encode_batch(records: &[Record], compression: Compression) -> Vec<u8> {
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression,
    };
    RecordBatchEncoder::encode(&mut buf, records.iter(), &options).expect("encode batch");
    buf.to_vec()
}

/// Decodes every record of a fetched byte range.
pub fn decode_all(buf: &[u8]) -> Vec<Record> {
    let mut bytes = Bytes::copy_from_slice(buf);
    RecordBatchDecoder::decode_all(&mut bytes)
        .expect("decode batches")
        .into_iter()
        .flat_map(|set| set.records)
        .collect()
}

/// xorshift64*: deterministic randomness for property-style tests without a dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }

    pub fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % bound.max(1)
    }
}
