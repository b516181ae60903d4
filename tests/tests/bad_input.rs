//! Malformed traffic on the Kafka port closes the offending connection and nothing else: the
//! broker keeps answering kcat, /health, and a connection opened before the bad one.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};

use common::{assert_kcat_metadata, connect, read_response, request, BrokerOptions, BrokerProcess};

const API_VERSIONS: i16 = 18;
const UNSUPPORTED_VERSION: i16 = 35;

fn i16_at(bytes: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([bytes[at], bytes[at + 1]])
}

fn i32_at(bytes: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// Parses a v0 ApiVersions response body: (correlation id, error code, [(key, min, max)]).
fn parse_api_versions_v0(body: &[u8]) -> (i32, i16, Vec<(i16, i16, i16)>) {
    assert!(
        body.len() >= 10,
        "ApiVersions v0 response too short: {body:?}"
    );
    let correlation_id = i32_at(body, 0);
    let error_code = i16_at(body, 4);
    let count = i32_at(body, 6);
    assert!(
        (0..1000).contains(&count),
        "ApiVersions v0: {count} api keys"
    );
    assert_eq!(
        body.len(),
        10 + 6 * count as usize,
        "ApiVersions v0 response length for {count} keys"
    );
    let apis = (0..count as usize)
        .map(|i| {
            let at = 10 + 6 * i;
            (i16_at(body, at), i16_at(body, at + 2), i16_at(body, at + 4))
        })
        .collect();
    (correlation_id, error_code, apis)
}

/// A v0 ApiVersions round trip on `stream`; the broker must answer without error.
fn api_versions_ok(stream: &mut TcpStream, correlation_id: i32, what: &str) {
    stream
        .write_all(&request(API_VERSIONS, 0, correlation_id, &[]))
        .unwrap_or_else(|error| panic!("{what}: writing ApiVersions: {error}"));
    let body = read_response(stream, what);
    let (got_correlation, error_code, apis) = parse_api_versions_v0(&body);
    assert_eq!(got_correlation, correlation_id, "{what}: correlation id");
    assert_eq!(error_code, 0, "{what}: ApiVersions v0 error code");
    assert!(
        apis.iter().any(|&(key, _, _)| key == API_VERSIONS),
        "{what}: ApiVersions does not list itself: {apis:?}"
    );
}

/// The broker closes `stream` (EOF or reset) without answering, within the read timeout.
fn assert_closed(stream: &mut TcpStream, what: &str) {
    let mut buffer = [0u8; 256];
    match stream.read(&mut buffer) {
        Ok(0) => {}
        Ok(n) => panic!(
            "{what}: the broker answered {n} bytes instead of closing: {:?}",
            &buffer[..n]
        ),
        Err(error) if error.kind() == ErrorKind::ConnectionReset => {}
        Err(error) => panic!("{what}: the connection was not closed: {error}"),
    }
}

fn assert_still_serving(
    broker: &mut BrokerProcess,
    survivor: &mut TcpStream,
    round: i32,
    what: &str,
) {
    broker.assert_running(what);
    api_versions_ok(
        survivor,
        1000 + round,
        &format!("pre-existing connection after {what}"),
    );
    assert_eq!(broker.admin_get("/health").0, 200, "/health after {what}");
    assert_kcat_metadata(broker, &[]);
}

fn xorshift_bytes(mut seed: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect()
}

#[test]
fn malformed_frames_close_only_their_connection() {
    let mut broker = BrokerProcess::start(BrokerOptions::default());
    let mut survivor = connect(&broker);
    api_versions_ok(&mut survivor, 1, "a fresh connection");

    let mut cases: Vec<(&str, Vec<u8>, bool)> = vec![
        (
            "a length prefix of 0x7fffffff",
            0x7fff_ffffi32.to_be_bytes().to_vec(),
            false,
        ),
        (
            "a negative length prefix",
            (-1i32).to_be_bytes().to_vec(),
            false,
        ),
        (
            "a 3-byte frame (shorter than a header)",
            vec![0, 0, 0, 3, 0, 18, 0],
            false,
        ),
        // The frame announces 100 bytes, 10 arrive, then the client stops sending.
        (
            "a frame cut off mid-way",
            [
                &100i32.to_be_bytes()[..],
                &[0, 18, 0, 0, 0, 0, 0, 9, 0xff, 0xff],
            ]
            .concat(),
            true,
        ),
        ("unknown API key 9999", request(9999, 0, 5, &[]), false),
        (
            "a Metadata v12 request with an undecodable body",
            request(3, 12, 6, &[0xff; 3]),
            false,
        ),
    ];
    for seed in 1..=4u64 {
        let garbage = xorshift_bytes(0x9e37_79b9_7f4a_7c15 ^ seed, 64 + 50 * seed as usize);
        cases.push(("random garbage", garbage, true));
    }

    for (round, (what, bytes, half_close)) in cases.iter().enumerate() {
        let mut stream = connect(&broker);
        stream
            .write_all(bytes)
            .unwrap_or_else(|error| panic!("{what}: writing: {error}"));
        if *half_close {
            stream.shutdown(Shutdown::Write).unwrap();
        }
        assert_closed(&mut stream, what);
        assert_still_serving(&mut broker, &mut survivor, round as i32, what);
    }

    // KIP-511: ApiVersions at a version the broker does not know is answered at v0 with
    // UNSUPPORTED_VERSION and the supported ranges, on a connection that stays open.
    let mut stream = connect(&broker);
    stream
        .write_all(&request(API_VERSIONS, 99, 77, &[]))
        .unwrap();
    let body = read_response(&mut stream, "ApiVersions v99");
    let (correlation_id, error_code, apis) = parse_api_versions_v0(&body);
    assert_eq!(correlation_id, 77, "ApiVersions v99: correlation id");
    assert_eq!(
        error_code, UNSUPPORTED_VERSION,
        "ApiVersions v99: error code"
    );
    let own = apis.iter().find(|&&(key, _, _)| key == API_VERSIONS);
    assert!(
        matches!(own, Some(&(_, 0, max)) if max >= 3),
        "ApiVersions v99: the ApiVersions range is {own:?}"
    );
    api_versions_ok(&mut stream, 78, "the connection after ApiVersions v99");
    assert_still_serving(&mut broker, &mut survivor, 99, "ApiVersions v99");

    let (_, metrics) = broker.admin_get("/metrics");
    let rejected: f64 = metrics
        .lines()
        .find_map(|line| line.strip_prefix("millrace_rejected_requests_total "))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no millrace_rejected_requests_total in /metrics:\n{metrics}"));
    assert!(
        rejected >= 5.0,
        "millrace_rejected_requests_total is {rejected} after at least 5 rejected frames"
    );
}
