//! Feeds arbitrary request frames (what follows the length prefix) to the broker's decode and
//! dispatch path. Any panic is a bug: bad input must end in an error response or a closed
//! connection.
#![no_main]

use std::sync::{Arc, OnceLock};

use clap::Parser;
use libfuzzer_sys::fuzz_target;
use millrace_broker::broker::Broker;
use millrace_broker::config::BrokerConfig;

struct Fixture {
    runtime: tokio::runtime::Runtime,
    broker: Arc<Broker>,
    _dir: tempfile::TempDir,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = BrokerConfig::parse_from([
            "millrace-broker",
            "--data-dir",
            dir.path().to_str().expect("utf-8 path"),
            "--auto-create-topics",
            "--group-initial-rebalance-delay-ms",
            "0",
        ]);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let broker = runtime.block_on(Broker::start(config)).expect("broker starts");
        Fixture {
            runtime,
            broker,
            _dir: dir,
        }
    })
}

fuzz_target!(|frame: &[u8]| {
    let fixture = fixture();
    let frame = bytes::Bytes::copy_from_slice(frame);
    let _ = fixture.runtime.block_on(async {
        // Long polls and group joins wait; the fuzzer only cares that nothing panics.
        tokio::time::timeout(
            std::time::Duration::from_millis(50),
            millrace_broker::dispatch::handle_frame(&fixture.broker, frame),
        )
        .await
    });
});
