//! `#[derive(ConfigSchema)]` for stagecraft-sdk: describes a rule's config type as a
//! compile-time JSON Schema tree (`stagecraft_sdk::config_schema::Schema`), reading serde's
//! attributes so the schema accepts what the type deserializes. Re-exported by the SDK; see
//! `stagecraft_sdk::config_schema` for what it supports.

use proc_macro::TokenStream;
use proc_macro2::TokenStream as Tokens;
use quote::quote;
use syn::meta::ParseNestedMeta;
use syn::{Attribute, Data, DeriveInput, Expr, ExprLit, ExprUnary, Fields, Lit, LitStr, UnOp};

/// Derives `stagecraft_sdk::ConfigSchema` for a struct with named fields or an enum of unit
/// variants.
#[proc_macro_derive(ConfigSchema, attributes(config, serde))]
pub fn derive_config_schema(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as DeriveInput);
    match expand(&input) {
        Ok(t) => t.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

/// serde's `rename_all` rules.
#[derive(Clone, Copy, PartialEq)]
enum Rule {
    None,
    Lower,
    Upper,
    Pascal,
    Camel,
    Snake,
    ScreamingSnake,
    Kebab,
    ScreamingKebab,
}

impl Rule {
    fn parse(s: &LitStr) -> syn::Result<Rule> {
        Ok(match s.value().as_str() {
            "lowercase" => Rule::Lower,
            "UPPERCASE" => Rule::Upper,
            "PascalCase" => Rule::Pascal,
            "camelCase" => Rule::Camel,
            "snake_case" => Rule::Snake,
            "SCREAMING_SNAKE_CASE" => Rule::ScreamingSnake,
            "kebab-case" => Rule::Kebab,
            "SCREAMING-KEBAB-CASE" => Rule::ScreamingKebab,
            other => {
                return Err(syn::Error::new(
                    s.span(),
                    format!("unknown rename_all rule {other:?}"),
                ))
            }
        })
    }

    /// A variant name (PascalCase in Rust) as serde renames it.
    fn variant(self, v: &str) -> String {
        let snake = || {
            let mut out = String::new();
            for (i, c) in v.char_indices() {
                if c.is_uppercase() && i > 0 {
                    out.push('_');
                }
                out.extend(c.to_lowercase());
            }
            out
        };
        match self {
            Rule::None | Rule::Pascal => v.to_string(),
            Rule::Lower => v.to_ascii_lowercase(),
            Rule::Upper => v.to_ascii_uppercase(),
            Rule::Camel => {
                let mut c = v.chars();
                match c.next() {
                    Some(f) => f.to_lowercase().chain(c).collect(),
                    None => String::new(),
                }
            }
            Rule::Snake => snake(),
            Rule::ScreamingSnake => snake().to_ascii_uppercase(),
            Rule::Kebab => snake().replace('_', "-"),
            Rule::ScreamingKebab => snake().to_ascii_uppercase().replace('_', "-"),
        }
    }

    /// A field name (snake_case in Rust) as serde renames it.
    fn field(self, f: &str) -> String {
        let pascal = || {
            let mut out = String::new();
            let mut up = true;
            for c in f.chars() {
                if c == '_' {
                    up = true;
                } else if up {
                    out.extend(c.to_uppercase());
                    up = false;
                } else {
                    out.push(c);
                }
            }
            out
        };
        match self {
            Rule::None | Rule::Lower | Rule::Snake => f.to_string(),
            Rule::Upper | Rule::ScreamingSnake => f.to_ascii_uppercase(),
            Rule::Pascal => pascal(),
            Rule::Camel => {
                let p = pascal();
                let mut c = p.chars();
                match c.next() {
                    Some(first) => first.to_lowercase().chain(c).collect(),
                    None => String::new(),
                }
            }
            Rule::Kebab => f.replace('_', "-"),
            Rule::ScreamingKebab => f.to_ascii_uppercase().replace('_', "-"),
        }
    }
}

/// What serde's and our attributes say about a container, field or variant.
#[derive(Default)]
struct Attrs {
    default: bool,
    deny_unknown_fields: bool,
    rename: Option<String>,
    rename_all: Option<Rule>,
    skip: bool,
    flatten: bool,
    minimum: Option<i64>,
    maximum: Option<i64>,
}

/// Consumes an attribute item we do not care about (`key`, `key = value`, `key(...)`).
fn skip_item(meta: &ParseNestedMeta) -> syn::Result<()> {
    if meta.input.peek(syn::Token![=]) {
        let _: Expr = meta.value()?.parse()?;
    } else if meta.input.peek(syn::token::Paren) {
        meta.parse_nested_meta(|inner| skip_item(&inner))?;
    }
    Ok(())
}

/// `key = "x"` or `key(deserialize = "x", …)`: the name deserialization uses.
fn deserialize_name(meta: &ParseNestedMeta) -> syn::Result<Option<LitStr>> {
    if meta.input.peek(syn::Token![=]) {
        return Ok(Some(meta.value()?.parse()?));
    }
    let mut found = None;
    meta.parse_nested_meta(|inner| {
        if inner.path.is_ident("deserialize") {
            found = Some(inner.value()?.parse()?);
            Ok(())
        } else {
            skip_item(&inner)
        }
    })?;
    Ok(found)
}

fn int(expr: &Expr) -> syn::Result<i64> {
    match expr {
        Expr::Lit(ExprLit {
            lit: Lit::Int(i), ..
        }) => i.base10_parse(),
        Expr::Unary(ExprUnary {
            op: UnOp::Neg(_),
            expr,
            ..
        }) => int(expr).map(|v| -v),
        other => Err(syn::Error::new_spanned(other, "expected an integer")),
    }
}

fn attrs(list: &[Attribute]) -> syn::Result<Attrs> {
    let mut a = Attrs::default();
    for attr in list {
        if attr.path().is_ident("serde") {
            attr.parse_nested_meta(|meta| {
                let p = &meta.path;
                if p.is_ident("default") {
                    a.default = true;
                    skip_item(&meta)
                } else if p.is_ident("deny_unknown_fields") {
                    a.deny_unknown_fields = true;
                    Ok(())
                } else if p.is_ident("rename") {
                    a.rename = deserialize_name(&meta)?.map(|s| s.value());
                    Ok(())
                } else if p.is_ident("rename_all") {
                    if let Some(s) = deserialize_name(&meta)? {
                        a.rename_all = Some(Rule::parse(&s)?);
                    }
                    Ok(())
                } else if p.is_ident("skip") || p.is_ident("skip_deserializing") {
                    a.skip = true;
                    Ok(())
                } else if p.is_ident("flatten") {
                    a.flatten = true;
                    Ok(())
                } else {
                    skip_item(&meta)
                }
            })?;
        } else if attr.path().is_ident("config") {
            attr.parse_nested_meta(|meta| {
                if meta.path.is_ident("minimum") {
                    a.minimum = Some(int(&meta.value()?.parse()?)?);
                    Ok(())
                } else if meta.path.is_ident("maximum") {
                    a.maximum = Some(int(&meta.value()?.parse()?)?);
                    Ok(())
                } else {
                    Err(meta.error("expected `minimum = N` or `maximum = N`"))
                }
            })?;
        }
    }
    Ok(a)
}

/// The doc comment as one paragraph per blank-line-separated block.
fn doc(list: &[Attribute]) -> String {
    let mut lines = Vec::new();
    for attr in list {
        if !attr.path().is_ident("doc") {
            continue;
        }
        if let syn::Meta::NameValue(nv) = &attr.meta {
            if let Expr::Lit(ExprLit {
                lit: Lit::Str(s), ..
            }) = &nv.value
            {
                lines.push(s.value().trim().to_string());
            }
        }
    }
    let mut out = String::new();
    for line in lines {
        if line.is_empty() {
            if !out.is_empty() && !out.ends_with("\n\n") {
                out.push_str("\n\n");
            }
        } else {
            if !out.is_empty() && !out.ends_with('\n') {
                out.push(' ');
            }
            out.push_str(&line);
        }
    }
    out.trim().to_string()
}

fn is_option(ty: &syn::Type) -> bool {
    match ty {
        syn::Type::Path(p) => p.path.segments.last().is_some_and(|s| s.ident == "Option"),
        _ => false,
    }
}

fn opt(v: Option<i64>) -> Tokens {
    match v {
        Some(n) => quote!(::core::option::Option::Some(#n)),
        None => quote!(::core::option::Option::None),
    }
}

fn expand(input: &DeriveInput) -> syn::Result<Tokens> {
    if !input.generics.params.is_empty() {
        return Err(syn::Error::new_spanned(
            &input.generics,
            "ConfigSchema cannot be derived for generic types",
        ));
    }
    let name = &input.ident;
    let container = attrs(&input.attrs)?;
    let description = doc(&input.attrs);
    let sdk = quote!(::stagecraft_sdk::config_schema);
    let schema = match &input.data {
        Data::Struct(s) => {
            let Fields::Named(named) = &s.fields else {
                return Err(syn::Error::new_spanned(
                    name,
                    "ConfigSchema needs a struct with named fields (a JSON object)",
                ));
            };
            let rule = container.rename_all.unwrap_or(Rule::None);
            let mut fields = Vec::new();
            for f in &named.named {
                let a = attrs(&f.attrs)?;
                if a.skip {
                    continue;
                }
                if a.flatten {
                    return Err(syn::Error::new_spanned(
                        f,
                        "ConfigSchema does not support #[serde(flatten)]",
                    ));
                }
                let ident = f
                    .ident
                    .as_ref()
                    .map(|i| i.to_string().trim_start_matches("r#").to_string())
                    .unwrap_or_default();
                let key = a.rename.clone().unwrap_or_else(|| rule.field(&ident));
                let required = !(container.default || a.default || is_option(&f.ty));
                let ty = &f.ty;
                let text = doc(&f.attrs);
                let (min, max) = (opt(a.minimum), opt(a.maximum));
                fields.push(quote! {
                    #sdk::Field {
                        name: #key,
                        schema: <#ty as #sdk::ConfigSchema>::SCHEMA,
                        required: #required,
                        description: #text,
                        minimum: #min,
                        maximum: #max,
                    }
                });
            }
            let closed = container.deny_unknown_fields;
            quote! {
                &#sdk::Schema::Object {
                    description: #description,
                    fields: &[#(#fields),*],
                    closed: #closed,
                }
            }
        }
        Data::Enum(e) => {
            let rule = container.rename_all.unwrap_or(Rule::None);
            let mut values = Vec::new();
            for v in &e.variants {
                if !matches!(v.fields, Fields::Unit) {
                    return Err(syn::Error::new_spanned(
                        v,
                        "ConfigSchema supports enums of unit variants only (JSON strings)",
                    ));
                }
                let a = attrs(&v.attrs)?;
                if a.skip {
                    continue;
                }
                values.push(
                    a.rename
                        .unwrap_or_else(|| rule.variant(&v.ident.to_string())),
                );
            }
            quote! {
                &#sdk::Schema::Enum {
                    description: #description,
                    values: &[#(#values),*],
                }
            }
        }
        Data::Union(_) => {
            return Err(syn::Error::new_spanned(
                name,
                "ConfigSchema cannot be derived for unions",
            ))
        }
    };
    Ok(quote! {
        impl #sdk::ConfigSchema for #name {
            const SCHEMA: &'static #sdk::Schema = #schema;
        }
    })
}
