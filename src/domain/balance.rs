//! Choosing one instance for a caller: a random draw with probability proportional to
//! `weight / cost`.
//!
//! - With equal costs the split is exactly the registered weights.
//! - A slow or failing instance gets less traffic in proportion to how much slower it is, but never
//!   none while it is healthy: it keeps being used, so a brief blip does not send it to zero.
//! - Cost is the response-time average plus a floor of `COST_FLOOR_MS`, times one plus the
//!   instance's current run of failed probes (an instance still marked healthy but failing is
//!   penalised before the threshold flips it). The floor makes differences of a few milliseconds,
//!   which are measurement noise for a probe taken once per sweep, count for little.
//!
//! Why not power-of-two-choices: its strength is reacting to fresh per-request load that differs
//! between callers. Our only signal is the sweep's average, the same for every replica and at most
//! one sweep old, and P2C with replacement lets a slow instance win every duel against itself (a
//! quarter of the traffic with two instances whatever its speed). A proportional draw is exact,
//! O(n) in the instances of one service, and needs no shared state between replicas.

/// Milliseconds added to every response-time average before comparing.
pub const COST_FLOOR_MS: f64 = 25.0;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    pub weight: u32,
    pub response_time_ms: f64,
    pub consecutive_failures: u32,
}

impl Candidate {
    pub fn cost(&self) -> f64 {
        (self.response_time_ms.max(0.0) + COST_FLOOR_MS)
            * (1.0 + f64::from(self.consecutive_failures))
    }

    fn share(&self) -> f64 {
        f64::from(self.weight) / self.cost()
    }
}

/// The index of the chosen candidate; `None` when every weight is 0 (or there are none).
pub fn choose(candidates: &[Candidate], rng: &mut fastrand::Rng) -> Option<usize> {
    let total: f64 = candidates.iter().map(Candidate::share).sum();
    if total <= 0.0 {
        return None;
    }
    let mut ticket = rng.f64() * total;
    for (index, candidate) in candidates.iter().enumerate() {
        let share = candidate.share();
        if share > 0.0 && ticket < share {
            return Some(index);
        }
        ticket -= share;
    }
    // Rounding left the ticket a hair above the sum: the last instance with a share takes it.
    candidates.iter().rposition(|c| c.share() > 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(candidates: &[Candidate], rounds: usize) -> Vec<f64> {
        let mut rng = fastrand::Rng::with_seed(7);
        let mut counts = vec![0usize; candidates.len()];
        for _ in 0..rounds {
            counts[choose(candidates, &mut rng).unwrap()] += 1;
        }
        counts.iter().map(|&n| n as f64 / rounds as f64).collect()
    }

    fn at(weight: u32, response_time_ms: f64) -> Candidate {
        Candidate {
            weight,
            response_time_ms,
            consecutive_failures: 0,
        }
    }

    #[test]
    fn equal_costs_split_by_weight() {
        let shares = split(&[at(1, 10.0), at(3, 10.0)], 100_000);
        assert!((shares[0] - 0.25).abs() < 0.01, "{shares:?}");
    }

    #[test]
    fn a_slow_instance_gets_less() {
        let shares = split(&[at(1, 5.0), at(1, 150.0)], 100_000);
        // 30 / (30 + 175) of the traffic, about 0.146.
        assert!((shares[1] - 0.146).abs() < 0.01, "{shares:?}");
        assert!(
            shares[1] > 0.01,
            "a slow instance still gets some traffic: {shares:?}"
        );
    }

    #[test]
    fn failures_and_zero_weights() {
        let failing = Candidate {
            consecutive_failures: 2,
            ..at(1, 10.0)
        };
        let shares = split(&[at(1, 10.0), failing], 100_000);
        assert!((shares[1] - 0.25).abs() < 0.01, "{shares:?}");
        assert_eq!(split(&[at(0, 1.0), at(5, 500.0)], 1000), vec![0.0, 1.0]);
        assert_eq!(choose(&[at(0, 1.0)], &mut fastrand::Rng::new()), None);
        assert_eq!(choose(&[], &mut fastrand::Rng::new()), None);
    }
}
