//! `/api/user/agents*` (API.md §1.6): a user's own agents, TOON import/export, and reading an
//! agent by name.
//!
//! Reading follows the rule that running does (`agents::resolve`): the caller's own agent, else
//! the platform agent (built in or configured) of that name, else another user's public agent —
//! so `GET /api/user/agents/product` is the caller's own `product` for its owner and the system
//! `product` for everyone else, even when someone else's public record has that name (one left
//! by an import). That is the reference's own → community → system order with the platform
//! ahead of the community. No agent can be made public under a platform agent's name (409), and
//! `max_tool_iterations` must fit `[limits].max_tool_iterations` (422).

use http::{HeaderValue, StatusCode, header};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::agents::AgentSpec;
use crate::agents::resolve::{self, Choice, Found};
use crate::api::Context;
use crate::api::context::query;
use crate::app::App;
use crate::clock;
use crate::error::ApiError;
use crate::http::{Request, Response, response};
use crate::store::user_agents::{self, UserAgentRecord};
use crate::toon;

/// The tool-loop cap when a document does not set one.
const DEFAULT_MAX_TOOL_ITERATIONS: u32 = 10;

/// Where a resolved agent came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    User,
    Community,
    System,
}

impl Tier {
    fn as_str(self) -> &'static str {
        match self {
            Tier::User => "user",
            Tier::Community => "community",
            Tier::System => "system",
        }
    }
}

/// A create/import/update body: the flat form, or the guide's `{name, agent_type, config{...}}`.
#[derive(Default, Deserialize)]
struct AgentBody {
    name: Option<String>,
    model: Option<String>,
    system_prompt: Option<String>,
    tools: Option<Vec<String>>,
    display_name: Option<String>,
    description: Option<String>,
    max_tool_iterations: Option<u32>,
    parallel_tools: Option<bool>,
    is_public: Option<bool>,
    agent_type: Option<String>,
    config: Option<Map<String, Value>>,
}

fn owner(ctx: &Context) -> Result<String, ApiError> {
    Ok(ctx.user()?.user_id.clone())
}

fn validate_name(name: &str) -> Result<(), ApiError> {
    let valid = !name.is_empty()
        && name.chars().count() <= 64
        && name.chars().all(|c| c.is_alphanumeric() || c == '-' || c == '_');
    if valid {
        Ok(())
    } else {
        Err(ApiError::BadRequest("Agent name must be alphanumeric with hyphens and underscores only".into()))
    }
}

/// A model name, provider model id or tier. A tier no model declares is accepted too: it runs
/// on the default model, as in `[[agents]]` (templates and TOON files name tiers).
fn validate_model(app: &App, model: &str) -> Result<(), ApiError> {
    if app.llm().lookup(model).is_some() || crate::config::Tier::parse(model).is_some() {
        return Ok(());
    }
    let llm = app.llm();
    let available: Vec<&str> = llm.models().iter().map(|m| m.name.as_str()).collect();
    Err(ApiError::Unprocessable(format!("Model '{model}' not found. Available models: {available:?}")))
}

/// Built-ins that exist here, and MCP servers the operator opened to tenants (else 403).
pub(crate) fn validate_tools(app: &App, tools: &[String]) -> Result<(), ApiError> {
    use crate::tools::toolbox::ToolRefusal;
    app.tools().check_for_tenants(tools).map_err(|refusal| match refusal {
        ToolRefusal::Unknown { .. } => ApiError::Unprocessable(refusal.to_string()),
        ToolRefusal::Forbidden(_) => ApiError::Forbidden(refusal.to_string()),
    })
}

/// `max_tool_iterations` must fit `[limits].max_tool_iterations`: the cap bounds the model calls
/// one request can buy.
fn validate_iterations(app: &App, value: u32) -> Result<(), ApiError> {
    let cap = app.config().limits.max_tool_iterations;
    if (1..=cap).contains(&value) {
        Ok(())
    } else {
        Err(ApiError::Unprocessable(format!("max_tool_iterations must be between 1 and {cap}, got {value}")))
    }
}

