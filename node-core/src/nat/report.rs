//! The connectivity report ("doctor"): for one attempt to link two nodes, each strategy of the
//! ladder with what came of it, so a user can see which one won and why the earlier ones did not.

use super::plan::Strategy;
use serde::{Deserialize, Serialize};

/// Which end of the attempt this node was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// It asked to link.
    Initiator,
    /// The peer asked.
    Responder,
}

/// What one strategy came to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "result")]
pub enum StepResult {
    /// The link came up this way.
    Linked,
    /// Tried, and it failed for this reason.
    Failed {
        /// Why.
        reason: String,
    },
    /// Tried, and nothing happened within the step's time.
    TimedOut,
    /// Not tried, for this reason.
    Skipped {
        /// Why.
        reason: String,
    },
}

/// One strategy in a report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepReport {
    /// The strategy.
    pub strategy: Strategy,
    /// What came of it.
    #[serde(flatten)]
    pub result: StepResult,
    /// Time spent on it, in milliseconds (0 when skipped).
    pub took_ms: u64,
}

/// The whole attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectReport {
    /// This node's part.
    pub role: Role,
    /// The strategy that linked the two, if one did.
    pub linked: Option<Strategy>,
    /// Why the attempt ended without a link, if it did.
    pub failure: Option<String>,
    /// Every step, in order.
    pub steps: Vec<StepReport>,
    /// From the request to the end, in milliseconds.
    pub took_ms: u64,
}

impl ConnectReport {
    /// The report as lines a person reads: the outcome, then each step with what became of it.
    pub fn summary(&self) -> Vec<String> {
        let mut lines = vec![match (&self.linked, &self.failure) {
            (Some(s), _) => format!("linked by {} after {} ms", s.as_str(), self.took_ms),
            (None, Some(why)) => format!("not linked after {} ms: {why}", self.took_ms),
            (None, None) => format!("not linked after {} ms", self.took_ms),
        }];
        for step in &self.steps {
            let what = match &step.result {
                StepResult::Linked => format!("linked in {} ms", step.took_ms),
                StepResult::Failed { reason } => format!("failed after {} ms: {reason}", step.took_ms),
                StepResult::TimedOut => format!("timed out after {} ms", step.took_ms),
                StepResult::Skipped { reason } => format!("skipped: {reason}"),
            };
            lines.push(format!("{}: {what}", step.strategy.as_str()));
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_names_the_winner_and_why_each_earlier_step_did_not_win() {
        let report = ConnectReport {
            role: Role::Initiator,
            linked: Some(Strategy::UdpPunch),
            failure: None,
            steps: vec![
                StepReport {
                    strategy: Strategy::LanDirect,
                    result: StepResult::Skipped { reason: "not on the same LAN".into() },
                    took_ms: 0,
                },
                StepReport { strategy: Strategy::Reverse, result: StepResult::TimedOut, took_ms: 5000 },
                StepReport { strategy: Strategy::UdpPunch, result: StepResult::Linked, took_ms: 400 },
            ],
            took_ms: 5600,
        };
        assert_eq!(
            report.summary(),
            [
                "linked by udp-punch after 5600 ms",
                "lan-direct: skipped: not on the same LAN",
                "reverse: timed out after 5000 ms",
                "udp-punch: linked in 400 ms",
            ]
        );
    }
}
