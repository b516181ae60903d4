//! Millrace's control plane: the REST API, its store, the reconciler and the platforms.
//! `main.rs` is the `millrace` binary: the server and a small CLI over the API.

pub mod auth;
pub mod brokers;
pub mod cli;
pub mod config;
#[cfg(test)]
mod deploy_manifests;
pub mod domain;
pub mod http;
pub mod operator;
pub mod platform;
#[cfg(test)]
mod rbac_check;
pub mod reconciler;
pub mod server;
pub mod service;
pub mod store;
