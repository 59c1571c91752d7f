//! Admission control in front of decoding and embedding: how many requests may be in
//! progress, how many bytes of images they may hold (what each image will weigh once
//! prepared), how many source pixels they may have to decode (the CPU they will cost), both
//! read from the headers before anything is decoded, and how many images are decoded at
//! once. A request that does not fit is refused at once with RESOURCE_EXHAUSTED instead of
//! queueing without bound or timing out; one larger than a whole budget runs only when
//! nothing else holds any of it. Decoding waits for a free decoder, so a burst of large
//! images costs at most that many full-size decodes of memory and never more CPU than the
//! cores.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError};

use super::error::ServiceError;

#[derive(Debug, Clone, Copy)]
pub struct AdmissionLimits {
    /// Requests decoding, embedding or waiting for an embedding worker.
    pub max_requests: usize,
    /// Bytes of request images and of their prepared pixels held by those requests.
    pub max_image_bytes: usize,
    /// Source pixels those requests decode.
    pub max_pixels: u64,
    /// Images decoded at the same time.
    pub decoders: usize,
}

/// What a request's images will cost, from their headers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestCost {
    /// Their bytes plus their prepared model inputs' pixels.
    pub bytes: usize,
    /// Width × height, summed.
    pub source_pixels: u64,
}

pub struct Admission {
    requests: Arc<Semaphore>,
    bytes: Budget,
    pixels: Budget,
    decoders: Arc<Semaphore>,
    limits: AdmissionLimits,
}

/// What an admitted request holds until it is answered.
pub struct Admitted {
    _request: OwnedSemaphorePermit,
    _bytes: OwnedSemaphorePermit,
    _pixels: OwnedSemaphorePermit,
}

/// A budget counted in units of 1024, so that a `u32` of permits spans terabytes.
struct Budget {
    units: Arc<Semaphore>,
    total: u32,
}

impl Budget {
    fn new(total: u64) -> Self {
        let total = (total / 1024).clamp(1, u32::MAX as u64 / 2) as u32;
        Self {
            units: Arc::new(Semaphore::new(total as usize)),
            total,
        }
    }

    /// A request over the whole budget takes all of it.
    fn try_take(&self, amount: u64) -> Option<OwnedSemaphorePermit> {
        let units = amount.div_ceil(1024).clamp(1, self.total as u64) as u32;
        self.units.clone().try_acquire_many_owned(units).ok()
    }
}

impl Admission {
    pub fn new(limits: AdmissionLimits) -> Self {
        Self {
            requests: Arc::new(Semaphore::new(limits.max_requests.max(1))),
            bytes: Budget::new(limits.max_image_bytes as u64),
            pixels: Budget::new(limits.max_pixels),
            decoders: Arc::new(Semaphore::new(limits.decoders.max(1))),
            limits,
        }
    }

    /// Admits a request that will cost `cost`, or refuses it at once.
    pub fn admit(&self, cost: RequestCost) -> Result<Admitted, ServiceError> {
        let busy = |what: String| {
            ServiceError::ResourceExhausted(format!("the server is busy ({what}); retry later"))
        };
        let request = self
            .requests
            .clone()
            .try_acquire_owned()
            .map_err(|e| match e {
                TryAcquireError::NoPermits => {
                    busy(format!("{} requests in progress", self.limits.max_requests))
                }
                TryAcquireError::Closed => ServiceError::Unavailable("shutting down".into()),
            })?;
        let bytes = self.bytes.try_take(cost.bytes as u64).ok_or_else(|| {
            busy(format!(
                "{} MiB of images in flight",
                self.limits.max_image_bytes >> 20
            ))
        })?;
        let pixels = self.pixels.try_take(cost.source_pixels).ok_or_else(|| {
            busy(format!(
                "{} megapixels being decoded",
                self.limits.max_pixels / 1_000_000
            ))
        })?;
        Ok(Admitted {
            _request: request,
            _bytes: bytes,
            _pixels: pixels,
        })
    }

    /// Waits for a free decoder (the wait ends if the request is dropped).
    pub async fn decoder(&self) -> OwnedSemaphorePermit {
        self.decoders
            .clone()
            .acquire_owned()
            .await
            .expect("the decoder semaphore is never closed")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admission() -> Admission {
        Admission::new(AdmissionLimits {
            max_requests: 2,
            max_image_bytes: 10 << 20,
            max_pixels: 100_000_000,
            decoders: 1,
        })
    }

    fn bytes(n: usize) -> RequestCost {
        RequestCost {
            bytes: n,
            source_pixels: 1,
        }
    }

    #[test]
    fn refuses_beyond_the_request_and_byte_budgets_and_frees_on_drop() {
        let a = admission();
        let first = a.admit(bytes(6 << 20)).unwrap();
        let err = a.admit(bytes(6 << 20)).err().unwrap().to_string();
        assert!(err.contains("MiB of images in flight"), "{err}");
        let second = a.admit(bytes(1 << 20)).unwrap();
        let err = a.admit(bytes(1)).err().unwrap().to_string();
        assert!(err.contains("2 requests in progress"), "{err}");
        drop((first, second));
        assert!(
            a.admit(bytes(9 << 20)).is_ok(),
            "permits come back when requests end"
        );
    }

    #[test]
    fn a_request_over_a_whole_budget_runs_alone() {
        let a = admission();
        let huge = RequestCost {
            bytes: 1,
            source_pixels: 800_000_000,
        };
        let alone = a.admit(huge).unwrap();
        let err = a.admit(bytes(1)).err().unwrap().to_string();
        assert!(err.contains("100 megapixels being decoded"), "{err}");
        drop(alone);
        let small = a.admit(bytes(1)).unwrap();
        assert!(
            a.admit(huge).is_err(),
            "not while anything else holds the budget"
        );
        drop(small);
    }
}