/// A public agent may not carry a platform agent's name: to everyone but its owner that name
/// means the platform agent, so publishing it could only mislead (`agents::resolve`).
fn validate_public_name(app: &App, name: &str) -> Result<(), ApiError> {
    match app.agents().reserving(name) {
        Some(platform) => Err(ApiError::Conflict(format!(
            "Agent '{name}' cannot be public: the platform agent '{}' has that name",
            platform.name
        ))),
        None => Ok(()),
    }
}

/// The guide's form (API.md C11): `model`, `system_prompt`, `tools` and `max_tool_iterations`
/// come from `config` when absent at the top level. Whatever `config` says about
/// `max_tool_iterations` leaves it, so no stale value lingers among the extras (and the export).
fn lift_config(body: &mut AgentBody) -> Result<(), ApiError> {
    let Some(config) = body.config.as_mut() else { return Ok(()) };
    let mut take_str = |key: &str| match config.remove(key) {
        Some(Value::String(s)) => Some(s),
        _ => None,
    };
    if body.model.is_none() {
        body.model = take_str("model");
    }
    if body.system_prompt.is_none() {
        body.system_prompt = take_str("system_prompt");
    }
    if body.tools.is_none()
        && let Some(Value::Array(items)) = config.remove("tools")
    {
        body.tools = Some(items.into_iter().filter_map(|v| v.as_str().map(str::to_string)).collect());
    }
    match config.remove("max_tool_iterations") {
        None | Some(Value::Null) => {}
        Some(value) => {
            let n = value.as_u64().and_then(|n| u32::try_from(n).ok()).ok_or_else(|| {
                ApiError::Unprocessable(format!("max_tool_iterations must be a positive integer, got {value}"))
            })?;
            body.max_tool_iterations.get_or_insert(n);
        }
    }
    Ok(())
}

/// A new record from a body (after validation), owned by `user_id`.
fn record_from(app: &App, user_id: &str, mut body: AgentBody) -> Result<UserAgentRecord, ApiError> {
    lift_config(&mut body)?;
    let mut config = body.config.unwrap_or_default();
    let name = body.name.ok_or_else(|| ApiError::MissingField("name".into()))?;
    validate_name(&name)?;
    let model = body.model.ok_or_else(|| ApiError::MissingField("model".into()))?;
    validate_model(app, &model)?;
    let tools = body.tools.unwrap_or_default();
    validate_tools(app, &tools)?;
    if let Some(kind) = body.agent_type {
        config.insert("agent_type".into(), Value::String(kind));
    }
    let max_tool_iterations = body.max_tool_iterations.unwrap_or(DEFAULT_MAX_TOOL_ITERATIONS);
    validate_iterations(app, max_tool_iterations)?;
    let is_public = body.is_public.unwrap_or(false);
    if is_public {
        validate_public_name(app, &name)?;
    }
    let now = clock::now_unix();
    Ok(UserAgentRecord {
        id: uuid::Uuid::new_v4().to_string(),
        user_id: user_id.to_string(),
        name,
        display_name: body.display_name,
        description: body.description,
        model,
        system_prompt: body.system_prompt,
        tools,
        max_tool_iterations,
        parallel_tools: body.parallel_tools.unwrap_or(false),
        is_public,
        usage_count: 0,
        rating_sum: 0.0,
        rating_count: 0,
        extra_json: Value::Object(config).to_string(),
        created_at: now,
        updated_at: now,
    })
}

/// The AgentResponse shape.
fn view(agent: &UserAgentRecord, tier: Tier) -> Value {
    json!({
        "id": agent.id,
        "name": agent.name,
        "display_name": agent.display_name,
        "description": agent.description,
        "model": agent.model,
        "system_prompt": agent.system_prompt,
        "tools": agent.tools,
        "max_tool_iterations": agent.max_tool_iterations,
        "parallel_tools": agent.parallel_tools,
        "is_public": agent.is_public,
        "usage_count": agent.usage_count,
        "average_rating": (agent.rating_count > 0).then(|| agent.rating_sum / agent.rating_count as f64),
        "created_at": agent.created_at,
        "updated_at": agent.updated_at,
        "source": tier.as_str(),
    })
}

