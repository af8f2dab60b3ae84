//! Parses the attribute's arguments: `#[activity]`, `#[entity]`,
//! `#[activity(name = "SayHello")]` or `#[activity(crate = "my_sdk::durable")]`.

use proc_macro2::{Ident, TokenStream};
use quote::{quote, quote_spanned};
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, ExprLit, Lit, LitStr, Meta, Path, Token};

use crate::ctxt::Ctxt;

/// The arguments given to `#[activity(...)]`, `#[orchestrator(...)]` or `#[entity(...)]`.
#[derive(Default)]
pub(crate) struct Args {
    /// `name = "..."`: the name the item is registered under, instead of its identifier.
    pub(crate) name: Option<LitStr>,
    /// `crate = "..."`: the path to the `durable` crate, for crates that re-export it. Its
    /// tokens are spanned at the string literal, so a path that does not resolve is reported
    /// there.
    pub(crate) krate: Option<Path>,
}

impl Args {
    /// The path generated code imports as `__d`: `::durable::__private`, or the `__private`
    /// module under the `crate` argument, spanned at its literal so that a path without one
    /// is reported there.
    pub(crate) fn private(&self) -> TokenStream {
        match &self.krate {
            Some(krate) => {
                let private = Ident::new("__private", krate.span());
                quote!(#krate::#private)
            }
            None => quote!(::durable::__private),
        }
    }

    /// `use ::durable::__private as __d;`, the one place an expansion names the crate. With
    /// `crate = "..."` it is spanned at the literal, so that a path that does not lead to
    /// `durable` is reported there.
    pub(crate) fn import(&self) -> TokenStream {
        let private = self.private();
        match &self.krate {
            Some(krate) => quote_spanned!(krate.span()=> use #private as __d;),
            None => quote!(use #private as __d;),
        }
    }
}

/// Which attribute is being parsed, and on what: the words its messages use.
#[derive(Clone, Copy)]
pub(crate) struct Target {
    /// The attribute's name: `activity`.
    pub(crate) attr: &'static str,
    /// What the name defaults to: `function` (the function's name) or `type`.
    pub(crate) owner: &'static str,
}

/// The arguments there are, as the messages list them.
const KEYS: [&str; 2] = ["name", "crate"];

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
    let mut seen = [false; KEYS.len()];
    for meta in &metas {
        let Some(key) = KEYS.iter().position(|key| meta.path().is_ident(key)) else {
            cx.error_spanned_by(
                meta.path(),
                format_args!(
                    "unknown argument `{}`: the arguments of `#[{attr}]` are `name = \"...\"` and `crate = \"...\"`",
                    path_text(meta.path()),
                    attr = target.attr,
                ),
            );
            continue;
        };
        if std::mem::replace(&mut seen[key], true) {
            cx.error_spanned_by(
                meta,
                format_args!("duplicate argument `{}`: give it once", KEYS[key]),
            );
            continue;
        }
        match KEYS[key] {
            "name" => parsed.name = parse_name(cx, target, meta),
            _ => parsed.krate = parse_crate(cx, target, meta),
        }
    }
    parsed
}

/// The string literal of `key = "..."`, or `None` after reporting what to write instead.
fn string_value<'a>(cx: &Ctxt, key: &str, example: &str, meta: &'a Meta) -> Option<&'a LitStr> {
    let value = match meta {
        Meta::NameValue(name_value) => &name_value.value,
        Meta::Path(path) => {
            cx.error_spanned_by(path, format_args!("`{key}` needs a value: {example}"));
            return None;
        }
        Meta::List(list) => {
            cx.error_spanned_by(
                list,
                format_args!("`{key}` takes `=`, not parentheses: {example}"),
            );
            return None;
        }
    };
    match value {
        Expr::Lit(ExprLit {
            lit: Lit::Str(literal),
            ..
        }) => Some(literal),
        _ => {
            cx.error_spanned_by(
                value,
                format_args!("`{key}` must be a string literal: {example}"),
            );
            None
        }
    }
}

