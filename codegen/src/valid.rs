//! Checks the annotated function's shape, reporting each mistake at the user's token with a
//! message that says what to write instead.

use quote::ToTokens;
use syn::visit::Visit;
use syn::{Generics, ItemFn, PatType, Safety, Type};

use crate::ctxt::Ctxt;
use crate::model::{Function, Kind, Param, peel};

/// The parts of a function that passed validation, ready for expansion.
pub(crate) struct Signature<'a> {
    /// The context parameter: the first one.
    pub(crate) context: &'a PatType,
    /// The input parameter, if the function takes one.
    pub(crate) input: Option<&'a PatType>,
    /// The declared return type.
    pub(crate) output: &'a Type,
}

/// Checks `func`, recording every mistake in `cx`. Returns the validated signature only when
/// nothing was wrong with it.
pub(crate) fn check<'a>(cx: &Ctxt, func: &Function<'a>) -> Option<Signature<'a>> {
    let before = cx.len();
    check_modifiers(cx, func.kind.noun(), func.item);
    check_generics(cx, func.kind.noun(), &func.item.sig.generics);
    if let Some(receiver) = func.receiver {
        cx.error_spanned_by(
            receiver,
            format_args!(
                "{} is a free function, not a method: remove `self` and move the function out of the `impl` block",
                func.kind.noun(),
            ),
        );
    }
    for param in &func.params {
        reject_impl_trait(cx, func.kind.noun(), &param.arg.ty);
    }
    let params = check_context(cx, func);
    let input = check_inputs(cx, func.kind, &params.inputs);
    let output = check_output(cx, func);
    let valid = cx.len() == before;
    match (valid, params.context, output) {
        (true, Some(context), Some(output)) => Some(Signature {
            context,
            input,
            output,
        }),
        _ => None,
    }
}

/// `async` is required; `const`, `unsafe`, `extern` and `default` are not allowed. `noun` names
/// what the function is, for messages: `an activity`.
pub(crate) fn check_modifiers(cx: &Ctxt, noun: &str, item: &ItemFn) {
    let sig = &item.sig;
    if sig.asyncness.is_none() {
        cx.error_spanned_by(
            sig.fn_token,
            format_args!(
                "{noun} must be an `async fn`: write `async fn {}`",
                sig.ident
            ),
        );
    }
    if let Some(constness) = sig.constness {
        cx.error_spanned_by(
            constness,
            format_args!("{noun} cannot be a `const fn`: remove `const`"),
        );
    }
    match &sig.safety {
        Safety::Unsafe(token) => cx.error_spanned_by(
            token,
            format_args!(
                "{noun} cannot be `unsafe`: remove `unsafe` and use an `unsafe` block inside the body"
            ),
        ),
        Safety::Safe(token) => {
            cx.error_spanned_by(token, format_args!("{noun} cannot be `safe`: remove `safe`"));
        }
        _ => {}
    }
    if let Some(abi) = &sig.abi {
        cx.error_spanned_by(
            abi,
            format_args!("{noun} cannot have an `extern` ABI: remove it"),
        );
    }
    if let Some(default) = item.modifiers.defaultness {
        cx.error_spanned_by(
            default,
            format_args!("{noun} cannot be `default`: remove it"),
        );
    }
    if let Some(variadic) = &sig.variadic {
        cx.error_spanned_by(
            variadic,
            format_args!("{noun} cannot be variadic: take one input instead"),
        );
    }
}

/// Generic parameters and `where` clauses are not allowed: the function is registered and
/// called by name, so its types must be concrete.
pub(crate) fn check_generics(cx: &Ctxt, noun: &str, generics: &Generics) {
    if !generics.params.is_empty() {
        cx.error_spanned_by(
            generics,
            format_args!(
                "{noun} cannot be generic: it is registered and called by name, so its input and output types must be concrete; remove the generic parameters and name the types"
            ),
        );
    }
    if let Some(where_clause) = &generics.where_clause {
        cx.error_spanned_by(
            where_clause,
            format_args!("{noun} cannot have a `where` clause: remove it and name concrete types"),
        );
    }
}

