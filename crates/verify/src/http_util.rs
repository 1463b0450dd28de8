//! Small HTTP helpers: bounded body reads and jittered backoff.

use std::time::Duration;

/// Reads a response body, refusing more than `cap` bytes (the issuer is trusted for content,
/// not for size: a broken proxy must not exhaust our memory).
pub(crate) async fn read_capped(
    mut resp: reqwest::Response,
    cap: usize,
) -> Result<Vec<u8>, String> {
    if resp.content_length().is_some_and(|l| l > cap as u64) {
        return Err(format!("response body larger than {cap} bytes"));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| format!("reading response body failed: {e}"))?
    {
        if body.len() + chunk.len() > cap {
            return Err(format!("response body larger than {cap} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A uniformly random fraction in [0, 1).
fn random_unit() -> f64 {
    let mut b = [0u8; 8];
    // Jitter needs no cryptographic quality, but aws-lc-rs is already here and never fails in
    // practice; a failure just means no jitter.
    if aws_lc_rs::rand::fill(&mut b).is_err() {
        return 0.5;
    }
    (u64::from_le_bytes(b) >> 11) as f64 / (1u64 << 53) as f64
}

/// Exponential backoff with "equal jitter": after the `attempt`-th consecutive failure
/// (1-based) wait between half and all of `min * 2^(attempt-1)`, capped at `max`. The jitter
/// keeps a fleet of verifiers from reconnecting in lockstep after an issuer restart.
pub(crate) fn retry_delay(attempt: u32, min: Duration, max: Duration) -> Duration {
    let exp = min.saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
    let base = exp.min(max);
    base / 2 + base.mul_f64(random_unit() / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let min = Duration::from_millis(100);
        let max = Duration::from_secs(5);
        for attempt in 1..40 {
            let d = retry_delay(attempt, min, max);
            let base = (min * 2u32.pow(attempt.min(20) - 1)).min(max);
            assert!(d >= base / 2 && d <= base, "attempt {attempt}: {d:?}");
        }
        let samples: std::collections::HashSet<_> =
            (0..20).map(|_| retry_delay(5, min, max)).collect();
        assert!(samples.len() > 1, "jitter varies");
    }
}
