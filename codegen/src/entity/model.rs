//! The model of a class-style entity: a borrowed view of the `#[entity]` impl block that keeps
//! the user's nodes, so validation and expansion can span at the user's tokens.

use syn::ext::IdentExt;
use syn::{FnArg, ImplItem, ImplItemFn, ItemImpl, PatType, Receiver, ReturnType, Type};

use crate::model::peel;

/// The annotated impl block: its operations (every method) and its other items.
pub(crate) struct EntityImpl<'a> {
    /// The user's impl block, unchanged.
    pub(crate) item: &'a ItemImpl,
    /// One per method, in order.
    pub(crate) ops: Vec<Operation<'a>>,
    /// Items that are neither methods nor constants (macros, associated types, ...).
    pub(crate) others: Vec<&'a ImplItem>,
}

/// One method of the impl block: an operation.
pub(crate) struct Operation<'a> {
    /// The user's method.
    pub(crate) method: &'a ImplItemFn,
    /// The operation's name: the method's name, lower case, without `r#`.
    pub(crate) name: String,
    /// The `self` parameter, if there is one.
    pub(crate) receiver: Option<&'a Receiver>,
    /// The typed parameters, in order.
    pub(crate) params: Vec<OpParam<'a>>,
    /// The declared return type, if any.
    pub(crate) output: Option<&'a Type>,
}

/// One typed parameter of an operation.
#[derive(Clone, Copy)]
pub(crate) struct OpParam<'a> {
    /// The user's `pattern: Type`.
    pub(crate) arg: &'a PatType,
    /// How the parameter takes the `EntityContext`, if its type names it.
    pub(crate) context: Option<ContextRef>,
}

/// How a parameter takes the entity context.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ContextRef {
    /// `ctx: EntityContext`
    Owned,
    /// `ctx: &EntityContext`
    Shared,
    /// `ctx: &mut EntityContext`
    Exclusive,
}

impl<'a> EntityImpl<'a> {
    /// Builds the model of `item`.
    pub(crate) fn from_syn(item: &'a ItemImpl) -> Self {
        let mut ops = Vec::new();
        let mut others = Vec::new();
        for member in &item.items {
            match member {
                ImplItem::Fn(method) => ops.push(Operation::from_syn(method)),
                ImplItem::Const(_) => {}
                other => others.push(other),
            }
        }
        EntityImpl { item, ops, others }
    }
}

impl<'a> Operation<'a> {
    fn from_syn(method: &'a ImplItemFn) -> Self {
        let mut receiver = None;
        let mut params = Vec::new();
        for input in &method.sig.inputs {
            match input {
                FnArg::Receiver(r) => receiver = receiver.or(Some(r)),
                FnArg::Typed(arg) => params.push(OpParam {
                    arg,
                    context: context_ref(&arg.ty),
                }),
            }
        }
        let output = match &method.sig.output {
            ReturnType::Default => None,
            ReturnType::Type(_, ty) => Some(&**ty),
        };
        Operation {
            method,
            name: method.sig.ident.unraw().to_string().to_lowercase(),
            receiver,
            params,
            output,
        }
    }
}

/// Classifies a parameter type as the entity context, by value or by reference.
fn context_ref(ty: &Type) -> Option<ContextRef> {
    match peel(ty) {
        Type::Reference(reference) if is_entity_context(&reference.elem) => {
            Some(match reference.mutability {
                Some(_) => ContextRef::Exclusive,
                None => ContextRef::Shared,
            })
        }
        other if is_entity_context(other) => Some(ContextRef::Owned),
        _ => None,
    }
}

/// Whether a type names `EntityContext`, judged by the last segment of its path.
pub(crate) fn is_entity_context(ty: &Type) -> bool {
    last_segment(ty).is_some_and(|last| last.ident == "EntityContext")
}

/// Whether a type is a `Result`, judged by the last segment of its path (`Result<T, E>`,
/// `io::Result<T>`, `anyhow::Result<T>`).
pub(crate) fn is_result(ty: &Type) -> bool {
    last_segment(ty).is_some_and(|last| last.ident == "Result")
}

/// The `T` of a `Result<T, ...>`, when it is written out.
pub(crate) fn result_ok(ty: &Type) -> Option<&Type> {
    let last = last_segment(ty)?;
    let syn::PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    match args.args.first()? {
        syn::GenericArgument::Type(ok) => Some(ok),
        _ => None,
    }
}

/// The last segment of a plain (unqualified) type path.
fn last_segment(ty: &Type) -> Option<&syn::PathSegment> {
    match peel(ty) {
        Type::Path(path) if path.qself.is_none() => path.path.segments.last(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::{ContextRef, EntityImpl, is_result, result_ok};
    use quote::ToTokens;
    use syn::parse_quote;

    #[test]
    fn every_method_is_an_operation() {
        let item: syn::ItemImpl = parse_quote! {
            impl Counter {
                const STEP: i64 = 1;
                pub fn r#Add(&mut self, ctx: &durable::EntityContext, amount: i64) {}
                fn get(&self, ctx: EntityContext) -> i64 { 0 }
                fn new() -> Self { Counter }
                fn bad(&self, ctx: &mut EntityContext) {}
                my_macro!();
            }
        };
        let model = EntityImpl::from_syn(&item);
        let names: Vec<_> = model.ops.iter().map(|op| op.name.as_str()).collect();
        assert_eq!(names, ["add", "get", "new", "bad"]);
        assert_eq!(model.others.len(), 1);
        let contexts: Vec<_> = model
            .ops
            .iter()
            .map(|op| op.params.iter().map(|p| p.context).collect::<Vec<_>>())
            .collect();
        assert_eq!(
            contexts,
            [
                vec![Some(ContextRef::Shared), None],
                vec![Some(ContextRef::Owned)],
                vec![],
                vec![Some(ContextRef::Exclusive)],
            ]
        );
        assert!(model.ops[2].receiver.is_none());
        assert!(model.ops[0].output.is_none());
    }

    #[test]
    fn results_are_recognised_by_their_last_segment() {
        let text = |ty: &syn::Type| result_ok(ty).map(|t| t.to_token_stream().to_string());
        let ty: syn::Type = parse_quote!(Result<i64, Error>);
        assert!(is_result(&ty));
        assert_eq!(text(&ty).as_deref(), Some("i64"));
        let ty: syn::Type = parse_quote!(anyhow::Result<Vec<u8>>);
        assert_eq!(text(&ty).as_deref(), Some("Vec < u8 >"));
        let ty: syn::Type = parse_quote!(std::fmt::Result);
        assert!(is_result(&ty));
        assert_eq!(text(&ty), None);
        let ty: syn::Type = parse_quote!(Option<i64>);
        assert!(!is_result(&ty));
    }
}