/// Reports `impl Trait` anywhere in a parameter type.
pub(crate) fn reject_impl_trait(cx: &Ctxt, noun: &str, ty: &Type) {
    struct Finder<'c> {
        cx: &'c Ctxt,
        noun: &'c str,
    }
    impl<'ast> Visit<'ast> for Finder<'_> {
        fn visit_type_impl_trait(&mut self, node: &'ast syn::TypeImplTrait) {
            self.cx.error_spanned_by(
                node,
                format_args!(
                    "{} cannot be generic: replace `impl {}` with a concrete type",
                    self.noun,
                    type_text(&node.bounds),
                ),
            );
        }
    }
    Finder { cx, noun }.visit_type(ty);
}

/// The parameters once the context has been found.
struct Params<'a> {
    /// The context parameter, when it is where it belongs and of the right type.
    context: Option<&'a PatType>,
    /// The other parameters, in order.
    inputs: Vec<Param<'a>>,
}

/// The first parameter must be the context of this kind, by value.
fn check_context<'a>(cx: &Ctxt, func: &Function<'a>) -> Params<'a> {
    let kind = func.kind;
    let expected = kind.context();
    let Some(first) = func.params.first() else {
        let parens = func.item.sig.paren_token.span.join();
        let message = format!(
            "{} takes the context as its first parameter: write `async fn {}(ctx: {expected}, input: T)`, or `(ctx: {expected})` without an input",
            kind.noun(),
            func.ident(),
        );
        if func.receiver.is_none() {
            cx.error_at(parens, message);
        }
        return Params {
            context: None,
            inputs: Vec::new(),
        };
    };
    if let Some(context) = first.context {
        let found = context.kind.context();
        if context.kind != kind {
            cx.error_spanned_by(
                &first.arg.ty,
                format_args!(
                    "{} take `{expected}`, not `{found}`: write `{}: {expected}`, or use `#[{}]` for {}",
                    kind.plural(),
                    pat_text(first.arg),
                    kind.other().attr(),
                    kind.other().noun(),
                ),
            );
        } else if context.by_ref {
            cx.error_spanned_by(
                &first.arg.ty,
                format_args!(
                    "take the context by value: write `{}: {expected}`, not a reference",
                    pat_text(first.arg),
                ),
            );
        }
        return Params {
            context: Some(first.arg),
            inputs: func.params[1..].to_vec(),
        };
    }
    let misplaced = func
        .params
        .iter()
        .position(|p| p.context.is_some_and(|c| c.kind == kind));
    match misplaced {
        Some(index) => {
            let param = &func.params[index];
            cx.error_spanned_by(
                param.arg,
                format_args!(
                    "the context must be the first parameter: move `{}: {expected}` before `{}`",
                    pat_text(param.arg),
                    pat_text(first.arg),
                ),
            );
            let inputs = func
                .params
                .iter()
                .enumerate()
                .filter(|&(i, _)| i != index)
                .map(|(_, p)| *p)
                .collect();
            Params {
                context: Some(param.arg),
                inputs,
            }
        }
        None => {
            cx.error_spanned_by(
                first.arg,
                format_args!(
                    "{} takes the context as its first parameter: write `async fn {}(ctx: {expected}, {})`",
                    kind.noun(),
                    func.ident(),
                    arg_text(first.arg),
                ),
            );
            Params {
                context: None,
                inputs: func.params.clone(),
            }
        }
    }
}

