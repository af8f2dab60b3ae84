//! Checks a class-style entity's impl block and its operations, reporting each mistake at the
//! user's token with a message that says what to write instead.
//!
//! A mistake in the block itself (a trait impl, a generic impl, a state type that is not a
//! plain name) leaves nothing to expand. A mistake in one operation drops only that operation,
//! so the entity and its other operations still expand and callers keep type-checking.

use std::collections::HashMap;

use proc_macro2::Ident;
use syn::{ImplItem, ImplItemFn, PatType, ReceiverKind, Safety, Type};

use super::model::{ContextRef, EntityImpl, OpParam, Operation, is_result, result_ok};
use crate::ctxt::Ctxt;
use crate::model::peel;
use crate::valid::{check_generics, check_owned, pat_text, reject_impl_trait, type_text};

/// What an operation is called in messages.
const OPERATION: &str = "an operation";

/// The receiver rule, said once.
const RECEIVER_RULE: &str = "an operation takes `&self` (read-only) or `&mut self`";

/// A class-style entity whose impl block passed validation.
pub(crate) struct Entity<'a> {
    /// The user's impl block.
    pub(crate) item: &'a syn::ItemImpl,
    /// The state type, as written in the impl header.
    pub(crate) self_ty: &'a Type,
    /// The state type's name: the last segment of its path.
    pub(crate) ident: &'a Ident,
    /// The operations that passed validation, in order.
    pub(crate) ops: Vec<ValidOp<'a>>,
}

impl Entity<'_> {
    /// Whether the type defines its own `delete`, replacing the built-in one.
    pub(crate) fn defines_delete(&self) -> bool {
        self.ops.iter().any(|op| op.name == "delete")
    }
}

/// An operation that passed validation.
pub(crate) struct ValidOp<'a> {
    /// The user's method.
    pub(crate) method: &'a ImplItemFn,
    /// The operation's name, lower case.
    pub(crate) name: String,
    /// `&mut self` (true) or `&self`.
    pub(crate) mutates: bool,
    /// The parameters after `self`, in order.
    pub(crate) args: Vec<Arg<'a>>,
    /// What the operation returns.
    pub(crate) output: Output<'a>,
}

impl<'a> ValidOp<'a> {
    /// The input parameter, if the operation takes one.
    pub(crate) fn input(&self) -> Option<&'a PatType> {
        self.args.iter().find_map(|arg| match arg {
            Arg::Input(input) => Some(*input),
            Arg::Context { .. } => None,
        })
    }

    /// Whether the operation takes the context.
    pub(crate) fn takes_context(&self) -> bool {
        self.args
            .iter()
            .any(|arg| matches!(arg, Arg::Context { .. }))
    }
}

