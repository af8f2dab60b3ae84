//! Function-style entities: `#[entity] async fn counter(ctx: EntityContext) -> Result<(), Error>`.
//!
//! The function dispatches on `ctx.operation()` itself, so the macro only checks its shape and
//! gives it a handle, as `#[activity]` does: a unit struct named like the function that
//! implements `EntityFunction` and `Register`, and derefs to the body for unit tests.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{FnArg, ItemFn, LitStr, PatType, ReturnType, Type};

use super::model::{is_entity_context, is_result, result_ok};
use crate::ctxt::Ctxt;
use crate::expand::{Locals, handle_with};
use crate::model::peel;
use crate::valid::{Signature, arg_text, check_generics, check_modifiers, pat_text, type_text};

/// What the function is called in messages.
const NOUN: &str = "an entity function";

/// Checks `item` and, when its signature is valid, returns its handle registered as `name`.
/// `import` brings the crate's `__private` module in as `__d`.
pub(crate) fn expand(
    cx: &Ctxt,
    item: &ItemFn,
    name: &LitStr,
    import: &TokenStream,
) -> Option<TokenStream> {
    let sig = check(cx, item)?;
    let locals = Locals::new();
    let trait_impl = trait_impl(item, &sig, name, &locals);
    Some(handle_with(
        item,
        &sig,
        trait_impl,
        quote!(add_entity_function),
        &locals,
        import,
    ))
}

/// `async`, not generic, not a method, exactly `ctx: EntityContext`, returning a `Result`.
fn check<'a>(cx: &Ctxt, item: &'a ItemFn) -> Option<Signature<'a>> {
    let before = cx.len();
    check_modifiers(cx, NOUN, item);
    check_generics(cx, NOUN, &item.sig.generics);
    let ident = &item.sig.ident;
    let mut params = Vec::new();
    for input in &item.sig.inputs {
        match input {
            FnArg::Receiver(receiver) => cx.error_spanned_by(
                receiver,
                "an entity function is a free function, not a method: remove `self`; for an entity whose methods are its operations, put `#[entity]` on the `impl` block instead",
            ),
            FnArg::Typed(arg) => params.push(arg),
        }
    }
    let context = match params.split_first() {
        None => {
            cx.error_at(
                item.sig.paren_token.span.join(),
                format_args!(
                    "{NOUN} takes the context: write `async fn {ident}(ctx: EntityContext)`, and read the operation's input with `ctx.input::<T>()`"
                ),
            );
            None
        }
        Some((first, rest)) => {
            if let Some(extra) = rest.first() {
                cx.error_spanned_by(
                    quote!(#(#rest),*),
                    format_args!(
                        "{NOUN} takes only the context: remove `{}` and read the operation's input with `ctx.input::<T>()`",
                        arg_text(extra),
                    ),
                );
            }
            check_context(cx, item, first)
        }
    };
    let output = check_output(cx, item);
    match (cx.len() == before, context, output) {
        (true, Some(context), Some(output)) => Some(Signature {
            context,
            input: None,
            output,
        }),
        _ => None,
    }
}

/// The one parameter is `EntityContext`, by value.
fn check_context<'a>(cx: &Ctxt, item: &ItemFn, arg: &'a PatType) -> Option<&'a PatType> {
    match peel(&arg.ty) {
        Type::Reference(reference) if is_entity_context(&reference.elem) => {
            cx.error_spanned_by(
                &arg.ty,
                format_args!(
                    "take the context by value: write `{}: EntityContext`, not a reference",
                    pat_text(arg),
                ),
            );
            None
        }
        ty if is_entity_context(ty) => Some(arg),
        _ => {
            cx.error_spanned_by(
                &arg.ty,
                format_args!(
                    "{NOUN} takes `EntityContext`, not `{}`: write `async fn {}(ctx: EntityContext)`, and read the operation's input with `ctx.input::<T>()`",
                    type_text(&arg.ty),
                    item.sig.ident,
                ),
            );
            None
        }
    }
}

/// `Result<(), E>`: the value a caller receives is set with `ctx.set_result(value)`.
fn check_output<'a>(cx: &Ctxt, item: &'a ItemFn) -> Option<&'a Type> {
    let ReturnType::Type(_, output) = &item.sig.output else {
        cx.error_at(
            item.sig.paren_token.span.close(),
            format_args!(
                "{NOUN} must return `Result<(), durable::Error>`: add `-> Result<(), Error>` after the parameters"
            ),
        );
        return None;
    };
    if let Type::ImplTrait(_) = peel(output) {
        cx.error_spanned_by(
            output,
            format_args!(
                "{NOUN} must return a concrete `Result<(), E>`: write `-> Result<(), Error>`"
            ),
        );
        return None;
    }
    if is_result(output)
        && let Some(ok) = result_ok(output)
        && !matches!(peel(ok), Type::Tuple(unit) if unit.elems.is_empty())
    {
        cx.error_spanned_by(
            ok,
            format_args!(
                "{NOUN} returns `Result<(), E>`, not `Result<{}, E>`: give callers a value with `ctx.set_result(value)`",
                type_text(ok),
            ),
        );
        return None;
    }
    Some(output)
}

/// `impl EntityFunction`: the name and `run`, which calls the body through the handle's
/// `Deref`.
fn trait_impl(item: &ItemFn, sig: &Signature, name: &LitStr, locals: &Locals) -> TokenStream {
    let ident = &item.sig.ident;
    let Locals { ctx, body, .. } = locals;
    let ctx_ty = &sig.context.ty;
    let output = sig.output;
    let ctx_check = quote_spanned!(ctx_ty.span()=> let #ctx: #ctx_ty = #ctx;);
    // Spanned at the return type, so an error type that does not convert into
    // `durable::Error` is reported there.
    let boxed = quote_spanned! {output.span()=>
        ::std::boxed::Box::pin(async move {
            <#output as __d::IntoOutcome>::into_outcome(#body(#ctx).await)
        })
    };
    let items = quote! {
        const NAME: &'static str = #name;

        fn run(#ctx: __d::EntityContext) -> __d::BoxFutureOf<'static, __d::Result<()>> {
            #ctx_check
            let #body = *<Self as ::core::ops::Deref>::deref(&Self);
            #boxed
        }
    };
    quote_spanned! {ident.span()=>
        impl __d::EntityFunction for #ident {
            #items
        }
    }
}
