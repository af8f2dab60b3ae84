//! Flags what in an orchestrator's body would make replay diverge: clocks, sleeps, spawned
//! tasks, randomness, fresh ids, the environment, files, the network, other processes, standard
//! input, and hash maps and sets (whose iteration order is random).
//!
//! An orchestrator is re-run from its history after every event, so each of these would
//! return something different on replay than it did the first time. Paths are matched by
//! their trailing segments (`SystemTime::now` also matches `std::time::SystemTime::now`), in
//! expressions and macro paths, and inside macro arguments by scanning their tokens.
//!
//! The check sees tokens, not types or name resolution, so it follows what the body itself
//! shows: `use` items written in the body (aliases, groups and globs) resolve the paths in
//! their block, names of items the body defines are the user's own, and a few distinctive
//! names that are usually imported at module level (`random()`, `var("X")`, ..., listed in
//! [`rules::BARE`]) are flagged when called bare. What it cannot see (helper functions, module-level aliases, types that
//! wrap a `HashMap`, trait methods) is left to the runtime's replay check.

use proc_macro2::{Delimiter, Ident, Spacing, TokenStream, TokenTree};
use quote::ToTokens;
use syn::visit::{self, Visit};
use syn::{Block, Expr, ExprCall, ExprPath, Item, Macro, Stmt, UseTree};

use crate::ctxt::Ctxt;

mod rules;

pub(crate) use rules::{Hazard, classify};
use rules::{bare, collection, through_glob};

/// Checks an orchestrator's body, recording one error per forbidden path.
pub(crate) fn check(cx: &Ctxt, body: &Block) {
    Visitor {
        cx,
        scopes: Vec::new(),
    }
    .visit_block(body);
}

/// What a name declared in a block stands for.
enum Binding {
    /// A `use` item: the path it imports.
    Use(Vec<String>),
    /// An item the body defines (`fn`, `struct`, ...): the user's own.
    Local,
}

/// The names a block declares: they are in scope in the whole block, as in Rust.
#[derive(Default)]
struct Scope {
    names: Vec<(String, Binding)>,
    /// The modules of glob imports (`use std::env::*;` gives `std::env`).
    globs: Vec<Vec<String>>,
}

impl Scope {
    fn of(block: &Block) -> Self {
        let mut scope = Scope::default();
        for stmt in &block.stmts {
            let Stmt::Item(item) = stmt else { continue };
            let local = match item {
                Item::Use(item) => {
                    scope.add_use(&item.tree, Vec::new());
                    continue;
                }
                Item::Fn(item) => &item.sig.ident,
                Item::Struct(item) => &item.ident,
                Item::Enum(item) => &item.ident,
                Item::Union(item) => &item.ident,
                Item::Type(item) => &item.ident,
                Item::Const(item) => &item.ident,
                Item::Static(item) => &item.ident,
                Item::Mod(item) => &item.ident,
                Item::Trait(item) => &item.ident,
                _ => continue,
            };
            scope.names.push((ident_text(local), Binding::Local));
        }
        scope
    }

    fn add_use(&mut self, tree: &UseTree, mut prefix: Vec<String>) {
        match tree {
            UseTree::Path(path) => {
                prefix.push(ident_text(&path.ident));
                self.add_use(&path.tree, prefix);
            }
            UseTree::Name(name) => self.bind(&name.ident, &name.ident, prefix),
            UseTree::Rename(rename) if rename.rename != "_" => {
                self.bind(&rename.rename, &rename.ident, prefix);
            }
            UseTree::Rename(_) => {}
            UseTree::Glob(_) => self.globs.push(prefix),
            UseTree::Group(group) => {
                for tree in &group.items {
                    self.add_use(tree, prefix.clone());
                }
            }
        }
    }

    /// Binds `name` to `prefix::ident` (to `prefix` itself for `self`).
    fn bind(&mut self, name: &Ident, ident: &Ident, mut prefix: Vec<String>) {
        let name = match (ident == "self", name == "self") {
            (true, true) => match prefix.last() {
                Some(last) => last.clone(),
                None => return,
            },
            (true, false) => ident_text(name),
            (false, _) => {
                prefix.push(ident_text(ident));
                ident_text(name)
            }
        };
        if !prefix.is_empty() {
            self.names.push((name, Binding::Use(prefix)));
        }
    }
}

