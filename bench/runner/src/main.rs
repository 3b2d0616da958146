//! The connector's benchmark. Run it through `scripts/bench.sh [--short]`,
//! which starts the AWS emulator and builds the binaries; by hand:
//!
//! ```text
//! bench-runner [--short] --bins target/release [--arm64 target/lambda] [--out FILE]
//! bench-runner --profiles --variant NAME=BINARY... --hello BINARY [--short] [--out FILE]
//! ```
//!
//! Prints one table in which every figure stands beside a baseline measured
//! in the same run. It fails only when something does not work (a function
//! that does not start or answers wrongly, a sweep that does not refresh
//! every due tenant), never on a timing.

mod bodies;
mod count;
mod functions;
mod latency;
mod runtime;
mod sweep;
mod world;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use functions::{cold_starts, file_size, zipped_bootstrap_size, ColdStarts};
use world::{median, percentile, progress, World, BASELINE, FUNCTIONS, R};

struct Args {
    short: bool,
    bins: Option<PathBuf>,
    arm64: Option<PathBuf>,
    out: Option<PathBuf>,
    profiles: bool,
    variants: Vec<(String, PathBuf)>,
    hello: Option<PathBuf>,
    function: String,
    bodies_only: bool,
}

fn args() -> R<Args> {
    let mut a = Args {
        short: false,
        bins: None,
        arm64: None,
        out: None,
        profiles: false,
        variants: Vec::new(),
        hello: None,
        function: "send-envelope".to_owned(),
        bodies_only: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--short" => a.short = true,
            "--bins" => a.bins = Some(value()?.into()),
            "--arm64" => a.arm64 = Some(value()?.into()),
            "--out" => a.out = Some(value()?.into()),
            "--profiles" => a.profiles = true,
            "--bodies-only" => a.bodies_only = true,
            "--hello" => a.hello = Some(value()?.into()),
            "--function" => a.function = value()?,
            "--variant" => {
                let v = value()?;
                let (name, path) = v.split_once('=').ok_or("--variant NAME=BINARY")?;
                a.variants.push((name.to_owned(), path.into()));
            }
            "-h" | "--help" => {
                println!("usage: bench-runner [--short] [--bodies-only] --bins DIR [--arm64 DIR] [--out FILE]\n       bench-runner --profiles --variant NAME=BINARY... --hello BINARY [--function NAME] [--short] [--out FILE]");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    Ok(a)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() {
    let result = async {
        let args = args()?;
        let log_dir = std::env::temp_dir().join(integration_tests::random_name("bench-runner"));
        std::fs::create_dir_all(&log_dir)?;
        let table = if args.profiles {
            profiles(&args, &log_dir).await?
        } else if args.bodies_only {
            bodies_only(&args, &log_dir).await?
        } else {
            bench(&args, &log_dir).await?
        };
        let _ = std::fs::remove_dir_all(&log_dir);
        if let Some(out) = &args.out {
            std::fs::write(out, &table)?;
        }
        println!("{table}");
        Ok::<(), world::BoxError>(())
    }
    .await;
    if let Err(e) = result {
        eprintln!("bench: FAILED: {e}");
        std::process::exit(1);
    }
}

// ---- the table ------------------------------------------------------------------------

struct Table {
    rows: Vec<[String; 5]>,
    notes: Vec<String>,
}

impl Table {
    fn new() -> Self {
        Self { rows: Vec::new(), notes: Vec::new() }
    }
    fn section(&mut self, title: &str) {
        self.rows.push([format!("**{title}**"), String::new(), String::new(), String::new(), String::new()]);
    }
    fn row(
        &mut self,
        measure: impl Into<String>,
        ours: impl Into<String>,
        baseline: impl Into<String>,
        ratio: impl Into<String>,
        target: impl Into<String>,
    ) {
        self.rows.push([measure.into(), ours.into(), baseline.into(), ratio.into(), target.into()]);
    }
    fn render(&self, title: &str) -> String {
        let header = ["measure", "ours", "baseline (same run)", "ours / baseline", "target"];
        let mut out = format!("{title}\n\n");
        out += &format!("| {} |\n", header.join(" | "));
        out += &format!("|{}\n", " --- |".repeat(header.len()));
        for r in &self.rows {
            out += &format!("| {} |\n", r.join(" | "));
        }
        if !self.notes.is_empty() {
            out += "\n";
            for n in &self.notes {
                out += &format!("- {n}\n");
            }
        }
        out
    }
}

fn ms(x: f64) -> String {
    if x < 10.0 {
        format!("{x:.2} ms")
    } else if x < 1000.0 {
        format!("{x:.1} ms")
    } else {
        format!("{:.2} s", x / 1000.0)
    }
}

const MB: f64 = 1024.0 * 1024.0;

fn mb(bytes: u64) -> String {
    format!("{:.2} MB", bytes as f64 / MB)
}

fn ratio(ours: f64, base: f64) -> String {
    if base > 0.0 && ours.is_finite() {
        format!("{:.2}x", ours / base)
    } else {
        "—".to_owned()
    }
}

fn verdict(met: bool, what: &str) -> String {
    format!("{what}: {}", if met { "met" } else { "**missed**" })
}

fn per(x: u64, n: usize) -> f64 {
    x as f64 / n.max(1) as f64
}

fn num(x: f64) -> String {
    if (x - x.round()).abs() < 0.005 {
        format!("{}", x.round() as i64)
    } else {
        format!("{x:.2}")
    }
}

fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

// ---- the benchmark ------------------------------------------------------------------------

struct Counts {
    cold_starts: usize,
    invocations: usize,
    samples: usize,
    warmup: usize,
    sweeps: Vec<usize>,
    not_due_factor: usize,
    due_finding_reps: usize,
    body_runs: usize,
}

impl Counts {
    fn new(short: bool) -> Self {
        if short {
            Self {
                cold_starts: 3,
                invocations: 2,
                samples: 20,
                warmup: 3,
                sweeps: vec![50, 100],
                not_due_factor: 10,
                due_finding_reps: 3,
                body_runs: 1,
            }
        } else {
            Self {
                cold_starts: 11,
                invocations: 3,
                samples: 300,
                warmup: 20,
                sweeps: vec![1_000, 10_000],
                not_due_factor: 10,
                due_finding_reps: 5,
                body_runs: 3,
            }
        }
    }
    fn baseline_tenants(&self, due: usize, short: bool) -> usize {
        if short {
            20.min(due)
        } else {
            (due / 10).max(100)
        }
    }
}

fn require(path: PathBuf) -> R<PathBuf> {
    if path.exists() {
        Ok(path)
    } else {
        Err(format!("{} is missing (build it first: scripts/bench.sh does)", path.display()).into())
    }
}

async fn bench(args: &Args, log_dir: &Path) -> R<String> {
    let started = Instant::now();
    let counts = Counts::new(args.short);
    let bins = args.bins.clone().ok_or("--bins DIR is required")?;
    let mut binaries: Vec<(String, PathBuf)> = Vec::new();
    for name in FUNCTIONS.iter().chain([&BASELINE]) {
        binaries.push((name.to_string(), require(bins.join(name))?));
    }
    let mut t = Table::new();

    // Sizes. A debug build (--short without release binaries) is neither
    // stripped nor optimized: its sizes mean nothing and are not zipped.
    let debug = bins.file_name().is_some_and(|n| n == "debug");
    let arm64 = args.arm64.as_ref().filter(|d| binaries.iter().all(|(n, _)| d.join(n).join("bootstrap").exists()));
    let mut sizes: BTreeMap<String, (u64, u64, Option<u64>)> = BTreeMap::new();
    for (name, path) in &binaries {
        let native = file_size(path)?;
        let (zip_source, arm_size) = match arm64 {
            Some(dir) => {
                let b = dir.join(name).join("bootstrap");
                (b.clone(), Some(file_size(&b)?))
            }
            None => (path.clone(), None),
        };
        let zip = if debug { 0 } else { zipped_bootstrap_size(&zip_source, log_dir)? };
        sizes.insert(name.clone(), (native, zip, arm_size));
    }
    let zip_arch = if arm64.is_some() { "arm64" } else { "x86_64" };

    // Cold starts.
    let world = World::start().await?;
    progress(format!("cold starts: {} per binary, {} invocations each", counts.cold_starts, counts.invocations));
    let cold = cold_starts(&world, &binaries, counts.cold_starts, counts.invocations, log_dir).await?;
    let base: &ColdStarts = &cold[BASELINE];
    let base_init = base.init_median_ms();
    let base_rss = base.peak_rss_max();
    let (base_bin, base_zip, base_arm) = sizes[BASELINE];

    t.section(&format!(
        "Cold start: spawn to first poll of the Runtime API, median of {} (baseline: bare lambda_runtime hello world)",
        counts.cold_starts
    ));
    for f in FUNCTIONS {
        let init = cold[f].init_median_ms();
        t.row(
            format!("init {f}"),
            ms(init),
            ms(base_init),
            ratio(init, base_init),
            verdict(init <= 1.5 * base_init, "≤ 1.5x"),
        );
    }
    t.section(&format!(
        "Memory: peak RSS (VmHWM) after {} invocations, highest of {} processes",
        counts.invocations, counts.cold_starts
    ));
    for f in FUNCTIONS {
        let rss = cold[f].peak_rss_max();
        t.row(
            format!("peak RSS {f}"),
            mb(rss),
            mb(base_rss),
            ratio(rss as f64, base_rss as f64),
            verdict(rss as f64 <= 32.0 * MB, "≤ 32 MB"),
        );
    }
    bodies_section(&mut t, &world, &bins, counts.body_runs, log_dir).await?;
    if debug {
        t.section("Size: debug binaries (unstripped, unoptimized: not representative; zipped sizes skipped)");
    } else {
        t.section(&format!(
            "Size: stripped binary (x86_64{}), zipped bootstrap ({zip_arch})",
            if arm64.is_some() { "; arm64" } else { "" }
        ));
    }
    for f in FUNCTIONS {
        let (bin, zip, arm) = sizes[f];
        t.row(
            format!("binary {f} ({})", if debug { "x86_64, debug" } else { "x86_64" }),
            mb(bin),
            mb(base_bin),
            ratio(bin as f64, base_bin as f64),
            "",
        );
        if let (Some(arm), Some(base_arm)) = (arm, base_arm) {
            t.row(format!("binary {f} (arm64)"), mb(arm), mb(base_arm), ratio(arm as f64, base_arm as f64), "");
        }
        if !debug {
            t.row(
                format!("zipped bootstrap {f} ({zip_arch})"),
                mb(zip),
                mb(base_zip),
                ratio(zip as f64, base_zip as f64),
                verdict(zip as f64 <= 6.0 * MB, "≤ 6 MB"),
            );
        }
    }
    if arm64.is_none() && !debug {
        t.notes.push("Zipped sizes are of the x86_64 binaries: no arm64 build was given (`--arm64 DIR`).".to_owned());
    }

    // Warm latency.
    let lat = latency::run(
        &world,
        &bins.join("connection"),
        &bins.join("send-envelope"),
        counts.samples,
        counts.warmup,
        log_dir,
    )
    .await?;
    t.section(&format!(
        "Warm latency, {} samples after {} warm-up, through the binary + Runtime API (baseline: the same AWS/DocuSign calls made directly)",
        counts.samples, counts.warmup
    ));
    for (route, s, direct) in [
        ("GET /docusign/connection", &lat.connection, "TransactGetItems"),
        ("POST /docusign/envelopes", &lat.envelopes, "TransactGetItems + KMS Decrypt + POST envelope"),
    ] {
        for p in [50.0, 99.0] {
            let ours = percentile(&mut s.ours_ms.clone(), p);
            let base = percentile(&mut s.direct_ms.clone(), p);
            t.row(format!("{route} p{p:.0}"), ms(ours), format!("{} ({direct})", ms(base)), ratio(ours, base), "");
        }
    }
    let n = lat.calls_per_request_samples as usize;
    let send_kms = per(lat.send_calls.service("kms"), n);
    t.row("KMS calls per send", num(send_kms), "1 (Decrypt)", ratio(send_kms, 1.0), verdict(send_kms <= 1.0, "≤ 1"));
    let send_ddb = per(lat.send_calls.service("dynamodb"), n);
    t.row("DynamoDB calls per send", num(send_ddb), "1 (TransactGetItems)", ratio(send_ddb, 1.0), "");
    let conn_ddb = per(lat.connection_calls.service("dynamodb"), n);
    let conn_kms = per(lat.connection_calls.service("kms"), n);
    t.row(
        "DynamoDB / KMS calls per GET connection",
        format!("{} / {}", num(conn_ddb), num(conn_kms)),
        "1 / 0",
        ratio(conn_ddb, 1.0),
        "",
    );
    drop(world);

    // Sweeps.
    let mut due_rows = Vec::new();
    for &due in &counts.sweeps {
        let plan = sweep::Plan {
            due,
            baseline: counts.baseline_tenants(due, args.short),
            not_due: if due == counts.sweeps[0] { due * counts.not_due_factor } else { 0 },
            due_finding_reps: counts.due_finding_reps,
        };
        let run = sweep::run(&plan).await?;
        let rate = run.due as f64 / run.wall.as_secs_f64();
        let base_rate = run.baseline.tenants as f64 / run.baseline.wall.as_secs_f64();
        let label = thousands(due);
        t.section(&format!(
            "Sweep over {label} due tenants (in process, real adapters; baseline: minimal refresh made directly on {} other tenants of the same table, 16 at a time)",
            run.baseline.tenants
        ));
        t.row(
            format!("sweep {label}: wall time"),
            format!("{:.1} s", run.wall.as_secs_f64()),
            format!("{:.1} s (at the baseline's rate)", run.due as f64 / base_rate),
            ratio(run.wall.as_secs_f64(), run.due as f64 / base_rate),
            "",
        );
        t.row(
            format!("sweep {label}: tenants per second"),
            format!("{rate:.0}"),
            format!("{base_rate:.0}"),
            ratio(rate, base_rate),
            "",
        );
        let ddb = per(run.calls.service("dynamodb"), run.due);
        let base_ddb = per(run.baseline.calls.service("dynamodb"), run.baseline.tenants);
        t.row(format!("sweep {label}: DynamoDB calls per tenant"), num(ddb), num(base_ddb), ratio(ddb, base_ddb), "");
        let kms = per(run.calls.service("kms"), run.due);
        let base_kms = per(run.baseline.calls.service("kms"), run.baseline.tenants);
        t.row(
            format!("sweep {label}: KMS calls per tenant"),
            num(kms),
            num(base_kms),
            ratio(kms, base_kms),
            verdict(kms <= 3.0, "≤ 3"),
        );
        let grants = per(run.docusign_refresh_grants, run.due);
        t.row(format!("sweep {label}: DocuSign token grants per tenant"), num(grants), "1", ratio(grants, 1.0), "");
        t.notes.push(format!(
            "Sweep {label}: {:?}; calls per tenant: DynamoDB {} | KMS {}; seeding took {:.0} s.",
            run.summary,
            run.calls.breakdown("dynamodb", run.due as f64),
            run.calls.breakdown("kms", run.due as f64),
            run.seed_time.as_secs_f64()
        ));
        if let Some(d) = run.due_finding {
            due_rows.push(d);
        }
    }
    for d in due_rows {
        let (due, not_due) = (thousands(d.due), thousands(d.not_due));
        t.section(&format!(
            "Finding due tenants (`TokenStore::due_tenants`, median of {}), then again after adding {not_due} active tenants that are not due (in the index, expiring in 5-8 h); baseline: a filtered Scan of the same table",
            counts.due_finding_reps
        ));
        t.row(
            format!("due_tenants, {due} due: time"),
            ms(d.due_only_ms),
            ms(d.scan_due_only_ms),
            ratio(d.due_only_ms, d.scan_due_only_ms),
            "",
        );
        t.row(
            format!("due_tenants, {due} due + {not_due} not due: time"),
            ms(d.with_not_due_ms),
            ms(d.scan_with_not_due_ms),
            ratio(d.with_not_due_ms, d.scan_with_not_due_ms),
            format!("growth {:.2}x (moto walks the whole table per GSI query)", d.with_not_due_ms / d.due_only_ms),
        );
        t.row(
            format!("due_tenants, items read: {due} due → + {not_due} not due"),
            format!("{} → {}", d.due_only_items_read, d.with_not_due_items_read),
            format!("{} → {}", d.scan_due_only_items_read, d.scan_with_not_due_items_read),
            ratio(d.with_not_due_items_read as f64, d.scan_with_not_due_items_read as f64),
            verdict(d.with_not_due_items_read == d.due_only_items_read, "independent of not-due"),
        );
        t.row(
            "due_tenants, queries per call: without → with not-due",
            format!("{} → {}", d.due_only_queries, d.with_not_due_queries),
            "—",
            "",
            verdict(d.with_not_due_queries == d.due_only_queries, "same"),
        );
    }
    t.notes.push(format!(
        "Mode: {}; binaries from {}; run took {:.0} s.",
        if args.short { "--short (CI: small counts, figures indicative only)" } else { "full" },
        bins.display(),
        started.elapsed().as_secs_f64()
    ));
    Ok(t.render("DocuSign connector benchmark"))
}

// ---- the largest bodies ---------------------------------------------------------------

/// Rows for the peak memory of `send-envelope` with 6 MB bodies (`bodies.rs`).
async fn bodies_section(t: &mut Table, world: &World, bins: &Path, runs: usize, log_dir: &Path) -> R<()> {
    let measured = bodies::run(world, &bins.join("send-envelope"), runs, log_dir).await?;
    let base = measured.ordinary_peak_rss;
    t.section(&format!(
        "Memory with the largest bodies: send-envelope's peak RSS (VmHWM) over one ordinary send then one 6 MB body, highest of {runs} fresh processes (baseline: after the ordinary send only)"
    ));
    for p in &measured.peaks {
        let mut statuses = p.statuses.clone();
        statuses.dedup();
        let answered = statuses.iter().map(u16::to_string).collect::<Vec<_>>().join("/");
        t.row(
            format!("worst body: {} ({:.2} MB, answered {answered})", p.name, p.bytes as f64 / MB),
            mb(p.peak_rss),
            mb(base),
            ratio(p.peak_rss as f64, base as f64),
            verdict(p.peak_rss as f64 <= 48.0 * MB, "≤ 48 MB (64 MB with headroom)"),
        );
    }
    Ok(())
}

/// Only the largest-bodies rows: `bench-runner --bodies-only --bins DIR`.
async fn bodies_only(args: &Args, log_dir: &Path) -> R<String> {
    let started = Instant::now();
    let bins = args.bins.clone().ok_or("--bins DIR is required")?;
    require(bins.join("send-envelope"))?;
    let world = World::start().await?;
    let mut t = Table::new();
    bodies_section(&mut t, &world, &bins, Counts::new(args.short).body_runs, log_dir).await?;
    t.notes.push(format!(
        "Mode: --bodies-only; binaries from {}; run took {:.0} s.",
        bins.display(),
        started.elapsed().as_secs_f64()
    ));
    Ok(t.render("DocuSign connector benchmark: the largest bodies"))
}

// ---- profile comparison -------------------------------------------------------------------

async fn profiles(args: &Args, log_dir: &Path) -> R<String> {
    let short = args.short;
    let runs = if short { 3 } else { 11 };
    let samples = if short { 20 } else { 200 };
    let function = args.function.as_str();
    let hello = require(args.hello.clone().ok_or("--hello BINARY is required")?)?;
    if args.variants.is_empty() {
        return Err("at least one --variant NAME=BINARY".into());
    }
    let mut binaries: Vec<(String, PathBuf)> = vec![(BASELINE.to_owned(), hello)];
    for (name, path) in &args.variants {
        binaries.push((format!("{function}@{name}"), require(path.clone())?));
    }
    let world = World::start().await?;
    progress(format!("profiles: {runs} cold starts of each of {} binaries", binaries.len()));
    let cold = cold_starts(&world, &binaries, runs, 3, log_dir).await?;
    let env = world.function_env().await;
    let token = integration_tests::user_token(&world.tenant);
    let event = world::http_event(
        "POST",
        "/docusign/envelopes",
        "",
        Some(&token),
        Some(&integration_tests::fixtures::documents_envelope().to_string()),
    );
    let mut p50 = BTreeMap::new();
    for (name, path) in binaries.iter().skip(1) {
        progress(format!("profiles: warm POST /docusign/envelopes through {name}, {samples} samples"));
        let process = runtime::FunctionProcess::spawn_binary(path, function, &env, log_dir).await;
        let mut times = Vec::new();
        for i in 0..samples + 10 {
            let t = Instant::now();
            let answer = crate::runtime::invoke(&process, event.clone(), Duration::from_secs(20)).await?;
            if world::status_of(&answer) != 201 {
                return Err(format!("{name} answered {answer}").into());
            }
            if i >= 10 {
                times.push(t.elapsed().as_secs_f64() * 1000.0);
            }
        }
        p50.insert(name.clone(), median(&mut times));
    }
    let (current_name, _) = &binaries[1];
    let cur = &cold[current_name];
    let cur_bin = file_size(&binaries[1].1)?;
    let cur_zip = zipped_bootstrap_size(&binaries[1].1, log_dir)?;
    let mut t = Table::new();
    t.section(&format!("{function} built with each [profile.release] variant (x86_64), baseline: the first variant; init median of {runs}, POST envelopes p50 of {samples}"));
    for (name, path) in binaries.iter().skip(1) {
        let bin = file_size(path)?;
        let zip = zipped_bootstrap_size(path, log_dir)?;
        let c = &cold[name];
        t.row(format!("{name}: binary"), mb(bin), mb(cur_bin), ratio(bin as f64, cur_bin as f64), "");
        t.row(format!("{name}: zipped bootstrap"), mb(zip), mb(cur_zip), ratio(zip as f64, cur_zip as f64), "");
        t.row(
            format!("{name}: init"),
            ms(c.init_median_ms()),
            ms(cur.init_median_ms()),
            ratio(c.init_median_ms(), cur.init_median_ms()),
            "",
        );
        t.row(
            format!("{name}: peak RSS"),
            mb(c.peak_rss_max()),
            mb(cur.peak_rss_max()),
            ratio(c.peak_rss_max() as f64, cur.peak_rss_max() as f64),
            "",
        );
        t.row(
            format!("{name}: POST /docusign/envelopes p50"),
            ms(p50[name]),
            ms(p50[current_name]),
            ratio(p50[name], p50[current_name]),
            "",
        );
    }
    let h = &cold[BASELINE];
    t.row("hello-baseline init (reference)", ms(h.init_median_ms()), "", "", "");
    Ok(t.render("Release profile variants"))
}
