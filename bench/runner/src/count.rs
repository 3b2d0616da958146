//! Counting AWS calls. moto reports nothing per call, so the bench's own
//! SDK clients carry an interceptor that counts every request actually sent
//! (retries and result pages included), by operation (`X-Amz-Target`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;

/// Calls by service and operation, e.g. `dynamodb:TransactGetItems`.
#[derive(Clone, Debug, Default)]
pub struct Counter(Arc<Mutex<BTreeMap<String, u64>>>);

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Calls(pub BTreeMap<String, u64>);

impl Counter {
    pub fn snapshot(&self) -> Calls {
        Calls(self.0.lock().unwrap().clone())
    }
}

impl Calls {
    /// What happened between `earlier` and `self`.
    pub fn since(&self, earlier: &Calls) -> Calls {
        Calls(
            self.0
                .iter()
                .map(|(k, v)| (k.clone(), v - earlier.0.get(k).copied().unwrap_or(0)))
                .filter(|(_, v)| *v > 0)
                .collect(),
        )
    }
    pub fn service(&self, service: &str) -> u64 {
        let prefix = format!("{service}:");
        self.0.iter().filter(|(k, _)| k.starts_with(&prefix)).map(|(_, v)| v).sum()
    }
    pub fn op(&self, service: &str, op: &str) -> u64 {
        self.0.get(&format!("{service}:{op}")).copied().unwrap_or(0)
    }
    /// `TransactGetItems 2, UpdateItem 3` for one service, divided by `per`.
    pub fn breakdown(&self, service: &str, per: f64) -> String {
        let prefix = format!("{service}:");
        self.0
            .iter()
            .filter_map(|(k, v)| k.strip_prefix(&prefix).map(|op| format!("{op} {}", fmt_per(*v as f64 / per))))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn fmt_per(x: f64) -> String {
    if (x - x.round()).abs() < 0.005 {
        format!("{}", x.round() as i64)
    } else {
        format!("{x:.2}")
    }
}

#[derive(Debug)]
struct CountCalls {
    service: &'static str,
    counter: Counter,
}

impl Intercept for CountCalls {
    fn name(&self) -> &'static str {
        "BenchCountCalls"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let target = context.request().headers().get("x-amz-target").unwrap_or("unknown");
        let op = target.rsplit('.').next().unwrap_or(target);
        *self.counter.0.lock().unwrap().entry(format!("{}:{op}", self.service)).or_default() += 1;
        Ok(())
    }
}

pub fn dynamodb(base: &aws_sdk_dynamodb::Client, counter: &Counter) -> aws_sdk_dynamodb::Client {
    let config =
        base.config().to_builder().interceptor(CountCalls { service: "dynamodb", counter: counter.clone() }).build();
    aws_sdk_dynamodb::Client::from_conf(config)
}

pub fn kms(base: &aws_sdk_kms::Client, counter: &Counter) -> aws_sdk_kms::Client {
    let config =
        base.config().to_builder().interceptor(CountCalls { service: "kms", counter: counter.clone() }).build();
    aws_sdk_kms::Client::from_conf(config)
}
