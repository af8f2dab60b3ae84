//! The web dashboard (feature `dashboard`): server-rendered pages at [`BASE`] beside the API,
//! served by the same server and under the same key rule.
//!
//! | Path | Shows or does |
//! |---|---|
//! | `/durable/` | instances: counts by status, a filtered, paged list, newest or oldest first |
//! | `/durable/instances/{id}` | one instance: input, output, custom status, failure chain, timeline, parent and children, actions |
//! | `/durable/entities`, `/durable/entities/{name}/{key}` | entities: list, state, lock holder, signal, delete |
//! | `/durable/attention` | nondeterminism failures, parked messages, instances without progress, entities locked too long |
//! | `POST /durable/api/...` | the actions, answered in JSON; besides the key they must carry the header `x-durable-dashboard` |
//!
//! Pages are plain HTML written by this module with every stored text escaped; one small
//! script (served by the host, like the style sheet) confirms actions, sends them, and
//! refreshes the parts of a page marked live. Nothing is fetched from another site.

mod actions;
mod attention;
mod auth;
mod entities;
mod html;
mod instance;
mod instances;
mod timeline;

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use super::HttpOptions;
use super::state::AppState;
use crate::client::Client;

/// Where the dashboard lives.
pub const BASE: &str = "/durable";

const APP_CSS: &str = include_str!("assets/app.css");
const APP_JS: &str = include_str!("assets/app.js");

/// The dashboard's routes for `client`, under [`BASE`], with the key of `options` (if any).
/// [`HttpServer`](super::HttpServer) serves them beside the API when the feature is on; mount
/// them in an axum application of your own otherwise.
pub fn router(client: Client, options: Arc<HttpOptions>) -> Router {
    let state = AppState { client, options };
    let at = |path: &str| format!("{BASE}{path}");
    let guarded = Router::new()
        .route(&at("/"), get(instances::list))
        .route(&at("/instances"), get(instances::list))
        .route(&at("/instances/{id}"), get(instance::show))
        .route(&at("/entities"), get(entities::list))
        .route(&at("/entities/{name}/{key}"), get(entities::show))
        .route(&at("/attention"), get(attention::show))
        .route(&at("/api/instances/{id}/{action}"), post(actions::instance))
        .route(
            &at("/api/entities/{name}/{key}/{action}"),
            post(actions::entity),
        )
        .route(&at("/{*rest}"), get(not_found))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth::authorize,
        ));
    Router::new()
        .route(
            BASE,
            get(|| async { Redirect::permanent(&format!("{BASE}/")) }),
        )
        .route(&at("/login"), post(auth::login))
        .route(&at("/logout"), post(auth::logout))
        .route(&at("/assets/app.css"), get(|| asset(APP_CSS, "text/css")))
        .route(
            &at("/assets/app.js"),
            get(|| asset(APP_JS, "text/javascript")),
        )
        .merge(guarded)
        .with_state(state)
}

async fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

async fn not_found(State(state): State<AppState>) -> Response {
    html::message_page(
        StatusCode::NOT_FOUND,
        "Not found",
        "There is no dashboard page at this address.",
        &context(&state),
    )
}

/// What every page shows about the host.
fn context(state: &AppState) -> html::PageContext {
    html::PageContext {
        hub: state.client.store().task_hub().to_string(),
        keyed: state.options.key.is_some(),
    }
}

/// A page for a failure of the host while answering (the store failed, say): logged in full,
/// shown without internals.
fn failure_page(state: &AppState, e: crate::model::Error) -> Response {
    tracing::error!(error = %e, "a dashboard page failed");
    html::message_page(
        StatusCode::INTERNAL_SERVER_ERROR,
        "The host failed",
        &format!(
            "The host could not answer ({}); see the host's log.",
            e.kind().as_str()
        ),
        &context(state),
    )
}
