//! Per function: init duration (spawn to first poll), peak RSS after a few
//! invocations, binary and zipped `bootstrap` sizes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::runtime::FunctionProcess;
use crate::world::{median, progress, World, R};

#[derive(Debug, Default, Clone)]
pub struct ColdStarts {
    /// Init durations in milliseconds, one per cold start.
    pub init_ms: Vec<f64>,
    /// VmHWM in bytes after the invocations, one per cold start.
    pub peak_rss: Vec<u64>,
}

impl ColdStarts {
    pub fn init_median_ms(&self) -> f64 {
        median(&mut self.init_ms.clone())
    }
    pub fn peak_rss_max(&self) -> u64 {
        self.peak_rss.iter().copied().max().unwrap_or(0)
    }
}

/// `runs` cold starts of each binary, taken in turns (one of each, then the
/// next round, each round starting one binary further on) so that the
/// machine's noise and any effect of going first fall on all of them alike.
/// Each process answers `invocations` events before its VmHWM is read.
pub async fn cold_starts(
    world: &World,
    binaries: &[(String, PathBuf)],
    runs: usize,
    invocations: usize,
    log_dir: &Path,
) -> R<BTreeMap<String, ColdStarts>> {
    let env = world.function_env().await;
    let mut results: BTreeMap<String, ColdStarts> = BTreeMap::new();
    for round in 0..runs {
        progress(format!("cold starts: round {}/{runs}", round + 1));
        let order = binaries.iter().cycle().skip(round % binaries.len().max(1)).take(binaries.len());
        for (name, binary) in order {
            let function = function_of(name);
            let mut process = FunctionProcess::spawn_binary(binary, function, &env, log_dir).await;
            let init = process.init_duration(Duration::from_secs(60)).await.map_err(|e| format!("{name}: {e}"))?;
            for _ in 0..invocations {
                let (event, expect) = world.event_for(function).await?;
                let answer = crate::runtime::invoke(&process, event, Duration::from_secs(60))
                    .await
                    .map_err(|e| format!("{name}: {e}"))?;
                expect.check(name, &answer)?;
            }
            let rss = process.peak_rss().ok_or_else(|| format!("{name}: no VmHWM in /proc"))?;
            drop(process);
            let entry = results.entry(name.clone()).or_default();
            entry.init_ms.push(init.as_secs_f64() * 1000.0);
            entry.peak_rss.push(rss);
        }
    }
    Ok(results)
}

/// A variant's name is `<function>` or `<function>@<variant>`.
pub fn function_of(name: &str) -> &str {
    name.split('@').next().unwrap_or(name)
}

pub fn file_size(path: &Path) -> R<u64> {
    Ok(std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?.len())
}

/// Size of a zip holding `binary` as `bootstrap`, deflated as AWS SAM and
/// the `zip` tool do by default (Python's zipfile, ZIP_DEFLATED, level 6).
pub fn zipped_bootstrap_size(binary: &Path, work_dir: &Path) -> R<u64> {
    let zip = work_dir.join(format!("{}.zip", integration_tests::random_name("bootstrap")));
    let script = "import sys, zipfile\n\
        with zipfile.ZipFile(sys.argv[2], 'w', zipfile.ZIP_DEFLATED) as z:\n    \
            info = zipfile.ZipInfo('bootstrap', (2024, 1, 1, 0, 0, 0))\n    \
            info.external_attr = 0o755 << 16\n    \
            info.compress_type = zipfile.ZIP_DEFLATED\n    \
            z.writestr(info, open(sys.argv[1], 'rb').read())\n";
    let status = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(binary)
        .arg(&zip)
        .status()
        .map_err(|e| format!("python3 (to zip the bootstrap): {e}"))?;
    if !status.success() {
        return Err(format!("zipping {} failed", binary.display()).into());
    }
    let size = file_size(&zip)?;
    let _ = std::fs::remove_file(&zip);
    Ok(size)
}
