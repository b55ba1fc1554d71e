//! `POST /api/admin/backup`: a consistent snapshot of the database while serving.

use http::StatusCode;
use serde_json::json;

use crate::api::Context;
use crate::api::admin::audit;
use crate::backup;
use crate::error::ApiError;
use crate::http::{Response, response};
use crate::store::audit as audit_store;

pub async fn create(ctx: &Context) -> Result<Response, ApiError> {
    let app = ctx.app.clone();
    let manifest = tokio::task::spawn_blocking(move || {
        let dir = backup::backups_dir(app.config().storage.backups_dir.as_deref(), app.data_dir());
        backup::create(app.store(), &dir)
    })
    .await
    .map_err(|e| ApiError::Internal(format!("backup task failed: {e}")))??;
    let entry = audit::entry(
        ctx,
        "create_backup",
        "backup",
        manifest.path.display().to_string(),
        json!({ "bytes": manifest.bytes }),
    );
    ctx.app.store().write(move |txn| audit_store::append(txn, &entry)).await?;
    Ok(response::json(StatusCode::CREATED, &manifest))
}
