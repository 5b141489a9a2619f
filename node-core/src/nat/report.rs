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
