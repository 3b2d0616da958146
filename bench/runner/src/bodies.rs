//! Peak memory of `send-envelope` for one request with the largest bodies
//! the contract allows (6 MB): a plain envelope with one big document, the
//! worst bodies the validator's pre-scan lets through (as many values as its
//! limit allows, of the kinds that cost the most memory once parsed), and
//! bodies of millions of tiny items that the pre-scan refuses.
//!
//! Each body goes to a fresh process (VmHWM only grows) after one ordinary
//! send, so the figure is the process's peak over a warm invocation with
//! that body, as a Lambda execution environment would see it.

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};
use shared::envelope::validate::{prescan, MAX_BODY_BYTES, MAX_JSON_VALUES, OBJECT_COST};

use crate::runtime::FunctionProcess;
use crate::world::{http_event, progress, status_of, World, R};

/// One body measured.
pub struct BodyPeak {
    pub name: &'static str,
    pub bytes: usize,
    /// The statuses the function answered (one per process).
    pub statuses: Vec<u16>,
    /// VmHWM in bytes, highest of the processes.
    pub peak_rss: u64,
}

struct Body {
    name: &'static str,
    text: String,
    refused_by_prescan: bool,
}

/// The ordinary fixture with `change` applied, as text.
fn envelope_with(change: impl FnOnce(&mut Value)) -> Value {
    let mut v = integration_tests::fixtures::documents_envelope();
    change(&mut v);
    v
}

/// The fixture whose signer has one `textTabs` entry: `tab` (raw JSON text
/// of an array's items), replacing the `@@TABS@@` marker.
fn with_text_tabs(items: &str) -> String {
    let v = envelope_with(|v| v["recipients"]["signers"][0]["tabs"]["textTabs"] = json!("@@TABS@@"));
    v.to_string().replace("\"@@TABS@@\"", &format!("[{items}]"))
}

/// Values (objects weighted) the fixture itself uses, with some margin.
const FIXTURE_COST: usize = 100;

