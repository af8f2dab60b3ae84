//! `#[entity]`: class style on an impl block, function style on an `async fn`.
//!
//! The stages, one submodule each for the class style: `model` (a borrowed view of the impl
//! block), `valid` (the block's and each operation's shape) and `expand` (proxies and
//! `impl Entity`). The function style reuses the function checks and the handle of
//! `#[activity]`; it lives in `function`.

mod expand;
mod function;
mod model;
mod valid;

use proc_macro2::{Ident, TokenStream};
use syn::ext::IdentExt;
use syn::{Item, LitStr};

use crate::attr::{self, Args, Target};
use crate::ctxt::Ctxt;
use crate::expand::{describe, keyword};

/// Runs every stage and returns the tokens that replace the item: its expansion beside any
/// errors when the item's overall shape is valid, or the unchanged item beside them.
pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let cx = Ctxt::new();
    let target = |owner| Target {
        attr: "entity",
        owner,
    };
    let expanded = match syn::parse2::<Item>(item.clone()) {
        Ok(Item::Impl(item_impl)) => {
            let args = attr::parse(&cx, target("type"), args);
            let named = check_name(&cx, &args);
            let model = model::EntityImpl::from_syn(&item_impl);
            valid::check(&cx, &model).filter(|_| named).map(|entity| {
                let name = registered_name(&args, entity.ident);
                expand::expand(&entity, &name, &args)
            })
        }
        Ok(Item::Fn(item_fn)) => {
            let args = attr::parse(&cx, target("function"), args);
            let named = check_name(&cx, &args);
            let name = registered_name(&args, &item_fn.sig.ident);
            function::expand(&cx, &item_fn, &name, &args.import()).filter(|_| named)
        }
        Ok(other) => {
            attr::parse(&cx, target("type"), args);
            let state = match &other {
                Item::Struct(item) => item.ident.to_string(),
                Item::Enum(item) => item.ident.to_string(),
                _ => "State".to_owned(),
            };
            cx.error_spanned_by(
                keyword(&item),
                format_args!(
                    "`#[entity]` goes on the `impl` block of an entity's state type, not on {}: write `#[entity] impl {state} {{ ... }}` with the operations as methods (or `#[entity] async fn name(ctx: EntityContext) -> Result<(), Error>` for a function-style entity)",
                    describe(&other),
                ),
            );
            None
        }
        Err(error) => {
            cx.syn_error(error);
            None
        }
    };
    let errors = cx.check().err().map(syn::Error::into_compile_error);
    let body = expanded.unwrap_or(item);
    quote::quote!(#body #errors)
}

/// Entity names may not contain `@`, which separates the name from the key in an entity id.
/// Returns whether the name (if any) is usable.
fn check_name(cx: &Ctxt, args: &Args) -> bool {
    match &args.name {
        Some(name) if name.value().contains('@') => {
            cx.error_spanned_by(
                name,
                "an entity's name cannot contain `@`: entity ids are written `@name@key`",
            );
            false
        }
        _ => true,
    }
}

/// The entity's name, lower case (names are case-insensitive): the `name` argument, or the
/// type's or function's identifier. Spanned at whichever it came from.
fn registered_name(args: &Args, ident: &Ident) -> LitStr {
    match &args.name {
        Some(name) => LitStr::new(&name.value().to_lowercase(), name.span()),
        None => LitStr::new(&ident.unraw().to_string().to_lowercase(), ident.span()),
    }
}
