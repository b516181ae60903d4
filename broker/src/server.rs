//! The Kafka listener: accepts connections and serves each one's requests in order.
//!
//! Like Kafka, a connection has one request in processing at a time (responses must come back in
//! request order, and two produce requests from one connection must append in order). Frames
//! larger than the configured maximum, and requests that cannot be decoded, close the connection
//! with a log line; they never affect other connections.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
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
        let mut frame = BytesMut::zeroed(length as usize);
        if let Err(error) = reader.read_exact(&mut frame).await {
            debug!(%error, "connection closed mid-frame");
            break;
        }
        match dispatch::handle_frame(&broker, frame.freeze()).await {
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

fn holds_complete_frame(mut buffered: &[u8]) -> bool {
    buffered.remaining() >= 4 && {
        let length = buffered.get_i32();
        length >= 0 && buffered.remaining() >= length as usize
    }
}