/// A parameter of a valid operation.
pub(crate) enum Arg<'a> {
    /// The entity context, by value (cloned from the dispatcher's) or by reference.
    Context { ty: &'a Type, by_ref: bool },
    /// The operation's input.
    Input(&'a PatType),
}

/// What a valid operation returns.
pub(crate) enum Output<'a> {
    /// Nothing: callers receive `()`.
    Unit,
    /// A value, returned as is.
    Value(&'a Type),
    /// A `Result`: callers receive its `Ok` type (`ok`, when written out), and its error
    /// fails the operation.
    Result { ty: &'a Type, ok: Option<&'a Type> },
}

/// Checks the impl block, recording every mistake in `cx`. Returns `None` when the block
/// itself is wrong; otherwise the entity with its valid operations.
pub(crate) fn check<'a>(cx: &Ctxt, model: &EntityImpl<'a>) -> Option<Entity<'a>> {
    let item = model.item;
    let mut block_ok = true;
    if let Some((path, for_token)) = &item.trait_ {
        cx.error_spanned_by(
            quote::quote!(#path #for_token),
            format_args!(
                "`#[entity]` goes on the inherent impl block of the state type, not on an impl of `{}`: write `#[entity] impl {} {{ ... }}` with the operations as methods, and implement the trait in a separate block",
                type_text(path),
                type_text(&*item.self_ty),
            ),
        );
        block_ok = false;
    }
    if !item.generics.params.is_empty() || item.generics.where_clause.is_some() {
        cx.error_spanned_by(
            &item.generics,
            "`#[entity]` cannot go on a generic impl block: an entity is registered and addressed by name, so its state type must be one concrete type; remove the generic parameters",
        );
        block_ok = false;
    }
    // A generic impl's type takes its parameters: that is one mistake, reported once.
    let ident = match item.generics.params.is_empty() {
        true => state_ident(cx, &item.self_ty),
        false => None,
    };
    for other in &model.others {
        let what = match other {
            ImplItem::Macro(_) => "`#[entity]` cannot see the operations a macro would generate",
            _ => "an `#[entity]` impl block holds only operations (and constants)",
        };
        cx.error_spanned_by(
            other,
            format_args!("{what}: move this item to another `impl` block"),
        );
    }
    let mut ops = Vec::new();
    let mut seen: HashMap<&str, &Ident> = HashMap::new();
    for op in &model.ops {
        let valid = check_op(cx, op);
        let ident = &op.method.sig.ident;
        if let Some(first) = seen.get(op.name.as_str()) {
            cx.error_spanned_by(
                ident,
                format_args!(
                    "duplicate operation `{}`: operation names are case-insensitive, so `{first}` and `{ident}` are the same operation; rename one of them",
                    op.name,
                ),
            );
            continue;
        }
        seen.insert(&op.name, ident);
        ops.extend(valid);
    }
    match (block_ok, ident) {
        (true, Some(ident)) => Some(Entity {
            item,
            self_ty: &item.self_ty,
            ident,
            ops,
        }),
        _ => None,
    }
}

/// The state type must be a plain name (`Counter`, `crate::Counter`): its name becomes the
/// entity's name and prefixes its proxies' names.
fn state_ident<'a>(cx: &Ctxt, ty: &'a Type) -> Option<&'a Ident> {
    if let Type::Path(path) = peel(ty)
        && path.qself.is_none()
        && let Some(last) = path.path.segments.last()
    {
        if last.arguments.is_empty() {
            return Some(&last.ident);
        }
        cx.error_spanned_by(
            &last.arguments,
            format_args!(
                "an entity's state type cannot take generic arguments: an entity is registered and addressed by name; define a type for this state, e.g. `struct {}State(...)`",
                last.ident,
            ),
        );
        return None;
    }
    cx.error_spanned_by(
        ty,
        format_args!(
            "`#[entity]` needs a named state type, not `{}`: define `#[derive(Default, Serialize, Deserialize)] struct Counter {{ ... }}` and write `#[entity] impl Counter {{ ... }}`",
            type_text(ty),
        ),
    );
    None
}

/// Checks one operation; returns it when nothing was wrong with it.
fn check_op<'a>(cx: &Ctxt, op: &Operation<'a>) -> Option<ValidOp<'a>> {
    let before = cx.len();
    let method = op.method;
    let sig = &method.sig;
    for attr in &method.attrs {
        if attr.path().is_ident("cfg") || attr.path().is_ident("cfg_attr") {
            cx.error_spanned_by(
                attr,
                "an operation cannot be conditional: the entity's operations are fixed when it compiles; put the method in a separate `#[cfg]` impl block without `#[entity]`",
            );
        }
    }
    match &sig.safety {
        Safety::Unsafe(token) => cx.error_spanned_by(
            token,
            "an operation cannot be `unsafe`: remove `unsafe` and use an `unsafe` block inside the body",
        ),
        Safety::Safe(token) => cx.error_spanned_by(token, "an operation cannot be `safe`: remove `safe`"),
        _ => {}
    }
    if let Some(abi) = &sig.abi {
        cx.error_spanned_by(abi, "an operation cannot have an `extern` ABI: remove it");
    }
    check_generics(cx, OPERATION, &sig.generics);
    let mutates = check_receiver(cx, op);
    for param in &op.params {
        reject_impl_trait(cx, OPERATION, &param.arg.ty);
    }
    let args = check_params(cx, &op.params);
    let output = check_output(cx, op.output);
    match (cx.len() == before, mutates, output) {
        (true, Some(mutates), Some(output)) => Some(ValidOp {
            method,
            name: op.name.clone(),
            mutates,
            args,
            output,
        }),
        _ => None,
    }
}

