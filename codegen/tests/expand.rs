//! Snapshot tests of what the macros expand to, pretty-printed.
//!
//! Review a changed snapshot as you would a diff of hand-written code, then accept it with
//! `INSTA_UPDATE=always cargo test -p durable-fn-codegen`.

use proc_macro2::TokenStream;
use quote::quote;

/// The expansion as formatted Rust.
fn pretty(tokens: TokenStream) -> String {
    let file: syn::File = syn::parse2(tokens).expect("the expansion parses as a file");
    prettyplease::unparse(&file)
}

#[test]
fn activity() {
    let expanded = durable_codegen::activity(
        quote!(),
        quote! {
            /// Greets a city.
            #[tracing::instrument]
            pub async fn say_hello(ctx: ActivityContext, city: String) -> Result<String, Error> {
                Ok(format!("Hello {city}!"))
            }
        },
    );
    insta::assert_snapshot!(pretty(expanded));
}

#[test]
fn orchestrator() {
    let expanded = durable_codegen::orchestrator(
        quote!(),
        quote! {
            pub(crate) async fn hello_cities(
                ctx: OrchestrationContext,
                cities: Vec<String>,
            ) -> Result<Vec<String>, Error> {
                let mut out = Vec::new();
                for city in cities {
                    out.push(ctx.call_activity(say_hello, city).await?);
                }
                Ok(out)
            }
        },
    );
    insta::assert_snapshot!(pretty(expanded));
}

#[test]
fn orchestrator_without_input() {
    let expanded = durable_codegen::orchestrator(
        quote!(),
        quote! {
            async fn tick(ctx: durable::OrchestrationContext) -> Result<(), durable::Error> {
                ctx.sleep(std::time::Duration::from_secs(60)).await;
                Ok(())
            }
        },
    );
    insta::assert_snapshot!(pretty(expanded));
}

#[test]
fn custom_name() {
    let expanded = durable_codegen::activity(
        quote!(name = "SayHello"),
        quote! {
            async fn say_hello(_ctx: ActivityContext, city: String) -> Result<String, MyError> {
                Ok(city)
            }
        },
    );
    insta::assert_snapshot!(pretty(expanded));
}

/// `crate = "..."` replaces `::durable` in the one import of the expansion, and combines with
/// `name`; nothing else names the crate.
#[test]
fn custom_crate_path() {
    let expanded = durable_codegen::orchestrator(
        quote!(crate = "my_sdk::durable", name = "Hello"),
        quote! {
            async fn hello(ctx: OrchestrationContext) -> Result<(), Error> {
                Ok(())
            }
        },
    );
    let text = pretty(expanded);
    assert_eq!(text.matches("durable").count(), 1, "{text}");
    assert!(
        text.contains("use my_sdk::durable::__private as __d;"),
        "{text}"
    );
    insta::assert_snapshot!(text);
}

#[test]
fn cfg_attributes_apply_to_the_handle_and_the_impls() {
    let expanded = durable_codegen::activity(
        quote!(),
        quote! {
            /// Only on Linux.
            #[cfg(target_os = "linux")]
            async fn probe(_ctx: ActivityContext) -> Result<u32, Error> {
                Ok(1)
            }
        },
    );
    insta::assert_snapshot!(pretty(expanded));
}

/// A bad signature: the user's item comes back unchanged beside one error per mistake.
#[test]
fn invalid_signature_keeps_the_item() {
    let expanded = durable_codegen::activity(
        quote!(retries = 3),
        quote! {
            fn say_hello(city: &str, country: String) {}
        },
    );
    insta::assert_snapshot!(pretty(expanded));
}

/// A body that is not replay-safe: the handle is still generated, so callers keep compiling,
/// and each forbidden call gets its own error.
#[test]
fn nondeterministic_body_keeps_the_handle() {
    let expanded = durable_codegen::orchestrator(
        quote!(),
        quote! {
            async fn stamp(ctx: OrchestrationContext) -> Result<u64, Error> {
                let now = std::time::SystemTime::now();
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                Ok(0)
            }
        },
    );
    insta::assert_snapshot!(pretty(expanded));
}

#[test]
fn unparsable_item_is_returned_with_the_parse_error() {
    let expanded = durable_codegen::activity(quote!(), quote!(struct));
    assert!(expanded.to_string().contains("compile_error"), "{expanded}");
    assert!(expanded.to_string().starts_with("struct"), "{expanded}");
}

/// The messages of the `compile_error!`s in an expansion, in order.
fn errors(expanded: TokenStream) -> Vec<String> {
    let file: syn::File = syn::parse2(expanded).unwrap();
    file.items
        .iter()
        .filter_map(|item| match item {
            syn::Item::Macro(m) if m.mac.path.segments.last()?.ident == "compile_error" => Some(
                syn::parse2::<syn::LitStr>(m.mac.tokens.clone())
                    .unwrap()
                    .value(),
            ),
            _ => None,
        })
        .collect()
}

