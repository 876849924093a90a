//! A problem and where it is in the files.

use serde::Serialize;

pub use crate::problem::{did_you_mean, Problem, ProblemCode};

use super::source::Location;

/// A problem and where it is.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Diagnostic {
    #[serde(flatten)]
    pub location: Location,
    pub message: String,
    pub hint: Option<String>,
    #[serde(flatten)]
    pub problem: Problem,
}

impl Diagnostic {
    pub fn new(problem: Problem, location: Location) -> Self {
        Diagnostic {
            location,
            message: problem.to_string(),
            hint: problem.hint(),
            problem,
        }
    }
}
