//! A minimal Kafka client connection, for the broker's own requests to other brokers (replica
//! fetches, OffsetForLeaderEpoch). Requests go one at a time; every call has a time-out.

use std::time::Duration;

use anyhow::{bail, Context};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest response accepted from a peer broker.
const MAX_RESPONSE_BYTES: usize = 128 * 1024 * 1024;

pub struct BrokerConnection {
    stream: TcpStream,
    correlation_id: i32,
    client_id: StrBytes,
}

impl BrokerConnection {
    pub async fn connect(
        address: &str,
        client_id: String,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(address))
            .await
            .with_context(|| format!("connecting to {address} timed out"))?
            .with_context(|| format!("connecting to {address}"))?;
        stream.set_nodelay(true)?;
        Ok(BrokerConnection {
            stream,
            correlation_id: 0,
            client_id: StrBytes::from_string(client_id),
        })
    }

    /// Sends `request` at `version` and decodes the response.
    pub async fn call<Req, Resp>(
        &mut self,
        key: ApiKey,
        version: i16,
        request: &Req,
        timeout: Duration,
    ) -> anyhow::Result<Resp>
    where
        Req: Encodable,
        Resp: Decodable + HeaderVersion,
    {
        self.correlation_id = self.correlation_id.wrapping_add(1);
        let mut body = BytesMut::new();
        RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation_id)
            .with_client_id(Some(self.client_id.clone()))
            .encode(&mut body, key.request_header_version(version))?;
        request.encode(&mut body, version)?;
        let mut frame = BytesMut::with_capacity(body.len() + 4);
        frame.put_i32(body.len() as i32);
        frame.extend_from_slice(&body);
        let exchange = async {
            self.stream.write_all(&frame).await?;
            let length = self.stream.read_i32().await?;
            if length < 0 || length as usize > MAX_RESPONSE_BYTES {
                bail!("response of {length} bytes is out of bounds");
            }
            let mut response = vec![0u8; length as usize];
            self.stream.read_exact(&mut response).await?;
            Ok(Bytes::from(response))
        };
        let mut response = tokio::time::timeout(timeout, exchange)
            .await
            .context("request timed out")??;
        let header = ResponseHeader::decode(&mut response, Resp::header_version(version))?;
        if header.correlation_id != self.correlation_id {
            bail!(
                "response for correlation id {} while waiting for {}",
                header.correlation_id,
                self.correlation_id
            );
        }
        let decoded = Resp::decode(&mut response, version)?;
        if response.has_remaining() {
            bail!("{} bytes left after the response", response.remaining());
        }
        Ok(decoded)
    }
}
