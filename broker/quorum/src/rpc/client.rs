//! The HTTP client side: plain JSON POSTs with a time-out on every call, and openraft's
//! `RaftNetwork` on top of it.

use std::time::Duration;

use openraft::error::{
    Infallible, InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{Backoff, RPCOption};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{BasicNode, RaftNetwork, RaftNetworkFactory};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{RaftRpc, PATH_APPEND, PATH_SNAPSHOT, PATH_VOTE};
use crate::raft::{NodeKey, TypeConfig};

#[derive(Debug, thiserror::Error)]
pub enum RpcFailure {
    #[error("{0} unreachable: {1}")]
    Unreachable(String, String),
    #[error("{0} timed out")]
    Timeout(String),
    /// The peer answered with an error status (e.g. a Raft RPC for a key it does not have).
    #[error("{0} refused: {1}")]
    Refused(String, String),
}

#[derive(Clone)]
pub struct RpcClient {
    http: reqwest::Client,
}

impl RpcClient {
    pub fn new() -> anyhow::Result<Self> {
        // Whatever TLS features the build unified into reqwest, give rustls a crypto provider.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(500))
            .pool_idle_timeout(Duration::from_secs(30))
            .build()?;
        Ok(RpcClient { http })
    }

    /// POSTs `body` as JSON to `http://{address}{path}` and decodes the JSON answer.
    pub async fn post<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        address: &str,
        path: &str,
        body: &Req,
        timeout: Duration,
    ) -> Result<Resp, RpcFailure> {
        let url = format!("http://{address}{path}");
        let failure = |e: reqwest::Error| {
            if e.is_timeout() {
                RpcFailure::Timeout(url.clone())
            } else {
                RpcFailure::Unreachable(url.clone(), e.to_string())
            }
        };
        let response = self
            .http
            .post(&url)
            .json(body)
            .timeout(timeout)
            .send()
            .await
            .map_err(failure)?;
        let status = response.status();
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            return Err(RpcFailure::Refused(
                url.clone(),
                format!("{status}: {text}"),
            ));
        }
        response.json().await.map_err(failure)
    }
}

/// Creates a connection per peer for openraft.
pub struct Network {
    pub rpc: RpcClient,
    /// Pause before retrying an unreachable peer.
    pub backoff: Duration,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerConnection;

    async fn new_client(&mut self, target: NodeKey, node: &BasicNode) -> PeerConnection {
        PeerConnection {
            rpc: self.rpc.clone(),
            target,
            address: node.addr.clone(),
            backoff: self.backoff,
        }
    }
}

pub struct PeerConnection {
    rpc: RpcClient,
    target: NodeKey,
    address: String,
    backoff: Duration,
}

type RaftRpcError<E> = RPCError<NodeKey, BasicNode, RaftError<NodeKey, E>>;

impl PeerConnection {
    async fn call<Req, Resp, E>(
        &self,
        path: &str,
        rpc: Req,
        option: &RPCOption,
    ) -> Result<Resp, RaftRpcError<E>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let envelope = RaftRpc {
            target: self.target,
            rpc,
        };
        let answer: Result<Resp, RaftError<NodeKey, E>> = self
            .rpc
            .post(&self.address, path, &envelope, option.hard_ttl())
            .await
            .map_err(|failure| match failure {
                RpcFailure::Timeout(_) => RPCError::Network(NetworkError::new(&failure)),
                _ => RPCError::Unreachable(Unreachable::new(&failure)),
            })?;
        answer.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<TypeConfig> for PeerConnection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeKey>, RaftRpcError<Infallible>> {
        self.call(PATH_APPEND, rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeKey>, RaftRpcError<InstallSnapshotError>> {
        self.call(PATH_SNAPSHOT, rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeKey>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeKey>, RaftRpcError<Infallible>> {
        self.call(PATH_VOTE, rpc, &option).await
    }

    fn backoff(&self) -> Backoff {
        Backoff::new(std::iter::repeat(self.backoff))
    }
}