/// The TOON document of an agent (§5.2): the six fields in order, then extras sorted.
pub fn to_toon(agent: &UserAgentRecord) -> String {
    let mut fields: Vec<(String, Value)> = vec![
        ("name".into(), json!(agent.name)),
        ("model".into(), json!(agent.model)),
        ("system_prompt".into(), agent.system_prompt.clone().map_or(Value::Null, Value::String)),
        ("tools".into(), json!(agent.tools)),
        ("max_tool_iterations".into(), json!(agent.max_tool_iterations)),
        ("parallel_tools".into(), json!(agent.parallel_tools)),
    ];
    if let Ok(Value::Object(extra)) = serde_json::from_str::<Value>(&agent.extra_json) {
        fields.extend(extra);
    }
    toon::encode(&fields)
}

/// A TOON (or JSON object) agent document as a create body.
fn body_from_document(text: &str) -> Result<AgentBody, ApiError> {
    let invalid = |detail: String| ApiError::BadRequest(format!("Invalid TOON format: {detail}"));
    let trimmed = text.trim();
    let fields: Map<String, Value> = if trimmed.starts_with('{') {
        match serde_json::from_str::<Value>(trimmed) {
            Ok(Value::Object(map)) => map,
            _ => return Err(invalid("expected a TOON document or a JSON object".into())),
        }
    } else {
        toon::decode(text).map_err(|e| invalid(e.to_string()))?.into_iter().collect()
    };
    let mut fields = fields;
    let string = |fields: &mut Map<String, Value>, key: &str, required: bool| -> Result<Option<String>, ApiError> {
        match fields.remove(key) {
            Some(Value::String(s)) => Ok(Some(s)),
            None | Some(Value::Null) if !required => Ok(None),
            None | Some(Value::Null) => Err(invalid(format!("Deserialization error: missing field `{key}`"))),
            Some(other) => Err(invalid(format!("Deserialization error: invalid type for `{key}`: {other}"))),
        }
    };
    let name = string(&mut fields, "name", true)?;
    let model = string(&mut fields, "model", true)?;
    let system_prompt = string(&mut fields, "system_prompt", false)?;
    let tools = match fields.remove("tools") {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) => Some(
            items
                .into_iter()
                .map(|v| v.as_str().map(str::to_string).ok_or_else(|| invalid("tools must be strings".into())))
                .collect::<Result<Vec<_>, _>>()?,
        ),
        Some(_) => return Err(invalid("tools must be an array".into())),
    };
    let max_tool_iterations = match fields.remove("max_tool_iterations") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| invalid("max_tool_iterations must be a non-negative integer".into()))?,
        ),
    };
    let parallel_tools = match fields.remove("parallel_tools") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(b),
        Some(_) => return Err(invalid("parallel_tools must be true or false".into())),
    };
    Ok(AgentBody {
        name,
        model,
        system_prompt,
        tools,
        max_tool_iterations,
        parallel_tools,
        config: Some(fields),
        ..AgentBody::default()
    })
}

fn created(agent: &UserAgentRecord) -> Response {
    let mut body = view(agent, Tier::User);
    body["toon_preview"] = to_toon(agent).into();
    body["api_endpoint"] = format!("/api/user/agents/{}/chat", agent.name).into();
    response::json(StatusCode::CREATED, &body)
}

async fn store_new(ctx: &Context, record: UserAgentRecord) -> Result<Response, ApiError> {
    // A taken name is refused before the writer, where a failing job costs its batch a replay;
    // `insert` checks again against the committed state.
    if ctx.app.store().read_now(|txn| user_agents::get(txn, &record.user_id, &record.name))?.is_some() {
        return Err(user_agents::already_exists(&record.name).into());
    }
    let stored = record.clone();
    ctx.app.store().write(move |txn| user_agents::insert(txn, &stored)).await?;
    Ok(created(&record))
}