/// A path as the body's own `use` items and items resolve it.
enum Resolved {
    /// Its first segment is an item the body defines: the user's own.
    Local,
    /// Its first segment is imported by a `use` in the body: the full path, and how many of
    /// its segments the first written segment stands for.
    Imported(Vec<String>, usize),
    /// Nothing in the body declares its first segment.
    Free,
}

struct Visitor<'c> {
    cx: &'c Ctxt,
    scopes: Vec<Scope>,
}

impl Visitor<'_> {
    fn lookup(&self, name: &str) -> Option<&Binding> {
        self.scopes.iter().rev().find_map(|scope| {
            scope
                .names
                .iter()
                .rev()
                .find(|(n, _)| n == name)
                .map(|(_, b)| b)
        })
    }

    /// Resolves a path's first segment through the body's `use` items, which may name each
    /// other (`use std::time; use time::Instant as Clock;`).
    fn resolve(&self, segments: &[String]) -> Resolved {
        let mut path = segments.to_vec();
        let mut first = 1;
        let mut imported = false;
        for _ in 0..8 {
            match self.lookup(&path[0]) {
                Some(Binding::Use(target)) => {
                    first = first - 1 + target.len();
                    path.splice(0..1, target.iter().cloned());
                    imported = true;
                }
                Some(Binding::Local) if !imported => return Resolved::Local,
                _ => break,
            }
        }
        if imported {
            Resolved::Imported(path, first)
        } else {
            Resolved::Free
        }
    }

    /// The hazard a path names and, when the written path does not say so itself, the path
    /// it was taken to be (`(that is, ...)`, or a bare name's meaning).
    fn hazard(&self, segments: &[String], call: bool) -> Option<(Hazard, Note)> {
        match self.resolve(segments) {
            Resolved::Local => None,
            Resolved::Imported(full, _) => {
                let hazard = classify(&full, call)?;
                let note = if classify(segments, call) == Some(hazard) {
                    Note::None
                } else {
                    Note::ThatIs(full)
                };
                Some((hazard, note))
            }
            Resolved::Free => {
                if let Some(hazard) = classify(segments, call) {
                    return Some((hazard, Note::None));
                }
                let globs = self.scopes.iter().rev().flat_map(|s| s.globs.iter().rev());
                for glob in globs {
                    let module = match self.resolve(glob) {
                        Resolved::Imported(full, _) => full,
                        _ => glob.clone(),
                    };
                    let full: Vec<String> = module.iter().chain(segments).cloned().collect();
                    if let Some(hazard) = through_glob(&full, &segments[0], call) {
                        return Some((hazard, Note::ThatIs(full)));
                    }
                }
                let (means, hazard) = bare(segments, call)?;
                Some((hazard, Note::Bare(means)))
            }
        }
    }

    fn report(&self, tokens: impl ToTokens, segments: &[String], hazard: Hazard, note: Note) {
        let written = segments.join("::");
        let advice = hazard.advice();
        let message = match note {
            Note::None => {
                format!("`{written}` is not replay-safe in an orchestrator: {advice}")
            }
            Note::ThatIs(full) => format!(
                "`{written}` (that is, `{}`) is not replay-safe in an orchestrator: {advice}",
                full.join("::"),
            ),
            Note::Bare(means) => format!(
                "`{written}` is taken to be `{means}`, which is not replay-safe in an orchestrator: {advice} (if `{written}` is a function of yours, call it as `self::{written}`)"
            ),
        };
        self.cx.error_spanned_by(tokens, message);
    }

    fn check_path(&self, path: &syn::Path, call: bool) {
        let segments = segments_of(path);
        if let Some((hazard, note)) = self.hazard(&segments, call) {
            self.report(path, &segments, hazard, note);
        }
    }

    /// A `HashMap` or `HashSet` named by the path: the index of the written segment to
    /// point at, and the error.
    fn collection(&self, segments: &[String]) -> Option<(usize, Hazard, Note)> {
        match self.resolve(segments) {
            Resolved::Local => None,
            Resolved::Imported(full, first) => {
                let (i, hazard) = collection(&full)?;
                let at = (i + 1).saturating_sub(first);
                let note = if segments[at] == full[i] {
                    Note::None
                } else {
                    Note::ThatIs(full[..=i].to_vec())
                };
                Some((at, hazard, note))
            }
            Resolved::Free => {
                let (i, hazard) = collection(segments)?;
                Some((i, hazard, Note::None))
            }
        }
    }

    fn check_collection(&self, path: &syn::Path) {
        let segments = segments_of(path);
        if let Some((at, hazard, note)) = self.collection(&segments) {
            let ident = &path.segments[at].ident;
            self.report(ident, &segments[at..=at], hazard, note);
        }
    }

    /// Macro arguments are not parsed by `syn`, so their tokens are scanned for paths.
    fn scan(&self, tokens: TokenStream) {
        let tokens: Vec<TokenTree> = tokens.into_iter().collect();
        let mut i = 0;
        while i < tokens.len() {
            match &tokens[i] {
                TokenTree::Group(group) => {
                    self.scan(group.stream());
                    i += 1;
                }
                TokenTree::Ident(_) if !after_dot(&tokens, i) => {
                    let (end, segments) = path_at(&tokens, i);
                    let call = matches!(
                        tokens.get(end),
                        Some(TokenTree::Group(g)) if g.delimiter() == Delimiter::Parenthesis
                    );
                    if let Some((hazard, note)) = self.hazard(&segments, call) {
                        let span: TokenStream = tokens[i..end].iter().cloned().collect();
                        self.report(span, &segments, hazard, note);
                    } else if let Some((at, hazard, note)) = self.collection(&segments) {
                        // Segments are an identifier and a `::` (two tokens) apart.
                        let ident = &tokens[i + 3 * at];
                        self.report(ident, &segments[at..=at], hazard, note);
                    }
                    i = end;
                }
                _ => i += 1,
            }
        }
    }
}

