//! Snapshot tests of what `#[entity]` expands to, pretty-printed, and of its error messages.
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

/// The errors of `#[entity]` on `item`, without arguments.
fn entity_errors(item: TokenStream) -> Vec<String> {
    errors(durable_codegen::entity(quote!(), item))
}

/// Every kind of operation: sync and async, `&mut self` and `&self`, with and without an
/// input, with the context by reference and by value, returning nothing, a value or a `Result`.
#[test]
fn class_style() {
    let expanded = durable_codegen::entity(
        quote!(),
        quote! {
            /// The operations.
            #[cfg(feature = "counter")]
            impl Counter {
                /// Adds `amount`.
                pub fn add(&mut self, amount: i64) {
                    self.value += amount;
                }
                pub fn reset(&mut self) {
                    self.value = 0;
                }
                pub fn get(&self) -> i64 {
                    self.value
                }
                pub async fn add_checked(
                    &mut self,
                    ctx: &EntityContext,
                    amount: i64,
                ) -> Result<i64, Error> {
                    self.value += amount;
                    Ok(self.value)
                }
                fn describe(&self, ctx: durable::EntityContext) -> std::fmt::Result {
                    Ok(())
                }
                fn r#Move(&mut self, (from, to): (String, String)) {}
            }
        },
    );
    insta::assert_snapshot!(pretty(expanded));
}

/// A `delete` of the type's own replaces the built-in: it is listed and dispatched like any
/// other operation, and the proxies get no second `delete`.
#[test]
fn user_defined_delete() {
    let expanded = durable_codegen::entity(
        quote!(),
        quote! {
            impl Session {
                pub fn delete(&mut self, reason: String) -> bool {
                    self.closed = true;
                    true
                }
            }
        },
    );
    insta::assert_snapshot!(pretty(expanded));
}

/// `name` replaces the type's name, lower-cased; the proxies keep the type's name.
#[test]
fn custom_name() {
    let expanded = durable_codegen::entity(
        quote!(name = "ShoppingCart"),
        quote! {
            impl crate::model::Cart {
                pub fn add_item(&mut self, item: Item) {
                    self.items.push(item);
                }
            }
        },
    );
    insta::assert_snapshot!(pretty(expanded));
}

/// `crate = "..."` replaces `::durable` in the import and in the proxies' fields, in both
/// styles, and combines with `name`.
#[test]
fn custom_crate_path() {
    let class = durable_codegen::entity(
        quote!(name = "Tally", crate = "crate::sdk::durable"),
        quote! {
            impl Counter {
                pub fn add(&mut self, amount: i64) {
                    self.value += amount;
                }
            }
        },
    );
    let function = durable_codegen::entity(
        quote!(crate = "crate::sdk::durable"),
        quote! {
            async fn tally(ctx: EntityContext) -> Result<(), Error> {
                Ok(())
            }
        },
    );
    let text = format!("{}{}", pretty(class), pretty(function));
    // The import in each expansion, and the field of each of the three proxies.
    assert_eq!(
        text.matches("crate::sdk::durable::__private").count(),
        5,
        "{text}"
    );
    assert_eq!(text.matches("durable").count(), 5, "{text}");
    insta::assert_snapshot!(text);
}

#[test]
fn function_style() {
    let expanded = durable_codegen::entity(
        quote!(),
        quote! {
            /// A counter, function style.
            pub async fn counter(ctx: EntityContext) -> Result<(), Error> {
                let value: i64 = ctx.state_or_default()?;
                match ctx.operation().as_str() {
                    "add" => ctx.set_state(value + ctx.input::<i64>()?)?,
                    "get" => ctx.set_result(value)?,
                    _ => {}
                }
                Ok(())
            }
        },
    );
    insta::assert_snapshot!(pretty(expanded));
}