pub async fn create(ctx: &Context, request: Request) -> Result<Response, ApiError> {
    let body: AgentBody = ctx.json(request).await?;
    let record = record_from(&ctx.app, &owner(ctx)?, body)?;
    store_new(ctx, record).await
}

/// TOON (or a JSON object) whatever the Content-Type.
pub async fn import(ctx: &Context, request: Request) -> Result<Response, ApiError> {
    let bytes = ctx.body(request).await?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| ApiError::BadRequest("Invalid TOON format: body is not UTF-8".into()))?;
    let body =
        body_from_document(text).map_err(|e| if lost_its_line_breaks(text) { flattened_document() } else { e })?;
    let record = record_from(&ctx.app, &owner(ctx)?, body)?;
    store_new(ctx, record).await
}

/// `curl -d @file` strips line breaks, so a TOON file sent that way (as the docs' own import
/// example does) arrives as `name: x model: y …` on one line, and the field that comes second
/// looks missing. A document that failed to parse, has no line break and names several
/// `key:` fields was almost certainly flattened.
fn lost_its_line_breaks(text: &str) -> bool {
    let text = text.trim();
    let is_key = |token: &&str| {
        token.strip_suffix(':').is_some_and(|key| {
            let mut chars = key.chars();
            chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '[' || c == ']')
        })
    };
    !text.starts_with('{') && !text.contains('\n') && text.split_whitespace().filter(is_key).count() >= 2
}

fn flattened_document() -> ApiError {
    ApiError::BadRequest(
        "Invalid TOON format: the document arrived on one line, so its line breaks were lost \
         (curl -d strips them); send the file with --data-binary @agent-config.toon"
            .into(),
    )
}

#[derive(Default, Deserialize)]
struct ListQuery {
    include_public: Option<bool>,
    limit: Option<usize>,
    offset: Option<usize>,
}

/// The caller's agents, then (with `include_public`) other users' public ones — except those
/// named like a platform agent, which only their owners can reach.
pub async fn list(ctx: &Context, request: &Request) -> Result<Response, ApiError> {
    let q: ListQuery = query(request)?;
    let user = owner(ctx)?;
    let app = ctx.app.clone();
    let (own, community) = ctx
        .app
        .store()
        .read(move |txn| {
            let own = user_agents::list(txn, &user)?;
            let community = if q.include_public.unwrap_or(false) {
                let names: Vec<String> = own.iter().map(|a| a.name.clone()).collect();
                user_agents::public_of_others(txn, &user)?
                    .into_iter()
                    .filter(|a| !names.contains(&a.name) && app.agents().reserving(&a.name).is_none())
                    .skip(q.offset.unwrap_or(0))
                    .take(q.limit.unwrap_or(50).clamp(1, 500))
                    .collect()
            } else {
                Vec::new()
            };
            Ok((own, community))
        })
        .await?;
    let mut items: Vec<Value> = own.iter().map(|a| view(a, Tier::User)).collect();
    items.extend(community.iter().map(|a| view(a, Tier::Community)));
    Ok(response::json(StatusCode::OK, &Value::Array(items)))
}

/// What `name` means to `user_id` when read (the rule of `agents::resolve` for a named agent),
/// platform agents as synthesized records.
async fn resolve(app: &App, user_id: &str, name: &str) -> Result<Option<(UserAgentRecord, Tier)>, ApiError> {
    let found = resolve::for_user(app.store(), &app.agents(), user_id, name, Choice::Named).await?;
    Ok(found.map(|found| match found {
        Found::Own(agent) => (agent, Tier::User),
        Found::Platform(spec) => (system_record(&spec), Tier::System),
        Found::Community(agent) => (agent, Tier::Community),
    }))
}

