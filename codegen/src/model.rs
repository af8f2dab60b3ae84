//! The model of an annotated function: a borrowed view of the `syn` tree that keeps the user's
//! nodes, so every later stage can span its errors and its generated code at the user's tokens.

use syn::{FnArg, ItemFn, PatType, Receiver, ReturnType, Type};

/// Which macro is expanding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `#[activity]`
    Activity,
    /// `#[orchestrator]`
    Orchestrator,
}

impl Kind {
    /// The attribute's name: `activity`.
    pub(crate) fn attr(self) -> &'static str {
        match self {
            Kind::Activity => "activity",
            Kind::Orchestrator => "orchestrator",
        }
    }

    /// The attribute's name and what it is on, for messages about its arguments.
    pub(crate) fn target(self) -> crate::attr::Target {
        crate::attr::Target {
            attr: self.attr(),
            owner: "function",
        }
    }

    /// The noun with its article, for messages: `an activity`.
    pub(crate) fn noun(self) -> &'static str {
        match self {
            Kind::Activity => "an activity",
            Kind::Orchestrator => "an orchestrator",
        }
    }

    /// The plural noun, for messages: `activities`.
    pub(crate) fn plural(self) -> &'static str {
        match self {
            Kind::Activity => "activities",
            Kind::Orchestrator => "orchestrators",
        }
    }

    /// The context type this kind of function takes first.
    pub(crate) fn context(self) -> &'static str {
        match self {
            Kind::Activity => "ActivityContext",
            Kind::Orchestrator => "OrchestrationContext",
        }
    }

    /// The other kind.
    pub(crate) fn other(self) -> Kind {
        match self {
            Kind::Activity => Kind::Orchestrator,
            Kind::Orchestrator => Kind::Activity,
        }
    }

    /// Which kind's context a type names, judged by the last segment of its path.
    fn of_context(ty: &Type) -> Option<Kind> {
        let Type::Path(path) = peel(ty) else {
            return None;
        };
        let last = path.path.segments.last()?;
        [Kind::Activity, Kind::Orchestrator]
            .into_iter()
            .find(|kind| last.ident == kind.context())
    }
}

/// The annotated function, with its parameters classified.
pub(crate) struct Function<'a> {
    /// Which macro is expanding.
    pub(crate) kind: Kind,
    /// The user's item, unchanged.
    pub(crate) item: &'a ItemFn,
    /// A `self` parameter, if the function has one.
    pub(crate) receiver: Option<&'a Receiver>,
    /// The typed parameters, in order.
    pub(crate) params: Vec<Param<'a>>,
    /// The declared return type, if any.
    pub(crate) output: Option<&'a Type>,
}

/// One typed parameter of the function.
#[derive(Clone, Copy)]
pub(crate) struct Param<'a> {
    /// The user's `pattern: Type`.
    pub(crate) arg: &'a PatType,
    /// Which context the parameter's type names, if it names one.
    pub(crate) context: Option<ContextParam>,
}

/// A parameter whose type names one of the two contexts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ContextParam {
    /// Whose context it is.
    pub(crate) kind: Kind,
    /// Whether it is taken by reference (`&OrchestrationContext`) instead of by value.
    pub(crate) by_ref: bool,
}

impl<'a> Function<'a> {
    /// Builds the model of `item` for the macro `kind`.
    pub(crate) fn from_syn(kind: Kind, item: &'a ItemFn) -> Self {
        let mut receiver = None;
        let mut params = Vec::new();
        for input in &item.sig.inputs {
            match input {
                FnArg::Receiver(r) => receiver = receiver.or(Some(r)),
                FnArg::Typed(arg) => params.push(Param {
                    arg,
                    context: context_param(&arg.ty),
                }),
            }
        }
        let output = match &item.sig.output {
            ReturnType::Default => None,
            ReturnType::Type(_, ty) => Some(&**ty),
        };
        Function {
            kind,
            item,
            receiver,
            params,
            output,
        }
    }

    /// The function's identifier, which becomes the handle's name.
    pub(crate) fn ident(&self) -> &'a syn::Ident {
        &self.item.sig.ident
    }
}

/// Classifies a parameter type as a context, by value or by reference.
fn context_param(ty: &Type) -> Option<ContextParam> {
    match peel(ty) {
        Type::Reference(reference) => {
            Kind::of_context(&reference.elem).map(|kind| ContextParam { kind, by_ref: true })
        }
        other => Kind::of_context(other).map(|kind| ContextParam {
            kind,
            by_ref: false,
        }),
    }
}

/// Looks through invisible groups and parentheses around a type.
pub(crate) fn peel(mut ty: &Type) -> &Type {
    loop {
        match ty {
            Type::Group(group) => ty = &group.elem,
            Type::Paren(paren) => ty = &paren.elem,
            _ => return ty,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{ContextParam, Function, Kind};
    use syn::parse_quote;

    #[test]
    fn classifies_contexts_by_last_segment() {
        let item: syn::ItemFn = parse_quote! {
            async fn f(a: durable::ActivityContext, b: &OrchestrationContext, c: String) -> R {}
        };
        let func = Function::from_syn(Kind::Activity, &item);
        let contexts: Vec<_> = func.params.iter().map(|p| p.context).collect();
        assert_eq!(
            contexts,
            [
                Some(ContextParam {
                    kind: Kind::Activity,
                    by_ref: false
                }),
                Some(ContextParam {
                    kind: Kind::Orchestrator,
                    by_ref: true
                }),
                None,
            ]
        );
        assert!(func.output.is_some());
        assert!(func.receiver.is_none());
    }
}
