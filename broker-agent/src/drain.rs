//! Asking the broker to move its partition leaderships away (`POST /admin/drain`), which brokers
//! gain with replication. A broker without the endpoint is reported as such, never as drained.

use std::time::Duration;

use reqwest::StatusCode;

use crate::config::AgentConfig;
use crate::status::DrainStatus;

const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Sends the drain request. `Err` means the broker could not be asked (not running, no answer).
pub async fn request_drain(
    http: &reqwest::Client,
    config: &AgentConfig,
) -> Result<DrainStatus, String> {
    let url = format!("{}/admin/drain", config.broker_admin_url());
    let response = http
        .post(&url)
        .timeout(DRAIN_TIMEOUT)
        .send()
        .await
        .map_err(|error| format!("POST {url}: {error}"))?;
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    if status.is_success() {
        return Ok(DrainStatus {
            supported: true,
            message: format!("the broker accepted the drain ({status})"),
        });
    }
    if status == StatusCode::NOT_FOUND || status == StatusCode::METHOD_NOT_ALLOWED {
        return Ok(DrainStatus {
            supported: false,
            message: "drain requested, but this broker version has no drain endpoint \
                      (POST /admin/drain): its leaderships were not moved"
                .into(),
        });
    }
    Err(format!("POST {url} answered {status}: {}", body.trim()))
}
