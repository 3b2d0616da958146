//! The harness's Lambda Runtime API emulator (`integration_tests::runtime`),
//! with failures as text for the benchmark's report.

use std::time::Duration;

use serde_json::Value;

pub use integration_tests::runtime::FunctionProcess;

/// One invocation; a failure carries the end of the function's log.
pub async fn invoke(process: &FunctionProcess, event: Value, timeout: Duration) -> Result<Value, String> {
    process.invoke(event, timeout).await.map_err(|e| format!("invocation failed: {e}; logs: {}", process.logs_tail(20)))
}
