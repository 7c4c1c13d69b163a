/// Everything that can be wrong with a job spec.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The document is not valid YAML/JSON or does not have the spec's shape.
    #[error("job spec is not valid: {0} (see docs/job-spec.md for the format)")]
    Parse(String),
    /// A field has a value that is not allowed.
    #[error("job spec field `{field}`: {reason}")]
    Invalid {
        /// Dotted path of the field, e.g. `deal.confidence`.
        field: String,
        /// What is wrong and what is allowed.
        reason: String,
    },
    /// A pipeline document or one of its stages is malformed, or a stage's input cannot be
    /// derived from the previous stage's results.
    #[error("pipeline: {0} (see docs/pipelines.md)")]
    Pipeline(String),
}

impl Error {
    pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
