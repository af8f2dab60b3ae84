//! Parses the attribute's arguments: `#[activity]`, `#[entity]` or `#[activity(name = "SayHello")]`.

use proc_macro2::TokenStream;
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::{Expr, ExprLit, Lit, LitStr, Meta, Token};

use crate::ctxt::Ctxt;

/// The arguments given to `#[activity(...)]`, `#[orchestrator(...)]` or `#[entity(...)]`.
#[derive(Default)]
pub(crate) struct Args {
    /// `name = "..."`: the name the item is registered under, instead of its identifier.
    pub(crate) name: Option<LitStr>,
}

/// Which attribute is being parsed, and on what: the words its messages use.
#[derive(Clone, Copy)]
pub(crate) struct Target {
    /// The attribute's name: `activity`.
    pub(crate) attr: &'static str,
    /// What the name defaults to: `function` (the function's name) or `type`.
    pub(crate) owner: &'static str,
}

/// Parses the attribute's arguments, recording every mistake in `cx`.
///
/// A syntax error ends parsing with that one error; otherwise each argument is checked on its
/// own, so an unknown key and a malformed value in the same list are both reported.
pub(crate) fn parse(cx: &Ctxt, target: Target, args: TokenStream) -> Args {
    let metas = match Punctuated::<Meta, Token![,]>::parse_terminated.parse2(args) {
        Ok(metas) => metas,
        Err(error) => {
            cx.syn_error(error);
            return Args::default();
        }
    };
    let mut parsed = Args::default();
    let mut seen_name = false;
    for meta in &metas {
        if !meta.path().is_ident("name") {
            cx.error_spanned_by(
                meta.path(),
                format_args!(
                    "unknown argument `{}`: the only argument of `#[{}]` is `name = \"...\"`",
                    path_text(meta.path()),
                    target.attr,
                ),
            );
            continue;
        }
        if seen_name {
            cx.error_spanned_by(meta, "duplicate argument `name`: give it once");
            continue;
        }
        seen_name = true;
        if let Some(name) = parse_name(cx, target, meta) {
            parsed.name = Some(name);
        }
    }
    parsed
}

/// Checks `name = "..."` and returns the literal when it is a usable name.
fn parse_name(cx: &Ctxt, target: Target, meta: &Meta) -> Option<LitStr> {
    let example = format!("write `#[{}(name = \"MyName\")]`", target.attr);
    let value = match meta {
        Meta::NameValue(name_value) => &name_value.value,
        Meta::Path(path) => {
            cx.error_spanned_by(path, format_args!("`name` needs a value: {example}"));
            return None;
        }
        Meta::List(list) => {
            cx.error_spanned_by(
                list,
                format_args!("`name` takes `=`, not parentheses: {example}"),
            );
            return None;
        }
    };
    let literal = match value {
        Expr::Lit(ExprLit {
            lit: Lit::Str(literal),
            ..
        }) => literal,
        _ => {
            cx.error_spanned_by(
                value,
                format_args!("`name` must be a string literal: {example}"),
            );
            return None;
        }
    };
    let text = literal.value();
    if text.trim().is_empty() {
        cx.error_spanned_by(
            literal,
            format_args!(
                "`name` must not be empty: {example}, or leave `name` out to use the {}'s name",
                target.owner,
            ),
        );
        return None;
    }
    if text.trim() != text {
        cx.error_spanned_by(literal, "`name` must not start or end with whitespace");
        return None;
    }
    Some(literal.clone())
}

/// `a::b` as written, for messages.
pub(crate) fn path_text(path: &syn::Path) -> String {
    let mut text = String::new();
    if path.leading_colon.is_some() {
        text.push_str("::");
    }
    for (i, segment) in path.segments.iter().enumerate() {
        if i > 0 {
            text.push_str("::");
        }
        text.push_str(&segment.ident.to_string());
    }
    text
}

#[cfg(test)]
mod tests {
    use super::{Args, Target, parse};
    use crate::ctxt::Ctxt;
    use proc_macro2::TokenStream;
    use quote::quote;

    fn run(args: TokenStream) -> (Args, Vec<String>) {
        let cx = Ctxt::new();
        let target = Target {
            attr: "activity",
            owner: "function",
        };
        let parsed = parse(&cx, target, args);
        let errors = match cx.check() {
            Ok(()) => Vec::new(),
            Err(error) => error.into_iter().map(|e| e.to_string()).collect(),
        };
        (parsed, errors)
    }

    #[test]
    fn no_arguments() {
        let (args, errors) = run(quote!());
        assert!(args.name.is_none());
        assert!(errors.is_empty());
    }

    #[test]
    fn name_is_taken() {
        let (args, errors) = run(quote!(name = "SayHello"));
        assert_eq!(args.name.unwrap().value(), "SayHello");
        assert!(errors.is_empty());
    }

    #[test]
    fn trailing_comma_is_fine() {
        let (args, errors) = run(quote!(name = "SayHello",));
        assert_eq!(args.name.unwrap().value(), "SayHello");
        assert!(errors.is_empty());
    }

    #[test]
    fn unknown_key_names_the_only_key() {
        let (_, errors) = run(quote!(retries = 3));
        assert_eq!(
            errors,
            ["unknown argument `retries`: the only argument of `#[activity]` is `name = \"...\"`"]
        );
    }

    #[test]
    fn non_string_value() {
        let (args, errors) = run(quote!(name = SayHello));
        assert!(args.name.is_none());
        assert_eq!(
            errors,
            ["`name` must be a string literal: write `#[activity(name = \"MyName\")]`"]
        );
    }

    #[test]
    fn empty_and_padded_names() {
        let (_, errors) = run(quote!(name = ""));
        assert!(
            errors[0].starts_with("`name` must not be empty"),
            "{errors:?}"
        );
        let (_, errors) = run(quote!(name = " x"));
        assert_eq!(errors, ["`name` must not start or end with whitespace"]);
    }

    #[test]
    fn duplicate_key_keeps_the_first() {
        let (args, errors) = run(quote!(name = "A", name = "B"));
        assert_eq!(args.name.unwrap().value(), "A");
        assert_eq!(errors, ["duplicate argument `name`: give it once"]);
    }

    #[test]
    fn name_without_value_or_with_parentheses() {
        let (_, errors) = run(quote!(name));
        assert!(errors[0].starts_with("`name` needs a value"), "{errors:?}");
        let (_, errors) = run(quote!(name("A")));
        assert!(errors[0].starts_with("`name` takes `=`"), "{errors:?}");
    }

    #[test]
    fn every_mistake_is_reported() {
        let (_, errors) = run(quote!(foo, name = 1, bar = "x"));
        assert_eq!(errors.len(), 3, "{errors:?}");
    }

    #[test]
    fn syntax_error_is_reported_once() {
        let (_, errors) = run(quote!(name "x"));
        assert_eq!(errors.len(), 1, "{errors:?}");
    }
}
