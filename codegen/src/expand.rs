//! Turns a validated function into its typed handle and trait impls.
//!
//! ```text
//! #[activity] pub async fn say_hello(ctx: ActivityContext, city: String) -> Result<String, Error>
//! ```
//!
//! becomes a unit struct `pub struct say_hello;` (the handle, carrying the user's docs) and,
//! inside `const _: () = { ... };`, the user's function (private, same name, so it shadows the
//! handle's value only there) and, in a nested `const _` that imports the crate's `__private`
//! module as `__d`, `impl Activity`, `impl Register`, and `impl Deref` to a function pointer,
//! so that `say_hello(ctx, city)` still calls the body in unit tests. The import is out of the
//! function's scope, so the user's code never sees `__d`.

use proc_macro2::{Ident, Span, TokenStream, TokenTree};
use quote::{ToTokens, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Attribute, Item, ItemFn, LitStr};

use crate::attr::{self, Args};
use crate::ctxt::Ctxt;
use crate::determinism;
use crate::model::{Function, Kind};
use crate::valid::{self, Signature};

/// Runs every stage for the macro `kind` and returns the tokens that replace the item.
///
/// Every error is collected first. When the function's signature is valid, the full expansion
/// is emitted beside the errors (so callers of the handle keep type-checking); otherwise the
/// user's item is emitted unchanged beside them, so one mistake gives one error.
pub(crate) fn expand(kind: Kind, args: TokenStream, item: TokenStream) -> TokenStream {
    let cx = Ctxt::new();
    let args = attr::parse(&cx, kind.target(), args);
    let expanded = match syn::parse2::<Item>(item.clone()) {
        Ok(Item::Fn(item_fn)) => {
            let func = Function::from_syn(kind, &item_fn);
            let signature = valid::check(&cx, &func);
            if kind == Kind::Orchestrator {
                determinism::check(&cx, &item_fn.block);
            }
            match signature {
                Some(sig) => Some(handle(&func, &sig, &args)),
                // `const` was reported already; dropping it keeps rustc from adding its own
                // complaints about the body not being const.
                None if item_fn.sig.constness.is_some() => {
                    let mut item_fn = item_fn.clone();
                    item_fn.sig.constness = None;
                    Some(item_fn.into_token_stream())
                }
                None => None,
            }
        }
        Ok(other) => {
            cx.error_spanned_by(
                keyword(&item),
                format_args!(
                    "`#[{attr}]` goes on an `async fn`, not on {what}: write `#[{attr}] async fn name(ctx: {context}, input: T) -> Result<U, Error>`",
                    attr = kind.attr(),
                    what = describe(&other),
                    context = kind.context(),
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
    quote!(#body #errors)
}

/// Identifiers the generated code binds. They are mixed-site, so they never capture or
/// shadow a name of the user's: a function called `input` still works.
pub(crate) struct Locals {
    pub(crate) ctx: Ident,
    pub(crate) input: Ident,
    pub(crate) body: Ident,
}

impl Locals {
    pub(crate) fn new() -> Self {
        let local = |name: &str| Ident::new(name, Span::mixed_site());
        Locals {
            ctx: local("__ctx"),
            input: local("__input"),
            body: local("__body"),
        }
    }

    /// The arguments the user's function is called with: `__ctx, __input` or `__ctx`.
    fn args(&self, sig: &Signature) -> TokenStream {
        let Locals { ctx, input, .. } = self;
        match sig.input {
            Some(_) => quote!(#ctx, #input),
            None => quote!(#ctx),
        }
    }
}

/// The handle and its impls.
fn handle(func: &Function, sig: &Signature, args: &Args) -> TokenStream {
    let locals = Locals::new();
    let trait_impl = trait_impl(func, sig, args, &locals);
    let method = match func.kind {
        Kind::Activity => quote!(add_activity),
        Kind::Orchestrator => quote!(add_orchestrator),
    };
    handle_with(func.item, sig, trait_impl, method, &locals, &args.import())
}

/// A handle for `item`: the unit struct named like the function, and, inside `const _`, the
/// function itself and, after `import` (of `__private` as `__d`), `trait_impl`, `impl Register`
/// (calling `registry.#method::<Self>()`) and `impl Deref` to a function pointer.
pub(crate) fn handle_with(
    item: &ItemFn,
    sig: &Signature,
    trait_impl: TokenStream,
    method: TokenStream,
    locals: &Locals,
    import: &TokenStream,
) -> TokenStream {
    let ident = &item.sig.ident;
    let vis = &item.vis;
    let (docs, cfgs, rest) = split_attrs(&item.attrs);
    let user_fn = {
        let sig = &item.sig;
        let block = &item.block;
        // The macro requires `async` even when the body never awaits.
        quote!(#(#rest)* #[allow(clippy::unused_async)] #sig #block)
    };
    let register_impl = register_impl(ident, &method);
    let deref_impl = deref_impl(ident, sig, locals);
    // The handle's definition is the user's name, so "not implemented for `say_hello`" notes
    // point at the function rather than at the attribute.
    let handle_struct = quote_spanned!(ident.span()=> #vis struct #ident;);

    quote! {
        #(#cfgs)*
        #(#docs)*
        #[allow(non_camel_case_types)]
        #[derive(
            ::core::clone::Clone,
            ::core::marker::Copy,
            ::core::fmt::Debug,
            ::core::default::Default,
        )]
        #handle_struct

        #(#cfgs)*
        const _: () = {
            #user_fn
            const _: () = {
                #import
                #trait_impl
                #register_impl
                #deref_impl
            };
        };
    }
}

/// `impl Activity` or `impl Orchestrator`: the types, the name, and `run`.
///
/// The parts that involve the user's types are spanned at those types, so that an input or
/// output that is not a payload, a return type that is not a `Result`, or a context of another
/// type is reported at the user's token, once.
fn trait_impl(func: &Function, sig: &Signature, args: &Args, locals: &Locals) -> TokenStream {
    let ident = func.ident();
    let (trait_name, context) = match func.kind {
        Kind::Activity => (quote!(Activity), quote!(ActivityContext)),
        Kind::Orchestrator => (quote!(Orchestrator), quote!(OrchestrationContext)),
    };
    let name = match &args.name {
        Some(name) => name.clone(),
        None => LitStr::new(&ident.to_string(), ident.span()),
    };
    let Locals { ctx, input, body } = locals;
    let call_args = locals.args(sig);
    let ctx_ty = &sig.context.ty;
    let output = sig.output;

    let input_assoc = match sig.input {
        Some(arg) => {
            let ty = &arg.ty;
            quote_spanned!(ty.span()=> type Input = #ty;)
        }
        None => quote! { type Input = (); },
    };
    let outcome = quote_spanned!(output.span()=> <#output as __d::IntoOutcome>);
    let output_assoc = quote_spanned!(output.span()=> type Output = #outcome::Ok;);
    let ctx_check = quote_spanned!(ctx_ty.span()=> let #ctx: #ctx_ty = #ctx;);
    let unit_input = sig.input.is_none().then(|| quote!(let () = #input;));
    let boxed_outcome = quote_spanned! {output.span()=>
        ::std::boxed::Box::pin(async move { #outcome::into_outcome(#body(#call_args).await) })
    };
    let run_body = quote! {
        #ctx_check
        #unit_input
        let #body = *<Self as ::core::ops::Deref>::deref(&Self);
        #boxed_outcome
    };
    // The signature names `Self::Output`, so it is checked against the user's return type.
    let run = quote_spanned! {output.span()=>
        fn run(#ctx: __d::#context, #input: Self::Input) -> __d::BoxFuture<__d::Result<Self::Output>> {
            #run_body
        }
    };
    let items = quote! {
        #input_assoc
        #output_assoc
        const NAME: &'static str = #name;
        #run
    };
    // Spanned at the name, so "the trait is implemented for `greet`" points at `greet`.
    quote_spanned! {ident.span()=>
        impl __d::#trait_name for #ident {
            #items
        }
    }
}

/// `impl Register`, so that `Runtime::builder().register(say_hello)` works.
fn register_impl(ident: &Ident, method: &TokenStream) -> TokenStream {
    quote! {
        impl __d::Register for #ident {
            fn register(self, registry: &mut __d::Registry) {
                registry.#method::<Self>();
            }
        }
    }
}

/// `impl Deref` to a function pointer with the user's own signature (boxed), so that
/// `say_hello(ctx, city).await` calls the body, as it did before the attribute.
fn deref_impl(ident: &Ident, sig: &Signature, locals: &Locals) -> TokenStream {
    let Locals { ctx, input, .. } = locals;
    let ctx_ty = &sig.context.ty;
    let output = sig.output;
    let (params, param_tys) = match sig.input {
        Some(arg) => {
            let ty = &arg.ty;
            (quote!(#ctx: #ctx_ty, #input: #ty), quote!(#ctx_ty, #ty))
        }
        None => (quote!(#ctx: #ctx_ty), quote!(#ctx_ty)),
    };
    let call_args = locals.args(sig);
    // Spanned at the name, so a body whose future is not `Send` is reported there.
    let boxed = quote_spanned!(ident.span()=> ::std::boxed::Box::pin(#ident(#call_args)));
    // The cast of a capture-free closure is a constant, so the reference is `'static`.
    quote! {
        impl ::core::ops::Deref for #ident {
            type Target = fn(#param_tys) -> __d::BoxFuture<#output>;

            fn deref(&self) -> &Self::Target {
                &((|#params| -> __d::BoxFuture<#output> { #boxed }) as Self::Target)
            }
        }
    }
}

/// Splits the user's attributes: docs go on the handle, `cfg`s on everything, the rest on
/// the function.
pub(crate) fn split_attrs(
    attrs: &[Attribute],
) -> (Vec<&Attribute>, Vec<&Attribute>, Vec<&Attribute>) {
    let mut docs = Vec::new();
    let mut cfgs = Vec::new();
    let mut rest = Vec::new();
    for attr in attrs {
        if attr.path().is_ident("doc") {
            docs.push(attr);
        } else if attr.path().is_ident("cfg") {
            cfgs.push(attr);
        } else {
            rest.push(attr);
        }
    }
    (docs, cfgs, rest)
}

/// The item's keyword and name (`struct Foo`), past its attributes and visibility: where an
/// error about the item as a whole reads best.
pub(crate) fn keyword(item: &TokenStream) -> TokenStream {
    let tokens: Vec<TokenTree> = item.clone().into_iter().collect();
    let mut i = 0;
    loop {
        match tokens.get(i) {
            Some(TokenTree::Punct(p)) if p.as_char() == '#' => i += 2,
            Some(TokenTree::Ident(id)) if id == "pub" => {
                i += 1;
                if let Some(TokenTree::Group(g)) = tokens.get(i)
                    && g.delimiter() == proc_macro2::Delimiter::Parenthesis
                {
                    i += 1;
                }
            }
            _ => break,
        }
    }
    tokens[i.min(tokens.len())..]
        .iter()
        .take(2)
        .cloned()
        .collect()
}

/// `a struct`, for the message about an attribute on something that is not a function.
pub(crate) fn describe(item: &Item) -> &'static str {
    match item {
        Item::Struct(_) => "a struct",
        Item::Enum(_) => "an enum",
        Item::Union(_) => "a union",
        Item::Impl(_) => "an `impl` block",
        Item::Trait(_) | Item::TraitAlias(_) => "a trait",
        Item::Mod(_) => "a module",
        Item::Const(_) => "a constant",
        Item::Static(_) => "a static",
        Item::Type(_) => "a type alias",
        Item::Use(_) => "a `use` declaration",
        Item::ForeignMod(_) => "an `extern` block",
        Item::Macro(_) => "a macro invocation",
        _ => "this item",
    }
}
