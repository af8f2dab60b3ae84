//! Code generation behind `durable`'s attribute macros, `#[activity]`, `#[orchestrator]` and
//! `#[entity]`.
//!
//! This is an ordinary library working on [`proc_macro2::TokenStream`], so every stage can be
//! unit- and snapshot-tested without a compiler plugin. The `durable-fn-macros` crate calls
//! [`activity`], [`orchestrator`] and [`entity`] and returns what they give back.
//!
//! The stages, one module each:
//!
//! - `attr` parses the attribute's arguments (`name = "..."`, `crate = "..."`);
//! - `model` builds a borrowed view of the function that keeps the user's nodes for spans;
//! - `valid` checks the function's shape;
//! - `determinism` checks an orchestrator's body for calls and types that would break replay;
//! - `expand` generates the typed handle and its impls;
//! - `entity` does the same for `#[entity]`, with its own `model`, `valid` and `expand`
//!   submodules for class-style entities;
//! - `ctxt` collects the errors of every stage, so the user sees them all at once.
//!
//! Generated code names only `::durable::__private` (or `<path>::__private` with
//! `crate = "<path>"`), `::core` and `::std`. Each expansion writes the crate's path once, in a
//! `const _: () = { use ::durable::__private as __d; ... };` around its impls; only the field
//! types of an entity's proxy structs, which must be outside, name it again.

mod attr;
mod ctxt;
mod determinism;
mod entity;
mod expand;
mod model;
mod valid;

use proc_macro2::TokenStream;

use crate::model::Kind;

/// Expands `#[activity]` (with `args`, the tokens inside its parentheses) on `item`.
///
/// `item` must be an `async fn` whose first parameter is the `ActivityContext`, which takes at
/// most one owned input, and which returns `Result<T, E>`. The output replaces `item`: a unit
/// struct of the same name implementing `Activity`, or the unchanged item next to
/// `compile_error!`s when something is wrong.
pub fn activity(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::expand(Kind::Activity, args, item)
}

/// Expands `#[orchestrator]` (with `args`, the tokens inside its parentheses) on `item`.
///
/// Like [`activity`], with the `OrchestrationContext` first and the `Orchestrator` trait; the
/// body is also checked for calls that are not replay-safe (clocks, sleeps, spawns,
/// randomness, fresh ids, the environment, files and the network).
pub fn orchestrator(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::expand(Kind::Orchestrator, args, item)
}

/// Expands `#[entity]` (with `args`, the tokens inside its parentheses) on `item`.
///
/// On an inherent impl block (class style), every method is an operation taking `&self` or
/// `&mut self`, at most one owned input and optionally the `EntityContext`. The output is the
/// unchanged block, the proxies `{Type}Call`, `{Type}Signal` and `{Type}ClientSignal<'a>`, and
/// `impl Entity for Type`. On an `async fn` taking only the `EntityContext` (function style),
/// the output is a handle implementing `EntityFunction`, as for [`activity`].
pub fn entity(args: TokenStream, item: TokenStream) -> TokenStream {
    entity::expand(args, item)
}