/// A bad operation is dropped from the expansion, with its error, and the rest still expands,
/// so callers of the proxies keep compiling.
#[test]
fn invalid_operation_keeps_the_others() {
    let expanded = durable_codegen::entity(
        quote!(),
        quote! {
            impl Counter {
                pub fn add(&mut self, a: i64, b: i64) {}
                pub fn get(&self) -> i64 { 0 }
            }
        },
    );
    let text = pretty(expanded.clone());
    assert!(
        text.contains("pub fn get(self) -> __d::Task<i64>"),
        "{text}"
    );
    assert!(!text.contains("pub fn add(self"), "{text}");
    assert!(text.contains(r#"&["get"]"#), "{text}");
    assert_eq!(errors(expanded).len(), 1);
}

#[test]
fn operation_mistakes() {
    let one = |method: TokenStream| entity_errors(quote!(impl Counter { #method }));
    assert_eq!(
        one(quote!(
            fn add(&mut self, a: i64, b: i64) {}
        )),
        [
            "an operation takes at most one input (besides the context); put several values in a struct or tuple: `(a, b): (i64, i64)`"
        ]
    );
    assert_eq!(
        one(quote!(
            fn take(self) {}
        )),
        [
            "an operation takes `&self` (read-only) or `&mut self`, not `self` by value: the entity keeps its state; write `&mut self` to change it or `&self` to read it"
        ]
    );
    assert_eq!(
        one(quote!(
            fn boxed(self: Box<Self>) {}
        )),
        [
            "an operation takes `&self` (read-only) or `&mut self`, not `self: Box<Self>`: the entity keeps its state; write `&mut self` to change it or `&self` to read it"
        ]
    );
    assert!(
        one(quote!(
            fn explicit(self: &mut Self) {}
        ))
        .is_empty()
    );
    assert_eq!(
        one(quote!(
            fn new() -> Self {}
        )),
        [
            "`new` has no `self`: an operation takes `&self` (read-only) or `&mut self`; move helpers without `self` to another impl block"
        ]
    );
    assert_eq!(
        one(quote!(
            fn get<T>(&self) -> T {}
        )),
        [
            "an operation cannot be generic: it is registered and called by name, so its input and output types must be concrete; remove the generic parameters and name the types"
        ]
    );
    assert_eq!(
        one(quote!(
            fn set(&mut self, name: &str) {}
        )),
        ["inputs must be owned: take `String` instead of `&str`"]
    );
    assert_eq!(
        one(quote!(
            fn name(&self) -> &String {}
        )),
        ["outputs must be owned: take `String` instead of `&String`"]
    );
    assert_eq!(
        one(quote!(
            fn set(&mut self, name: impl Into<String>) {}
        )),
        ["an operation cannot be generic: replace `impl Into<String>` with a concrete type"]
    );
    assert_eq!(
        one(quote!(
            fn f(&mut self, a: &mut EntityContext) {}
        )),
        [
            "take the context as `&EntityContext` or `EntityContext`, not `&mut`: write `a: &EntityContext`"
        ]
    );
    assert_eq!(
        one(quote!(
            fn f(&mut self, a: &EntityContext, b: EntityContext) {}
        )),
        ["an operation takes the context at most once: remove this parameter"]
    );
    assert_eq!(
        one(quote!(
            unsafe fn f(&mut self) {}
        )),
        [
            "an operation cannot be `unsafe`: remove `unsafe` and use an `unsafe` block inside the body"
        ]
    );
    assert_eq!(
        one(quote!(
            fn f(&self) -> impl Future<Output = i64> {}
        )),
        [
            "an operation must return a concrete type: name the output type, or make the method `async fn` instead of returning `impl Future`"
        ]
    );
    assert_eq!(
        one(quote!(
            #[cfg(test)]
            fn f(&self) {}
        )),
        [
            "an operation cannot be conditional: the entity's operations are fixed when it compiles; put the method in a separate `#[cfg]` impl block without `#[entity]`"
        ]
    );
}

#[test]
fn block_mistakes() {
    assert_eq!(
        entity_errors(quote!(
            impl Default for Counter {}
        )),
        [
            "`#[entity]` goes on the inherent impl block of the state type, not on an impl of `Default`: write `#[entity] impl Counter { ... }` with the operations as methods, and implement the trait in a separate block"
        ]
    );
    assert_eq!(
        entity_errors(quote!(
            impl<T> Counter<T> {}
        )),
        [
            "`#[entity]` cannot go on a generic impl block: an entity is registered and addressed by name, so its state type must be one concrete type; remove the generic parameters",
        ]
    );
    assert_eq!(
        entity_errors(quote!(
            impl Counter<u8> {}
        )),
        [
            "an entity's state type cannot take generic arguments: an entity is registered and addressed by name; define a type for this state, e.g. `struct CounterState(...)`",
        ]
    );
    assert_eq!(
        entity_errors(quote!(
            impl (u8, u8) {}
        )),
        [
            "`#[entity]` needs a named state type, not `(u8, u8)`: define `#[derive(Default, Serialize, Deserialize)] struct Counter { ... }` and write `#[entity] impl Counter { ... }`"
        ]
    );
    assert_eq!(
        entity_errors(quote!(
            impl Counter {
                fn add(&mut self) {}
                fn Add(&mut self) {}
                fn r#ADD(&self) {}
                helpers!();
            }
        )),
        [
            "`#[entity]` cannot see the operations a macro would generate: move this item to another `impl` block",
            "duplicate operation `add`: operation names are case-insensitive, so `add` and `Add` are the same operation; rename one of them",
            "duplicate operation `add`: operation names are case-insensitive, so `add` and `r#ADD` are the same operation; rename one of them",
        ]
    );
    assert_eq!(
        entity_errors(quote!(
            #[derive(Default)]
            pub struct Counter {
                value: i64,
            }
        )),
        [
            "`#[entity]` goes on the `impl` block of an entity's state type, not on a struct: write `#[entity] impl Counter { ... }` with the operations as methods (or `#[entity] async fn name(ctx: EntityContext) -> Result<(), Error>` for a function-style entity)"
        ]
    );
}

#[test]
fn argument_mistakes() {
    let with = |args: TokenStream| errors(durable_codegen::entity(args, quote!(impl Counter {})));
    assert_eq!(
        with(quote!(key = "x")),
        [
            "unknown argument `key`: the arguments of `#[entity]` are `name = \"...\"` and `crate = \"...\"`"
        ]
    );
    assert_eq!(
        with(quote!(name = "")),
        [
            "`name` must not be empty: write `#[entity(name = \"MyName\")]`, or leave `name` out to use the type's name"
        ]
    );
    assert_eq!(
        with(quote!(name = "a@b")),
        ["an entity's name cannot contain `@`: entity ids are written `@name@key`"]
    );
}

#[test]
fn function_mistakes() {
    assert_eq!(
        entity_errors(quote!(
            fn counter(ctx: EntityContext) -> Result<(), Error> {}
        )),
        ["an entity function must be an `async fn`: write `async fn counter`"]
    );
    assert_eq!(
        entity_errors(quote!(
            async fn counter() -> Result<(), Error> {}
        )),
        [
            "an entity function takes the context: write `async fn counter(ctx: EntityContext)`, and read the operation's input with `ctx.input::<T>()`"
        ]
    );
    assert_eq!(
        entity_errors(quote!(
            async fn counter(ctx: ActivityContext) -> Result<(), Error> {}
        )),
        [
            "an entity function takes `EntityContext`, not `ActivityContext`: write `async fn counter(ctx: EntityContext)`, and read the operation's input with `ctx.input::<T>()`"
        ]
    );
    assert_eq!(
        entity_errors(quote!(
            async fn counter(ctx: &EntityContext) -> Result<(), Error> {}
        )),
        ["take the context by value: write `ctx: EntityContext`, not a reference"]
    );
    assert_eq!(
        entity_errors(quote!(
            async fn counter(ctx: EntityContext, amount: i64) -> Result<(), Error> {}
        )),
        [
            "an entity function takes only the context: remove `amount: i64` and read the operation's input with `ctx.input::<T>()`"
        ]
    );
    assert_eq!(
        entity_errors(quote!(
            async fn counter(ctx: EntityContext) {}
        )),
        [
            "an entity function must return `Result<(), durable::Error>`: add `-> Result<(), Error>` after the parameters"
        ]
    );
    assert_eq!(
        entity_errors(quote!(
            async fn counter(ctx: EntityContext) -> Result<i64, Error> {}
        )),
        [
            "an entity function returns `Result<(), E>`, not `Result<i64, E>`: give callers a value with `ctx.set_result(value)`"
        ]
    );
}
