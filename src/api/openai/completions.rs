//! Not built yet.

use crate::api::Context;
use crate::error::ApiError;
use crate::http::{Request, Response};

pub async fn create(_ctx: &Context, _request: Request) -> Result<Response, ApiError> {
    Err(ApiError::ServiceUnavailable("This endpoint is not available yet".into()))
}
