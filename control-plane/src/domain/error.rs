use std::fmt;

/// A value that failed to parse, with the request field it came from (dotted camelCase path,
/// e.g. `brokerNodeGroupInfo.storageInfo.ebsStorageInfo.volumeSize`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainError {
    pub field: String,
    pub message: String,
}

impl DomainError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for DomainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for DomainError {}

/// Attaches the request field to a parse failure: domain parsers say what is wrong, the edge
/// (which knows where the value came from) says where.
pub trait At<T> {
    fn at(self, field: &str) -> Result<T, DomainError>;
}

impl<T> At<T> for Result<T, String> {
    fn at(self, field: &str) -> Result<T, DomainError> {
        self.map_err(|message| DomainError::new(field, message))
    }
}
