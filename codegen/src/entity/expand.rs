//! Turns a validated class-style entity into its proxies and its `Entity` impl.
//!
//! ```text
//! #[entity] impl Counter { pub fn add(&mut self, amount: i64) { ... } ... }
//! ```
//!
//! becomes the unchanged impl block, three proxy newtypes (`CounterCall`, `CounterSignal`,
//! `CounterClientSignal<'a>`) with one method per operation, and, inside `const _: () = { ... };`
//! (which imports the crate's `__private` module as `__d`), the proxies' methods and
//! `impl Entity for Counter`, whose `dispatch` matches the operation name, decodes the input,
//! calls the method and encodes its output.
//!
//! The per-operation code is kept to calls of shared helpers: each proxy method is one call of
//! its target's generic `call` or `signal`, and each `dispatch` arm is `decode_input`, the
//! method, and `encode_output` (which encodes the output into the arm's result).
//!
//! Every generated use of a user's type is spanned at that type, so an input or output that is
//! not serializable is reported there; `impl Entity` is spanned at the state type in the impl
//! header, so a state without `Default` or serde is reported there.

use proc_macro2::{Ident, Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{LitStr, Pat, PatType};

use super::valid::{Arg, Entity, Output, ValidOp};
use crate::attr::Args;

/// The three proxies' names.
struct Proxies {
    call: Ident,
    signal: Ident,
    client: Ident,
}

/// Identifiers the generated code binds, mixed-site so they never meet the user's names.
struct Locals {
    ctx: Ident,
    operation: Ident,
    input: Ident,
    target: Ident,
}

/// The expansion of a valid class-style entity registered as `name`, naming the crate as
/// `args` say.
pub(crate) fn expand(entity: &Entity, name: &LitStr, args: &Args) -> TokenStream {
    let item = entity.item;
    let cfgs: Vec<_> = item
        .attrs
        .iter()
        .filter(|attr| attr.path().is_ident("cfg"))
        .collect();
    let state = entity.ident.unraw().to_string();
    let span = entity.ident.span();
    let proxies = Proxies {
        call: format_ident!("{state}Call", span = span),
        signal: format_ident!("{state}Signal", span = span),
        client: format_ident!("{state}ClientSignal", span = span),
    };
    let locals = {
        let local = |name: &str| Ident::new(name, Span::mixed_site());
        Locals {
            ctx: local("__ctx"),
            operation: local("__operation"),
            input: local("__input"),
            target: local("__target"),
        }
    };
    let structs = proxy_structs(&state, span, &proxies, &cfgs, &args.private());
    let import = args.import();
    let methods = proxy_methods(entity, &proxies);
    let entity_impl = entity_impl(entity, name, &proxies, &locals);
    quote! {
        #item
        #structs
        #(#cfgs)*
        const _: () = {
            #import
            #methods
            #entity_impl
        };
    }
}

/// The proxy newtypes, documented, with the visibility of a public API: `impl Entity` names
/// them as associated types, so they may be no less visible than the state type (which the
/// impl block does not show). Spanned at the state type's name, so "no method named `nope`
/// found for `CounterCall`" points there.
fn proxy_structs(
    state: &str,
    span: Span,
    proxies: &Proxies,
    cfgs: &[&syn::Attribute],
    private: &TokenStream,
) -> TokenStream {
    let Proxies {
        call,
        signal,
        client,
    } = proxies;
    let call_doc = format!(
        " Two-way calls to `{state}` operations from an orchestration: `ctx.call_entity::<{state}>(key)`."
    );
    let signal_doc = format!(
        " One-way signals to `{state}` operations from an orchestration or another entity: `ctx.signal_entity::<{state}>(key)`."
    );
    let client_doc = format!(
        " One-way signals to `{state}` operations from a client: `client.signal_entity::<{state}>(key)`."
    );
    quote_spanned! {span=>
        #(#cfgs)*
        #[doc = #call_doc]
        ///
        /// Each method schedules its operation and returns a task that resolves to the
        /// operation's output, or to the error it failed with.
        #[must_use = "a call proxy does nothing until one of its operations is called"]
        pub struct #call(#private::CallTarget);

        #(#cfgs)*
        #[doc = #signal_doc]
        ///
        /// Each method queues its operation; the signal is sent when the orchestration's turn,
        /// or the calling entity's operation, commits.
        #[must_use = "a signal proxy does nothing until one of its operations is called"]
        pub struct #signal(#private::SignalTarget);

        #(#cfgs)*
        #[doc = #client_doc]
        ///
        /// Each method returns a future that resolves once the signal is durably enqueued.
        #[must_use = "a signal proxy does nothing until one of its operations is called"]
        pub struct #client<'a>(#private::ClientSignalTarget<'a>);
    }
}

/// One method per operation on each proxy, plus `delete` when the built-in one applies.
fn proxy_methods(entity: &Entity, proxies: &Proxies) -> TokenStream {
    // `Future<Output = Result<(), Error>> + Send + 'a`, under a name that keeps the generated
    // signatures on one line.
    let client_future = quote!(impl __d::SignalFuture<'a>);
    let mut call = Vec::new();
    let mut signal = Vec::new();
    let mut client = Vec::new();
    for op in &entity.ops {
        let method = &op.method.sig.ident;
        let name = LitStr::new(&op.name, method.span());
        let attrs = |name: &'static str| {
            op.method
                .attrs
                .iter()
                .filter(move |attr| attr.path().is_ident(name))
        };
        // The proxies mirror the method: its docs, its `#[allow]`s (for its name's lints) and
        // its `#[deprecated]` (so that callers are warned).
        let lints: Vec<_> = attrs("allow").chain(attrs("deprecated")).collect();
        let docs: Vec<_> = attrs("doc").collect();
        let docs = |verb: &str| match docs.is_empty() {
            true => {
                let doc = format!(" {verb} the `{}` operation.", op.name);
                quote!(#[doc = #doc] #(#lints)*)
            }
            false => quote!(#(#docs)* #(#lints)*),
        };
        // Each use of the input is spanned at its type, so an input that is not `Serialize`
        // is reported there.
        let (param, payload, at) = match op.input() {
            Some(input) => {
                let ident = param_ident(input);
                let ty = &input.ty;
                let used = Ident::new(&ident.to_string(), ty.span());
                (
                    quote!(#ident: #ty),
                    quote_spanned!(ty.span()=> &#used),
                    ty.span(),
                )
            }
            None => (TokenStream::new(), quote!(&()), method.span()),
        };
        let (ok, ok_span) = ok_type(op);
        // Each body checks the input's (and the call proxy the output's) serde bounds through
        // one `__private` function, so every body reports the same error, shown once, and the
        // uses' own bounds, implied by it, are not reported at all.
        let check_input = input_check(op);
        let check_output = output_check(op);
        // The bound on the output is checked where `call` is named: at the user's type (or,
        // for an operation returning nothing, at the input's, which `call` also checks).
        let call_span = match op.output {
            Output::Unit => at,
            _ => ok_span,
        };
        let call_fn = Ident::new("call", call_span);
        let call_expr = quote_spanned!(at=> self.0.#call_fn(#name, #payload));
        let signal_expr = quote_spanned!(at=> self.0.signal(#name, #payload));
        // The `.await` too is at the input's type: rustc checks the input's bound again there.
        let client_expr = quote_spanned!(at=> self.0.signal(#name, #payload).await);
        let (call_docs, signal_docs) = (docs("Calls"), docs("Signals"));
        call.push(quote! {
            #call_docs
            #[track_caller]
            pub fn #method(self, #param) -> __d::Task<#ok> {
                #check_input
                #check_output
                #call_expr
            }
        });
        signal.push(quote! {
            #signal_docs
            #[track_caller]
            pub fn #method(self, #param) {
                #check_input
                #signal_expr
            }
        });
        // The `async move` block owns the input and lends it to `ClientSignalTarget::signal`,
        // so the future borrows nothing from the method's frame.
        client.push(quote! {
            #signal_docs
            pub fn #method(self, #param) -> #client_future {
                #check_input
                async move { #client_expr }
            }
        });
    }
    if !entity.defines_delete() {
        call.push(quote! {
            /// Deletes the entity's state (the built-in `delete` operation); the entity is
            /// created afresh by its next operation.
            #[track_caller]
            pub fn delete(self) -> __d::Task<()> {
                self.0.call("delete", &())
            }
        });
        signal.push(quote! {
            /// Deletes the entity's state (the built-in `delete` operation).
            #[track_caller]
            pub fn delete(self) {
                self.0.signal("delete", &())
            }
        });
        client.push(quote! {
            /// Deletes the entity's state (the built-in `delete` operation).
            pub fn delete(self) -> #client_future {
                async move { self.0.signal("delete", &()).await }
            }
        });
    }
    let Proxies {
        call: call_ty,
        signal: signal_ty,
        client: client_ty,
    } = proxies;
    // Proxies are an API: an operation nobody calls yet is not dead code.
    quote! {
        #[allow(dead_code)]
        impl #call_ty {
            #(#call)*
        }
        #[allow(dead_code)]
        impl #signal_ty {
            #(#signal)*
        }
        #[allow(dead_code)]
        impl<'a> #client_ty<'a> {
            #(#client)*
        }
    }
}

/// The name a proxy method gives the input: the user's own when it is a plain binding.
fn param_ident(input: &PatType) -> Ident {
    match &*input.pat {
        Pat::Ident(pat) if pat.subpat.is_none() && pat.ident != "self" => {
            Ident::new(&pat.ident.unraw().to_string(), pat.ident.span())
        }
        _ => Ident::new("input", input.pat.span()),
    }
}

/// `__d::input::<Input>();` at the input's type, for an operation that takes one.
fn input_check(op: &ValidOp) -> Option<TokenStream> {
    op.input().map(|input| {
        let ty = &input.ty;
        quote_spanned!(ty.span()=> __d::input::<#ty>();)
    })
}

/// `__d::output::<Output>();` at the output's type, for an operation that returns a value.
fn output_check(op: &ValidOp) -> Option<TokenStream> {
    match op.output {
        Output::Unit => None,
        _ => {
            let (ok, at) = ok_type(op);
            Some(quote_spanned!(at=> __d::output::<#ok>();))
        }
    }
}

/// What a call of the operation resolves to, and the span to check it at.
fn ok_type(op: &ValidOp) -> (TokenStream, Span) {
    match op.output {
        Output::Unit => (quote!(()), op.method.sig.ident.span()),
        Output::Value(ty) => (quote!(#ty), ty.span()),
        Output::Result { ok: Some(ok), .. } => (quote!(#ok), ok.span()),
        Output::Result { ty, ok: None } => (
            quote_spanned!(ty.span()=> <#ty as __d::IntoOutcome>::Ok),
            ty.span(),
        ),
    }
}

/// `impl Entity for State`: the name, the operations, the proxies and `dispatch`.
fn entity_impl(entity: &Entity, name: &LitStr, proxies: &Proxies, locals: &Locals) -> TokenStream {
    let self_ty = entity.self_ty;
    let Proxies {
        call,
        signal,
        client,
    } = proxies;
    let Locals {
        ctx,
        operation,
        input,
        target,
        ..
    } = locals;
    // The built-in `delete` is the runtime's, so it is listed only when the type defines its own.
    let operations: Vec<_> = entity.ops.iter().map(|op| op.name.as_str()).collect();
    let arms = entity.ops.iter().map(|op| arm(op, name, locals));
    let underscore = quote!(_);
    let ctx_param = match entity.ops.iter().any(ValidOp::takes_context) {
        true => quote!(#ctx),
        false => underscore.clone(),
    };
    let input_param = match entity.ops.iter().any(|op| op.input().is_some()) {
        true => quote!(#input),
        false => underscore,
    };
    // Nothing inside names `Self::Call` or `<Self as Entity>::...`: those require
    // `Self: Entity`, and would repeat a missing `Default` or `Serialize` at the attribute.
    let span = self_ty.span();
    let items = quote_spanned! {span=>
        const NAME: &'static str = #name;
        const OPERATIONS: &'static [&'static str] = &[#(#operations),*];
        type Call = #call;
        type Signal = #signal;
        type ClientSignal<'a> = #client<'a>;

        fn call_proxy(#target: __d::CallTarget) -> #call {
            #call(#target)
        }

        fn signal_proxy(#target: __d::SignalTarget) -> #signal {
            #signal(#target)
        }

        fn client_signal_proxy(#target: __d::ClientSignalTarget<'_>) -> #client<'_> {
            #client(#target)
        }

        fn dispatch<'a>(
            &'a mut self,
            #ctx_param: &'a __d::EntityContext,
            #operation: &'a str,
            #input_param: &'a str,
        ) -> __d::DispatchFuture<'a> {
            ::std::boxed::Box::pin(async move {
                match #operation {
                    #(#arms)*
                    _ => __d::unknown(#name, #operation, &[#(#operations),*]),
                }
            })
        }
    };
    // Spanned at the state type, so a missing `Default`, `Serialize` or `Deserialize` is
    // reported at `impl Counter`.
    quote_spanned! {span=>
        impl __d::Entity for #self_ty {
            #items
        }
    }
}

/// One `match` arm of `dispatch`: decode, call, encode.
fn arm(op: &ValidOp, name: &LitStr, locals: &Locals) -> TokenStream {
    let Locals { ctx, input, .. } = locals;
    let method = &op.method.sig.ident;
    let op_name = LitStr::new(&op.name, method.span());
    let decode = op.input().map(|arg| {
        let ty = &arg.ty;
        quote_spanned! {ty.span()=>
            let #input: #ty = __d::decode_input(#name, #op_name, #input)?;
        }
    });
    let args = op.args.iter().map(|arg| match arg {
        Arg::Input(_) => quote!(#input),
        Arg::Context { by_ref: true, .. } => quote!(#ctx),
        Arg::Context { ty, by_ref: false } => {
            quote_spanned!(ty.span()=> ::core::clone::Clone::clone(#ctx))
        }
    });
    let awaited = op.method.sig.asyncness.map(|_| quote!(.await));
    let invoke = quote!(Self::#method(self, #(#args),*) #awaited);
    // An output that is not `Serialize` is reported at the user's type: the local that holds
    // it keeps its hygiene but is located there.
    let (ok, at) = ok_type(op);
    // Rustc reports a mixed-site local at the attribute, so this one is an ordinary identifier
    // at the user's type. Only types and method names of the user's appear in the arm, and no
    // type can name a local, so it cannot capture or shadow anything.
    let output = Ident::new("__durable_output", at);
    let (run, value) = match op.output {
        Output::Unit => (quote!(#invoke;), quote!(&())),
        Output::Value(_) => (
            quote!(let #output: #ok = #invoke;),
            quote_spanned!(at=> &#output),
        ),
        Output::Result { ty, .. } => {
            // A `Result` whose error does not convert into `durable::Error` is reported at it.
            let outcome = quote_spanned! {ty.span()=>
                <#ty as __d::IntoOutcome>::into_outcome(#invoke)?
            };
            (
                quote!(let #output: #ok = #outcome;),
                quote_spanned!(at=> &#output),
            )
        }
    };
    let mutated = op.mutates;
    let encode = quote_spanned! {at=>
        __d::encode_output(#name, #op_name, #value, #mutated)
    };
    let (check_input, check_output) = (input_check(op), output_check(op));
    quote! {
        #op_name => {
            #check_input
            #check_output
            #decode
            #run
            #encode
        }
    }
}
