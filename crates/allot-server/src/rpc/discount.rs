//! The discount-code operations' input, parsed once for gRPC (`discount.Discount`) and REST
//! (`/api/v1/discount-codes`). A code to use is parsed by the use case itself
//! ([`crate::service::DiscountCodes::use_code`]), the same for both.

use allot_domain::discount::{CodeLength, GenerateCount};

use crate::ServiceError;

/// A batch of codes to generate.
#[derive(Debug, Clone, Copy)]
pub(crate) struct GenerateCodes {
    pub count: GenerateCount,
    pub length: CodeLength,
}

impl GenerateCodes {
    /// Both fields are required (`None`: left out); the first missing, then the first out of
    /// range, is named.
    pub(crate) fn parse(
        count: Option<u64>,
        length: Option<u32>,
    ) -> Result<GenerateCodes, ServiceError> {
        let count = count.ok_or_else(|| required("count"))?;
        let length = length.ok_or_else(|| required("length"))?;
        Ok(GenerateCodes {
            count: GenerateCount::parse(count)?,
            length: CodeLength::parse(length)?,
        })
    }
}

fn required(field: &'static str) -> ServiceError {
    ServiceError::InvalidArgument {
        field,
        message: format!("{field}: is required"),
    }
}