/// `&self` or `&mut self`; returns whether the operation may change the state.
fn check_receiver(cx: &Ctxt, op: &Operation) -> Option<bool> {
    let Some(receiver) = op.receiver else {
        cx.error_spanned_by(
            &op.method.sig.ident,
            format_args!(
                "`{}` has no `self`: {RECEIVER_RULE}; move helpers without `self` to another impl block",
                op.method.sig.ident,
            ),
        );
        return None;
    };
    let found = match &receiver.kind {
        ReceiverKind::Reference(_, _, mutability) => return Some(mutability.is_some()),
        ReceiverKind::Typed(_, ty) => match peel(ty) {
            Type::Reference(reference) if is_self(&reference.elem) => {
                return Some(reference.mutability.is_some());
            }
            _ => format!("`self: {}`", type_text(ty)),
        },
        _ => "`self` by value".to_owned(),
    };
    cx.error_spanned_by(
        receiver,
        format_args!(
            "{RECEIVER_RULE}, not {found}: the entity keeps its state; write `&mut self` to change it or `&self` to read it"
        ),
    );
    None
}

/// Whether a type is `Self`.
fn is_self(ty: &Type) -> bool {
    matches!(peel(ty), Type::Path(path) if path.qself.is_none() && path.path.is_ident("Self"))
}

/// At most one context (`&EntityContext` or `EntityContext`) and at most one owned input.
fn check_params<'a>(cx: &Ctxt, params: &[OpParam<'a>]) -> Vec<Arg<'a>> {
    let mut args = Vec::new();
    let mut inputs = Vec::new();
    let mut has_context = false;
    for param in params {
        match param.context {
            Some(ContextRef::Exclusive) => cx.error_spanned_by(
                &param.arg.ty,
                format_args!(
                    "take the context as `&EntityContext` or `EntityContext`, not `&mut`: write `{}: &EntityContext`",
                    pat_text(param.arg),
                ),
            ),
            Some(_) if has_context => cx.error_spanned_by(
                param.arg,
                "an operation takes the context at most once: remove this parameter",
            ),
            Some(context) => {
                has_context = true;
                args.push(Arg::Context {
                    ty: &param.arg.ty,
                    by_ref: context == ContextRef::Shared,
                });
            }
            None => {
                inputs.push(param.arg);
                args.push(Arg::Input(param.arg));
            }
        }
    }
    if let [_, extra @ ..] = &inputs[..]
        && !extra.is_empty()
    {
        let patterns: Vec<_> = inputs.iter().map(|arg| pat_text(arg)).collect();
        let types: Vec<_> = inputs.iter().map(|arg| type_text(&arg.ty)).collect();
        cx.error_spanned_by(
            quote::quote!(#(#extra),*),
            format_args!(
                "an operation takes at most one input (besides the context); put several values in a struct or tuple: `({}): ({})`",
                patterns.join(", "),
                types.join(", "),
            ),
        );
    }
    if let Some(input) = inputs.first() {
        check_owned(cx, "inputs", &input.ty);
    }
    args
}

/// Any owned, concrete type, or nothing.
fn check_output<'a>(cx: &Ctxt, output: Option<&'a Type>) -> Option<Output<'a>> {
    let Some(ty) = output else {
        return Some(Output::Unit);
    };
    if let Type::ImplTrait(_) = peel(ty) {
        cx.error_spanned_by(
            ty,
            "an operation must return a concrete type: name the output type, or make the method `async fn` instead of returning `impl Future`",
        );
        return None;
    }
    check_owned(cx, "outputs", ty);
    Some(if is_result(ty) {
        Output::Result {
            ty,
            ok: result_ok(ty),
        }
    } else {
        Output::Value(ty)
    })
}