/// What an error adds about the path it names.
enum Note {
    /// Nothing: the written path says it all.
    None,
    /// The full path a `use` in the body makes of it.
    ThatIs(Vec<String>),
    /// A bare name from [`rules::BARE`], and what it is taken to be.
    Bare(&'static str),
}

fn segments_of(path: &syn::Path) -> Vec<String> {
    path.segments.iter().map(|s| ident_text(&s.ident)).collect()
}

impl<'ast> Visit<'ast> for Visitor<'_> {
    fn visit_block(&mut self, node: &'ast Block) {
        self.scopes.push(Scope::of(node));
        visit::visit_block(self, node);
        self.scopes.pop();
    }

    fn visit_expr_call(&mut self, node: &'ast ExprCall) {
        if let Expr::Path(func) = &*node.func {
            self.check_path(&func.path, true);
            // The default walk, so the path is not checked again as a value.
            visit::visit_expr_path(self, func);
            for attr in &node.attrs {
                self.visit_attribute(attr);
            }
            for arg in &node.args {
                self.visit_expr(arg);
            }
        } else {
            visit::visit_expr_call(self, node);
        }
    }

    fn visit_expr_path(&mut self, node: &'ast ExprPath) {
        self.check_path(&node.path, false);
        visit::visit_expr_path(self, node);
    }

    /// Every path, in expressions, types, patterns and turbofishes, for `HashMap` and
    /// `HashSet`.
    fn visit_path(&mut self, node: &'ast syn::Path) {
        self.check_collection(node);
        visit::visit_path(self, node);
    }

    fn visit_macro(&mut self, node: &'ast Macro) {
        self.check_path(&node.path, true);
        self.scan(node.tokens.clone());
    }
}

/// An identifier's text without a raw `r#` prefix.
fn ident_text(ident: &proc_macro2::Ident) -> String {
    let text = ident.to_string();
    match text.strip_prefix("r#") {
        Some(raw) => raw.to_owned(),
        None => text,
    }
}

/// Whether the token at `i` follows a `.`, as a method name or field does.
fn after_dot(tokens: &[TokenTree], i: usize) -> bool {
    i > 0 && matches!(&tokens[i - 1], TokenTree::Punct(p) if p.as_char() == '.')
}

/// The path that starts at `tokens[start]` (an identifier): its end and its segments.
fn path_at(tokens: &[TokenTree], start: usize) -> (usize, Vec<String>) {
    let mut segments = Vec::new();
    let mut i = start;
    while let Some(TokenTree::Ident(ident)) = tokens.get(i) {
        segments.push(ident_text(ident));
        i += 1;
        let colons = matches!(
            (tokens.get(i), tokens.get(i + 1), tokens.get(i + 2)),
            (Some(TokenTree::Punct(a)), Some(TokenTree::Punct(b)), Some(TokenTree::Ident(_)))
                if a.as_char() == ':' && a.spacing() == Spacing::Joint && b.as_char() == ':'
        );
        if !colons {
            break;
        }
        i += 2;
    }
    (i, segments)
}

#[cfg(test)]
mod tests;