fn bodies() -> Vec<Body> {
    let mut out = Vec::new();

    // A plain 6 MB envelope: one document filling the body.
    let skeleton = envelope_with(|v| v["documents"][0]["documentBase64"] = json!("")).to_string().len();
    let content = "JVBE".repeat((MAX_BODY_BYTES - skeleton) / 4);
    let plain = envelope_with(|v| v["documents"][0]["documentBase64"] = json!(content)).to_string();
    out.push(Body { name: "plain envelope, one 6 MB document", text: plain, refused_by_prescan: false });

    // Worst under the limit, 1: one tab object with as many distinct keys as
    // the limit allows (about 155 bytes each once parsed), the keys long
    // enough to fill 6 MB. It passes our validation (tab properties are
    // DocuSign's to judge), so it is also serialized and sent.
    let members = MAX_JSON_VALUES - FIXTURE_COST - OBJECT_COST;
    let per_member = (MAX_BODY_BYTES - skeleton - 64) / members;
    let key_len = per_member.saturating_sub(6).max(8); // "k…":0,
    let mut tab = String::with_capacity(MAX_BODY_BYTES);
    tab.push('{');
    for i in 0..members {
        if i > 0 {
            tab.push(',');
        }
        tab.push_str(&format!("\"{i:0key_len$}\":0"));
    }
    tab.push('}');
    out.push(Body {
        name: "under the limit: one object of 150,000 distinct keys",
        text: with_text_tabs(&tab),
        refused_by_prescan: false,
    });

    // Worst under the limit, 2: one-member objects (a map node each, about
    // 700 bytes), padded with a long key to fill 6 MB.
    let objects = (MAX_JSON_VALUES - FIXTURE_COST) / (OBJECT_COST + 1);
    let per_object = (MAX_BODY_BYTES - skeleton - 64) / objects;
    let key_len = per_object.saturating_sub(8).max(1); // {"k…":0},
    let item = format!("{{\"{}\":0}}", "k".repeat(key_len));
    let items = vec![item.as_str(); objects].join(",");
    out.push(Body {
        name: "under the limit: 25,000 one-member objects",
        text: with_text_tabs(&items),
        refused_by_prescan: false,
    });

    // Refused: millions of tiny items, 6 MB each.
    let mut zeros = String::from(r#"{"documents":[0"#);
    while zeros.len() + 4 <= MAX_BODY_BYTES {
        zeros.push_str(",0");
    }
    zeros.push_str("]}");
    out.push(Body {
        name: "refused: {\"documents\":[0,0,…]} (3 million zeros)",
        text: zeros,
        refused_by_prescan: true,
    });
    let mut objects = String::from("[");
    while objects.len() + 8 + 3 <= MAX_BODY_BYTES {
        objects.push_str(r#"{"a":0},"#);
    }
    objects.push_str("{}]");
    out.push(Body { name: "refused: [{\"a\":0},…] (786,000 objects)", text: objects, refused_by_prescan: true });
    out.push(Body {
        name: "refused: [[[[… (6 million levels)",
        text: "[".repeat(MAX_BODY_BYTES),
        refused_by_prescan: true,
    });
    out
}

/// What [`run`] measured.
pub struct Bodies {
    /// VmHWM after the one ordinary send, before the body: the baseline.
    pub ordinary_peak_rss: u64,
    pub peaks: Vec<BodyPeak>,
}

/// Each body through `runs` fresh processes of the `send-envelope` binary.
pub async fn run(world: &World, binary: &Path, runs: usize, log_dir: &Path) -> R<Bodies> {
    let env = world.function_env().await;
    let token = integration_tests::user_token(&world.tenant);
    let mut peaks = Vec::new();
    let mut ordinary_peak_rss = 0;
    for body in bodies() {
        if body.text.len() > MAX_BODY_BYTES {
            return Err(format!("{}: {} bytes, over the 6 MB limit", body.name, body.text.len()).into());
        }
        if prescan(body.text.as_bytes()).is_ok() == body.refused_by_prescan {
            return Err(format!("{}: the pre-scan does not judge it as this benchmark expects", body.name).into());
        }
        progress(format!("bodies: {} ({} bytes), {runs} processes", body.name, body.text.len()));
        let event = http_event("POST", "/docusign/envelopes", "", Some(&token), Some(&body.text));
        let mut peak = BodyPeak { name: body.name, bytes: body.text.len(), statuses: Vec::new(), peak_rss: 0 };
        for _ in 0..runs {
            let process = FunctionProcess::spawn_binary(binary, "send-envelope", &env, log_dir).await;
            let (warm, _) = world.event_for("send-envelope").await?;
            let answer = crate::runtime::invoke(&process, warm, Duration::from_secs(60)).await?;
            if status_of(&answer) != 201 {
                return Err(format!("send-envelope answered {answer} to the ordinary envelope").into());
            }
            ordinary_peak_rss = ordinary_peak_rss.max(process.peak_rss().ok_or("no VmHWM in /proc")?);
            let answer = crate::runtime::invoke(&process, event.clone(), Duration::from_secs(120))
                .await
                .map_err(|e| format!("{}: {e}", body.name))?;
            let status = status_of(&answer);
            let message = answer["body"]
                .as_str()
                .and_then(|b| serde_json::from_str::<Value>(b).ok())
                .map(|b| b["error"]["message"].clone())
                .unwrap_or(Value::Null);
            let ok = if body.refused_by_prescan {
                status == 400
                    && message
                        .as_str()
                        .is_some_and(|m| m.starts_with("body: holds more than") || m.starts_with("body: nests"))
            } else {
                // Sent (201), or sent and refused by DocuSign (502): never a crash.
                matches!(status, 201 | 502)
            };
            if !ok {
                return Err(format!("{}: answered {status} {message}", body.name).into());
            }
            peak.statuses.push(status);
            peak.peak_rss = peak.peak_rss.max(process.peak_rss().ok_or("no VmHWM in /proc")?);
        }
        peaks.push(peak);
    }
    Ok(Bodies { ordinary_peak_rss, peaks })
}