/// At most one input, owned, and no second context.
fn check_inputs<'a>(cx: &Ctxt, kind: Kind, inputs: &[Param<'a>]) -> Option<&'a PatType> {
    let mut values = Vec::new();
    for param in inputs {
        match param.context {
            Some(context) if context.kind == kind => cx.error_spanned_by(
                param.arg,
                format_args!(
                    "{} takes its context once, as the first parameter: remove this one",
                    kind.noun()
                ),
            ),
            Some(context) => cx.error_spanned_by(
                &param.arg.ty,
                format_args!(
                    "{} take `{}`, not `{}`: remove this parameter",
                    kind.plural(),
                    kind.context(),
                    context.kind.context(),
                ),
            ),
            None => values.push(param.arg),
        }
    }
    if let [_, extra @ ..] = &values[..]
        && !extra.is_empty()
    {
        cx.error_spanned_by(
            quote::quote!(#(#extra),*),
            format_args!(
                "{} takes at most one input; put several values in a struct or tuple: `({}): ({})`",
                kind.noun(),
                values
                    .iter()
                    .map(|v| pat_text(v))
                    .collect::<Vec<_>>()
                    .join(", "),
                values
                    .iter()
                    .map(|v| type_text(&v.ty))
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
        );
    }
    let input = values.first().copied();
    if let Some(input) = input {
        check_owned(cx, "inputs", &input.ty);
    }
    input
}

/// A return type is required, and its payload must be owned.
fn check_output<'a>(cx: &Ctxt, func: &Function<'a>) -> Option<&'a Type> {
    let Some(output) = func.output else {
        cx.error_at(
            func.item.sig.paren_token.span.close(),
            format_args!(
                "{} must return `Result<T, durable::Error>`: add `-> Result<T, Error>` after the parameters",
                func.kind.noun(),
            ),
        );
        return None;
    };
    if let Type::ImplTrait(_) = peel(output) {
        cx.error_spanned_by(
            output,
            format_args!(
                "{} must return a concrete `Result<T, E>`: write `-> Result<T, Error>`",
                func.kind.noun(),
            ),
        );
        return None;
    }
    check_owned(cx, "outputs", output);
    Some(output)
}

/// Payload types cross a serialization boundary, so they cannot borrow. `what` is `inputs` or
/// `outputs`, for messages.
pub(crate) fn check_owned(cx: &Ctxt, what: &str, ty: &Type) {
    struct Finder<'c> {
        cx: &'c Ctxt,
        what: &'c str,
    }
    impl<'ast> Visit<'ast> for Finder<'_> {
        fn visit_type_reference(&mut self, node: &'ast syn::TypeReference) {
            let owned = match peel(&node.elem) {
                Type::Path(path) if path.qself.is_none() && path.path.is_ident("str") => {
                    "String".to_owned()
                }
                Type::Slice(slice) => format!("Vec<{}>", type_text(&slice.elem)),
                elem => type_text(elem),
            };
            self.cx.error_spanned_by(
                node,
                format_args!(
                    "{} must be owned: take `{owned}` instead of `{}`",
                    self.what,
                    type_text(node),
                ),
            );
        }
        fn visit_lifetime(&mut self, node: &'ast syn::Lifetime) {
            if node.ident != "static" {
                self.cx.error_spanned_by(
                    node,
                    format_args!(
                        "{} must be owned and `'static`: remove the lifetime `{node}`",
                        self.what
                    ),
                );
            }
        }
        fn visit_type_fn_ptr(&mut self, _: &'ast syn::TypeFnPtr) {}
    }
    Finder { cx, what }.visit_type(ty);
}

/// `ctx` for a parameter whose pattern is `ctx` (or `mut ctx`, `_`), for messages.
pub(crate) fn pat_text(arg: &PatType) -> String {
    type_text(&arg.pat)
}

/// `ctx: ActivityContext` as written, for messages.
pub(crate) fn arg_text(arg: &PatType) -> String {
    format!("{}: {}", pat_text(arg), type_text(&arg.ty))
}

/// Tokens as a reader would write them: `Vec<u8>` rather than `Vec < u8 >`.
pub(crate) fn type_text<T: ToTokens>(tokens: &T) -> String {
    let spaced = tokens.to_token_stream().to_string();
    let mut text = String::with_capacity(spaced.len());
    let chars: Vec<char> = spaced.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if c == ' ' {
            let prev = i.checked_sub(1).map(|j| chars[j]);
            let next = chars.get(i + 1).copied();
            let tight_after = matches!(prev, Some('<' | '&' | '(' | '[' | ':' | '\''));
            let tight_before = matches!(next, Some('<' | '>' | ',' | ')' | ']' | ':'));
            if tight_after || tight_before {
                continue;
            }
        }
        text.push(c);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::type_text;
    use syn::parse_quote;

    #[test]
    fn type_text_reads_naturally() {
        let ty: syn::Type =
            parse_quote!(std::collections::HashMap<String, Vec<(u8, &'static str)>>);
        assert_eq!(
            type_text(&ty),
            "std::collections::HashMap<String, Vec<(u8, &'static str)>>"
        );
        let ty: syn::Type = parse_quote!(&mut [u8]);
        assert_eq!(type_text(&ty), "&mut [u8]");
    }
}