#[test]
fn every_signature_mistake_is_reported_with_its_fix() {
    let found = errors(durable_codegen::orchestrator(
        quote!(),
        quote! {
            pub const unsafe extern "C" fn f<T>(input: &[u8], ctx: OrchestrationContext, extra: u8) {}
        },
    ));
    assert_eq!(
        found,
        [
            "an orchestrator must be an `async fn`: write `async fn f`",
            "an orchestrator cannot be a `const fn`: remove `const`",
            "an orchestrator cannot be `unsafe`: remove `unsafe` and use an `unsafe` block inside the body",
            "an orchestrator cannot have an `extern` ABI: remove it",
            "an orchestrator cannot be generic: it is registered and called by name, so its input and output types must be concrete; remove the generic parameters and name the types",
            "the context must be the first parameter: move `ctx: OrchestrationContext` before `input`",
            "an orchestrator takes at most one input; put several values in a struct or tuple: `(input, extra): (&[u8], u8)`",
            "inputs must be owned: take `Vec<u8>` instead of `&[u8]`",
            "an orchestrator must return `Result<T, durable::Error>`: add `-> Result<T, Error>` after the parameters",
        ]
    );
}

#[test]
fn context_mistakes() {
    let activity = |item: TokenStream| errors(durable_codegen::activity(quote!(), item));
    assert_eq!(
        activity(quote!(
            async fn f() -> Result<(), Error> {}
        )),
        [
            "an activity takes the context as its first parameter: write `async fn f(ctx: ActivityContext, input: T)`, or `(ctx: ActivityContext)` without an input"
        ]
    );
    assert_eq!(
        activity(quote!(
            async fn f(city: String) -> Result<(), Error> {}
        )),
        [
            "an activity takes the context as its first parameter: write `async fn f(ctx: ActivityContext, city: String)`"
        ]
    );
    assert_eq!(
        activity(quote!(
            async fn f(ctx: OrchestrationContext) -> Result<(), Error> {}
        )),
        [
            "activities take `ActivityContext`, not `OrchestrationContext`: write `ctx: ActivityContext`, or use `#[orchestrator]` for an orchestrator"
        ]
    );
    assert_eq!(
        activity(quote!(
            async fn f(ctx: &ActivityContext) -> Result<(), Error> {}
        )),
        ["take the context by value: write `ctx: ActivityContext`, not a reference"]
    );
    assert_eq!(
        activity(quote!(
            async fn f(a: ActivityContext, b: ActivityContext) -> Result<(), Error> {}
        )),
        ["an activity takes its context once, as the first parameter: remove this one"]
    );
    assert_eq!(
        activity(quote!(
            async fn f(&self, x: u8) -> Result<(), Error> {}
        )),
        [
            "an activity is a free function, not a method: remove `self` and move the function out of the `impl` block",
            "an activity takes the context as its first parameter: write `async fn f(ctx: ActivityContext, x: u8)`",
        ]
    );
}

#[test]
fn payload_mistakes() {
    let activity = |item: TokenStream| errors(durable_codegen::activity(quote!(), item));
    assert_eq!(
        activity(quote!(
            async fn f(ctx: ActivityContext, s: &str) -> Result<(), Error> {}
        )),
        ["inputs must be owned: take `String` instead of `&str`"]
    );
    assert_eq!(
        activity(quote!(
            async fn f(ctx: ActivityContext, s: Vec<&'a Item>) -> Result<(), Error> {}
        )),
        ["inputs must be owned: take `Item` instead of `&'a Item`"]
    );
    assert_eq!(
        activity(quote!(
            async fn f(ctx: ActivityContext, s: Cow<'_, str>) -> Result<(), Error> {}
        )),
        ["inputs must be owned and `'static`: remove the lifetime `'_`"]
    );
    assert_eq!(
        activity(quote!(
            async fn f(ctx: ActivityContext, s: impl Into<String>) -> Result<(), Error> {}
        )),
        ["an activity cannot be generic: replace `impl Into<String>` with a concrete type"]
    );
    assert_eq!(
        activity(quote!(
            async fn f(ctx: ActivityContext) -> Result<&'static str, Error> {}
        )),
        ["outputs must be owned: take `String` instead of `&'static str`"]
    );
    assert_eq!(
        activity(quote!(
            async fn f(ctx: ActivityContext) -> impl Future<Output = ()> {}
        )),
        ["an activity must return a concrete `Result<T, E>`: write `-> Result<T, Error>`"]
    );
}

#[test]
fn attribute_on_other_items() {
    assert_eq!(
        errors(durable_codegen::activity(
            quote!(),
            quote!(
                #[derive(Debug)]
                pub struct S;
            )
        )),
        [
            "`#[activity]` goes on an `async fn`, not on a struct: write `#[activity] async fn name(ctx: ActivityContext, input: T) -> Result<U, Error>`"
        ]
    );
    assert_eq!(
        errors(durable_codegen::orchestrator(quote!(), quote!(impl S {}))),
        [
            "`#[orchestrator]` goes on an `async fn`, not on an `impl` block: write `#[orchestrator] async fn name(ctx: OrchestrationContext, input: T) -> Result<U, Error>`"
        ]
    );
}

#[test]
fn activities_are_not_checked_for_determinism() {
    let found = errors(durable_codegen::activity(
        quote!(),
        quote! {
            async fn f(ctx: ActivityContext) -> Result<(), Error> {
                let now = std::time::SystemTime::now();
                Ok(())
            }
        },
    ));
    assert!(found.is_empty(), "{found:?}");
}
