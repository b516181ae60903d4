//! The Kafka listener: accepts connections and serves each one's requests in order.
//!
//! Like Kafka, a connection has one request in processing at a time (responses must come back in
//! request order, and two produce requests from one connection must append in order). Frames
//! larger than the configured maximum, and requests that cannot be decoded, close the connection
//! with a log line; they never affect other connections.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tracing::{debug, info, warn, Instrument};

use crate::broker::Broker;
use crate::dispatch::{self, DispatchError};

/// Serves the Kafka protocol on `listener` until `shutdown` turns true, then waits (up to the
/// configured timeout) for connections to finish the request they are processing.
pub async fn serve(
    broker: Arc<Broker>,
    listener: TcpListener,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let permits = Arc::new(Semaphore::new(broker.config.max_connections));
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(pair) => pair,
                    Err(error) => {
                        warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Ok(permit) = permits.clone().try_acquire_owned() else {
                    warn!(%peer, limit = broker.config.max_connections, "connection limit reached; closing new connection");
                    continue;
                };
                let broker = broker.clone();
                let shutdown = shutdown.clone();
                connections.spawn(
                    async move {
                        let _permit = permit;
                        serve_connection(broker, stream, peer, shutdown).await;
                    }
                    .instrument(tracing::info_span!("conn", %peer)),
                );
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    info!(
        open = connections.len(),
        "listener closed; waiting for in-flight requests"
    );
    let timeout = Duration::from_millis(broker.config.shutdown_timeout_ms);
    if tokio::time::timeout(timeout, async {
        while connections.join_next().await.is_some() {}
    })
    .await
    .is_err()
    {
        warn!("shutdown timeout reached; closing remaining connections");
        connections.abort_all();
    }
    Ok(())
}

async fn serve_connection(
    broker: Arc<Broker>,
    stream: TcpStream,
    peer: SocketAddr,
    mut shutdown: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let (read_half, write_half) = stream.into_split();
    let mut reader = BufReader::with_capacity(64 * 1024, read_half);
    let mut writer = BufWriter::with_capacity(64 * 1024, write_half);
    let max_frame = broker.config.max_frame_bytes;
    debug!("connection opened");
    loop {
        // Between requests is the only place a connection stops for shutdown, so a request that
        // was read is always answered.
        let length = tokio::select! {
            _ = shutdown.changed() => break,
            length = reader.read_i32() => match length {
                Ok(length) => length,
                Err(_) => break,
            },
        };
        if length < 0 || length as usize > max_frame {
            warn!(
                length,
                max_frame, "frame size out of bounds; closing connection"
            );
            broker.metrics.rejected_frame();
            break;
        }
        let frame = match read_frame(&mut reader, length as usize).await {
            Ok(frame) => frame,
            Err(error) => {
                info!(%peer, %error, length, "connection closed in the middle of a request");
                break;
            }
        };
        match dispatch::handle_frame(&broker, frame).await {
            Ok(Some(response)) => {
                let write = async {
                    writer.write_i32(response.len() as i32).await?;
                    writer.write_all(&response).await?;
                    // Pipelined requests share one write: flush only when no complete request
                    // is already waiting in the read buffer.
                    if !holds_complete_frame(reader.buffer()) {
                        writer.flush().await?;
                    }
                    std::io::Result::Ok(())
                };
                if let Err(error) = write.await {
                    debug!(%error, "write failed; closing connection");
                    break;
                }
            }
            Ok(None) => {}
            Err(DispatchError::Close(reason)) => {
                warn!(%peer, %reason, "closing connection");
                broker.metrics.rejected_frame();
                break;
            }
        }
    }
    let _ = writer.flush().await;
    debug!("connection closed");
}

/// Reads a frame of `length` bytes into a buffer of exactly that size, without zeroing it
/// first; the part of a large frame not already buffered goes from the socket straight into it.
async fn read_frame<R: AsyncRead + Unpin>(reader: &mut R, length: usize) -> std::io::Result<Bytes> {
    let mut frame = BytesMut::with_capacity(length);
    while frame.len() < length {
        let wanted = length - frame.len();
        if reader.read_buf(&mut (&mut frame).limit(wanted)).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
    }
    Ok(frame.freeze())
}

fn holds_complete_frame(mut buffered: &[u8]) -> bool {
    buffered.remaining() >= 4 && {
        let length = buffered.get_i32();
        length >= 0 && buffered.remaining() >= length as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_frame_read_stops_at_its_length_whatever_the_pieces() {
        let (mut client, server) = tokio::io::duplex(64);
        let mut reader = BufReader::with_capacity(16, server);
        let writer = tokio::spawn(async move {
            // A 100-byte frame and the start of the next one, in pieces smaller and larger than
            // the reader's buffer.
            let bytes: Vec<u8> = (0..100u8).chain([7, 7, 7]).collect();
            for piece in bytes.chunks(13) {
                client.write_all(piece).await.unwrap();
            }
            client
        });
        let frame = read_frame(&mut reader, 100).await.unwrap();
        assert_eq!(frame.to_vec(), (0..100u8).collect::<Vec<_>>());
        let mut next = [0u8; 3];
        reader.read_exact(&mut next).await.unwrap();
        assert_eq!(next, [7, 7, 7]);
        drop(writer.await.unwrap());
    }

    #[tokio::test]
    async fn a_connection_closed_mid_frame_is_an_error() {
        let mut reader = BufReader::new(&[1u8, 2, 3][..]);
        let error = read_frame(&mut reader, 10).await.unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::UnexpectedEof);
    }
}