fn system_record(spec: &AgentSpec) -> UserAgentRecord {
    UserAgentRecord {
        id: format!("system-{}", spec.name),
        user_id: "system".into(),
        name: spec.name.clone(),
        display_name: None,
        description: None,
        model: spec.model.clone().unwrap_or_default(),
        system_prompt: (!spec.system_prompt.is_empty()).then(|| spec.system_prompt.clone()),
        tools: spec.tools.clone(),
        max_tool_iterations: spec.max_iterations,
        parallel_tools: spec.parallel_tools,
        is_public: true,
        usage_count: 0,
        rating_sum: 0.0,
        rating_count: 0,
        extra_json: "{}".into(),
        created_at: 0,
        updated_at: 0,
    }
}

#[derive(Default, Deserialize)]
struct FormatQuery {
    format: Option<String>,
}

fn toon_response(agent: &UserAgentRecord, attachment: bool) -> Response {
    let mut out = http::Response::new(response::full(to_toon(agent)));
    let headers = out.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/x-toon; charset=utf-8"));
    if attachment && let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{}.toon\"", agent.name)) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    out
}

pub async fn get(ctx: &Context, name: &str, request: &Request) -> Result<Response, ApiError> {
    let format: FormatQuery = query(request)?;
    let (agent, tier) =
        resolve(&ctx.app, &owner(ctx)?, name).await?.ok_or_else(|| ApiError::from(user_agents::not_found(name)))?;
    if format.format.as_deref() == Some("toon") {
        return Ok(toon_response(&agent, false));
    }
    Ok(response::json(StatusCode::OK, &view(&agent, tier)))
}

pub async fn export(ctx: &Context, name: &str) -> Result<Response, ApiError> {
    let (agent, _) =
        resolve(&ctx.app, &owner(ctx)?, name).await?.ok_or_else(|| ApiError::from(user_agents::not_found(name)))?;
    Ok(toon_response(&agent, true))
}

/// Own agents only. Validated like a create: the model, the tools, the iteration cap, and no
/// going public under a platform agent's name.
pub async fn update(ctx: &Context, name: &str, request: Request) -> Result<Response, ApiError> {
    let mut body: AgentBody = ctx.json(request).await?;
    lift_config(&mut body)?;
    if let Some(model) = &body.model {
        validate_model(&ctx.app, model)?;
    }
    if let Some(tools) = &body.tools {
        validate_tools(&ctx.app, tools)?;
    }
    if let Some(n) = body.max_tool_iterations {
        validate_iterations(&ctx.app, n)?;
    }
    if body.is_public == Some(true) {
        validate_public_name(&ctx.app, name)?;
    }
    let (user, agent_name, now) = (owner(ctx)?, name.to_string(), clock::now_unix());
    let updated = ctx
        .app
        .store()
        .write(move |txn| {
            user_agents::update(txn, &user, &agent_name, |a| {
                if let Some(v) = &body.display_name {
                    a.display_name = Some(v.clone());
                }
                if let Some(v) = &body.description {
                    a.description = Some(v.clone());
                }
                if let Some(v) = &body.model {
                    a.model = v.clone();
                }
                if let Some(v) = &body.system_prompt {
                    a.system_prompt = Some(v.clone());
                }
                if let Some(v) = &body.tools {
                    a.tools = v.clone();
                }
                if let Some(v) = body.max_tool_iterations {
                    a.max_tool_iterations = v;
                }
                if let Some(v) = body.parallel_tools {
                    a.parallel_tools = v;
                }
                if let Some(v) = body.is_public {
                    a.is_public = v;
                }
                a.updated_at = now;
            })
        })
        .await?;
    Ok(response::json(StatusCode::OK, &view(&updated, Tier::User)))
}

pub async fn delete(ctx: &Context, name: &str) -> Result<Response, ApiError> {
    let (user, agent_name) = (owner(ctx)?, name.to_string());
    ctx.app.store().write(move |txn| user_agents::delete(txn, &user, &agent_name)).await?;
    Ok(response::no_content())
}