/// Checks `name = "..."` and returns the literal when it is a usable name.
fn parse_name(cx: &Ctxt, target: Target, meta: &Meta) -> Option<LitStr> {
    let example = format!("write `#[{}(name = \"MyName\")]`", target.attr);
    let literal = string_value(cx, "name", &example, meta)?;
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

/// Checks `crate = "..."` and returns the path when it is one: plain segments, no generics.
fn parse_crate(cx: &Ctxt, target: Target, meta: &Meta) -> Option<Path> {
    let attr = target.attr;
    // `crate = my_sdk::durable`: the path is right, only the quotes are missing.
    if let Meta::NameValue(name_value) = meta
        && let Expr::Path(path) = &name_value.value
        && path.qself.is_none()
    {
        cx.error_spanned_by(
            path,
            format_args!(
                "`crate` takes the path as a string literal: write `#[{attr}(crate = \"{}\")]`",
                path_text(&path.path),
            ),
        );
        return None;
    }
    let example = format!("write `#[{attr}(crate = \"my_sdk::durable\")]`");
    let literal = string_value(cx, "crate", &example, meta)?;
    if literal.value().trim().is_empty() {
        cx.error_spanned_by(
            literal,
            format_args!(
                "`crate` must not be empty: {example}, or leave `crate` out to use `::durable`"
            ),
        );
        return None;
    }
    // Parsed with the literal's span, so a path that does not resolve is reported at it.
    match literal.parse_with(Path::parse_mod_style) {
        Ok(path) => Some(path),
        Err(_) => {
            cx.error_spanned_by(
                literal,
                format_args!(
                    "`crate` must be a path to the `durable` crate, such as `::durable` or `my_sdk::durable`, not `{}`: {example}",
                    literal.value(),
                ),
            );
            None
        }
    }
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
            [
                "unknown argument `retries`: the arguments of `#[activity]` are `name = \"...\"` and `crate = \"...\"`"
            ]
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
    fn crate_is_taken_with_name() {
        let (args, errors) = run(quote!(crate = "my_sdk::durable", name = "SayHello"));
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(args.name.as_ref().unwrap().value(), "SayHello");
        assert_eq!(args.private().to_string(), "my_sdk :: durable :: __private");
    }

    #[test]
    fn crate_defaults_to_durable() {
        let (args, _) = run(quote!(name = "SayHello"));
        assert_eq!(args.private().to_string(), ":: durable :: __private");
        let (args, errors) = run(quote!(crate = "::durable"));
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(args.private().to_string(), ":: durable :: __private");
    }

    #[test]
    fn crate_without_quotes_suggests_them() {
        let (args, errors) = run(quote!(crate = my_sdk::durable));
        assert!(args.krate.is_none());
        assert_eq!(
            errors,
            [
                "`crate` takes the path as a string literal: write `#[activity(crate = \"my_sdk::durable\")]`"
            ]
        );
    }

    #[test]
    fn crate_must_be_a_path() {
        for text in ["my sdk", "my_sdk::", "Vec<u8>", "1"] {
            let (args, errors) = run(quote!(crate = #text));
            assert!(args.krate.is_none());
            assert!(
                errors[0].starts_with("`crate` must be a path to the `durable` crate"),
                "{text}: {errors:?}"
            );
        }
        let (_, errors) = run(quote!(crate = ""));
        assert!(
            errors[0].starts_with("`crate` must not be empty"),
            "{errors:?}"
        );
        let (_, errors) = run(quote!(crate = 1));
        assert!(
            errors[0].starts_with("`crate` must be a string literal"),
            "{errors:?}"
        );
    }

    #[test]
    fn crate_twice_or_without_value() {
        let (args, errors) = run(quote!(crate = "a", crate = "b"));
        assert_eq!(args.private().to_string(), "a :: __private");
        assert_eq!(errors, ["duplicate argument `crate`: give it once"]);
        let (_, errors) = run(quote!(crate));
        assert!(errors[0].starts_with("`crate` needs a value"), "{errors:?}");
        let (_, errors) = run(quote!(crate("a")));
        assert!(errors[0].starts_with("`crate` takes `=`"), "{errors:?}");
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
