use thiserror::Error;

/// Why a value could not be built from its raw form. `field` names the offending input field
/// as the API exposes it, so every transport can tell the client which field was wrong.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DomainError {
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
}

impl DomainError {
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        DomainError::Invalid {
            field,
            message: message.into(),
        }
    }

    pub fn field(&self) -> &'static str {
        match self {
            DomainError::Invalid { field, .. } => field,
        }
    }
}
