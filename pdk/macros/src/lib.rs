//! Attribute macros behind `packhost-pdk`: `#[action]`, `#[pre]` and `#[post]`, and
//! `#[host_functions]`.
//!
//! Each action attribute turns a typed Rust function into an Extism export that decodes its
//! input, runs the function, encodes its output and reports an `Err` as the pack's own
//! error. Beside the export it emits a hidden describer (a braced struct with the
//! function's name, which lives in the type namespace and so never clashes with the
//! function) that the `pack!` macro calls to build the manifest, JSON Schemas included.
//! `#[host_functions]` does the reverse for imports: a typed safe wrapper over each
//! `extism:host/user` import, with a describer of its own.

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{format_ident, quote};
use syn::{
    parse::Parser, parse_macro_input, punctuated::Punctuated, spanned::Spanned, Attribute, Expr,
    ExprLit, FnArg, ForeignItem, GenericArgument, ItemFn, ItemForeignMod, Lit, Meta, PathArguments,
    ReturnType, Token, Type,
};

/// Marks a function as a pack action. The export is named after the function unless
/// `#[action(name = "other-name")]` says otherwise.
#[proc_macro_attribute]
pub fn action(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand(attr, item, None)
}

/// Marks a function as the pack's `pre` hook (run over an outgoing request).
#[proc_macro_attribute]
pub fn pre(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand(attr, item, Some("pre"))
}

/// Marks a function as the pack's `post` hook (run over a response).
#[proc_macro_attribute]
pub fn post(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand(attr, item, Some("post"))
}

fn expand(attr: TokenStream, item: TokenStream, fixed_name: Option<&str>) -> TokenStream {
    let function = parse_macro_input!(item as ItemFn);
    match expand_action(attr.into(), function, fixed_name) {
        Ok(tokens) => tokens.into(),
        Err(err) => err.to_compile_error().into(),
    }
}

/// How a payload type travels: decided from its spelling, since macros see no types.
enum Codec {
    None,
    Text,
    Bytes,
    Json(Box<Type>),
}

impl Codec {
    fn of(ty: &Type) -> Codec {
        match ty {
            Type::Tuple(tuple) if tuple.elems.is_empty() => Codec::None,
            Type::Path(path) => {
                let last = path.path.segments.last().map(|s| s.ident.to_string());
                match last.as_deref() {
                    Some("String") => Codec::Text,
                    Some("Vec") if is_vec_of_u8(ty) => Codec::Bytes,
                    _ => Codec::Json(Box::new(ty.clone())),
                }
            }
            _ => Codec::Json(Box::new(ty.clone())),
        }
    }

    fn spec(&self) -> TokenStream2 {
        match self {
            Codec::None => quote!(::packhost_pdk::__private::PayloadSpec::none()),
            Codec::Text => quote!(::packhost_pdk::__private::PayloadSpec::text()),
            Codec::Bytes => quote!(::packhost_pdk::__private::PayloadSpec::bytes()),
            Codec::Json(ty) => quote!(::packhost_pdk::__private::PayloadSpec::json::<#ty>()),
        }
    }
}

fn is_vec_of_u8(ty: &Type) -> bool {
    let Type::Path(path) = ty else { return false };
    let Some(last) = path.path.segments.last() else {
        return false;
    };
    let PathArguments::AngleBracketed(args) = &last.arguments else {
        return false;
    };
    matches!(args.args.first(), Some(GenericArgument::Type(Type::Path(inner)))
        if inner.path.is_ident("u8"))
}

/// The `T` of `Result<T, E>`, or `None` when the return type is not spelled `Result`.
fn ok_type_of_result(ty: &Type) -> Option<Type> {
    let Type::Path(path) = ty else { return None };
    let last = path.path.segments.last()?;
    if last.ident != "Result" {
        return None;
    }
    let PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    match args.args.first()? {
        GenericArgument::Type(ok) => Some(ok.clone()),
        _ => None,
    }
}

fn expand_action(
    attr: TokenStream2,
    function: ItemFn,
    fixed_name: Option<&str>,
) -> syn::Result<TokenStream2> {
    let rust_name = function.sig.ident.clone();
    let mut export_name = fixed_name.map_or_else(|| rust_name.to_string(), str::to_string);
    let args = Punctuated::<Meta, Token![,]>::parse_terminated.parse2(attr)?;
    for arg in args {
        match arg {
            Meta::NameValue(nv) if nv.path.is_ident("name") && fixed_name.is_none() => {
                let Expr::Lit(ExprLit {
                    lit: Lit::Str(name),
                    ..
                }) = nv.value
                else {
                    return Err(syn::Error::new(nv.value.span(), "name must be a string"));
                };
                export_name = name.value();
            }
            other => {
                return Err(syn::Error::new(other.span(), "unexpected argument"));
            }
        }
    }

    if function.sig.inputs.len() > 1 {
        return Err(syn::Error::new(
            function.sig.inputs.span(),
            "a pack action takes at most one argument: its decoded input",
        ));
    }
    let input_codec = match function.sig.inputs.first() {
        None => Codec::None,
        Some(FnArg::Typed(arg)) => Codec::of(&arg.ty),
        Some(FnArg::Receiver(recv)) => {
            return Err(syn::Error::new(
                recv.span(),
                "a pack action cannot take self",
            ))
        }
    };
    let (output_ty, fallible) = match &function.sig.output {
        ReturnType::Default => (syn::parse_quote!(()), false),
        ReturnType::Type(_, ty) => match ok_type_of_result(ty) {
            Some(ok) => (ok, true),
            None => ((**ty).clone(), false),
        },
    };
    let output_codec = Codec::of(&output_ty);

    let decode = match &input_codec {
        // The input is read (the ABI wants it consumed) and ignored.
        Codec::None => quote!(),
        Codec::Text => quote!(::packhost_pdk::__private::decode_text(input)?),
        Codec::Bytes => quote!(input),
        Codec::Json(ty) => quote!(::packhost_pdk::__private::decode_json::<#ty>(&input)?),
    };
    let encode = match &output_codec {
        Codec::None => quote!(::std::vec::Vec::new()),
        Codec::Text => quote!(::std::string::String::into_bytes(output)),
        Codec::Bytes => quote!(output),
        Codec::Json(_) => quote!(::packhost_pdk::__private::encode_json(&output)?),
    };
    let call = if fallible {
        quote!(#rust_name(#decode).map_err(::packhost_pdk::__private::into_error)?)
    } else {
        quote!(#rust_name(#decode))
    };
    let input_spec = input_codec.spec();
    let output_spec = output_codec.spec();
    let description = doc_comment(&function);
    let export_fn = format_ident!("__packhost_export_{}", rust_name);
    let describer = rust_name.clone();
    let describe = Span::call_site();
    let describe_fn = syn::Ident::new("__packhost_describe", describe);

    Ok(quote! {
        #function

        #[doc(hidden)]
        #[export_name = #export_name]
        pub extern "C" fn #export_fn() -> i32 {
            ::packhost_pdk::__private::run(|input: ::std::vec::Vec<u8>| {
                let _ = &input;
                let output = #call;
                ::core::result::Result::Ok(#encode)
            })
        }

        #[doc(hidden)]
        #[allow(non_camel_case_types)]
        pub struct #describer {}

        impl #describer {
            #[doc(hidden)]
            pub fn #describe_fn() -> ::packhost_pdk::__private::ActionSpec {
                ::packhost_pdk::__private::ActionSpec {
                    name: #export_name,
                    description: #description,
                    input: #input_spec,
                    output: #output_spec,
                }
            }
        }
    })
}

/// Declares functions the pack imports from its host, with typed input and output:
///
/// ```ignore
/// #[host_functions]
/// extern "ExtismHost" {
///     /// Looks a customer up in the host's directory.
///     fn lookup_customer(query: Query) -> Customer;
/// }
/// ```
///
/// Each becomes `fn lookup_customer(query: Query) -> Result<Customer, Error>`, calling the
/// import `lookup_customer` of `extism:host/user` (one kernel block in, one out, as every
/// Extism PDK passes them; types travel as actions' do: `String` as text, `Vec<u8>` as
/// bytes, `()` as nothing, anything else as JSON). Name them in `pack!`'s `host_functions`
/// so the manifest lists them. `#[host_functions("other:module")]` imports from another
/// module.
#[proc_macro_attribute]
pub fn host_functions(attr: TokenStream, item: TokenStream) -> TokenStream {
    let block = parse_macro_input!(item as ItemForeignMod);
    let namespace = if attr.is_empty() {
        "extism:host/user".to_string()
    } else {
        parse_macro_input!(attr as syn::LitStr).value()
    };
    match expand_host_functions(&namespace, block) {
        Ok(tokens) => tokens.into(),
        Err(err) => err.to_compile_error().into(),
    }
}

fn expand_host_functions(namespace: &str, block: ItemForeignMod) -> syn::Result<TokenStream2> {
    let mut expanded = TokenStream2::new();
    for item in block.items {
        let ForeignItem::Fn(function) = item else {
            return Err(syn::Error::new(
                item.span(),
                "only functions can be imported from the host",
            ));
        };
        let signature = &function.sig;
        let rust_name = &signature.ident;
        let import_name = rust_name.to_string();
        let vis = &function.vis;
        let (argument, input_ty) = match signature.inputs.first() {
            None => (None, syn::parse_quote!(())),
            Some(FnArg::Typed(arg)) if signature.inputs.len() == 1 => {
                (Some(arg.pat.clone()), (*arg.ty).clone())
            }
            _ => {
                return Err(syn::Error::new(
                    signature.inputs.span(),
                    "a host function takes at most one argument, its input",
                ))
            }
        };
        let output_ty: Type = match &signature.output {
            ReturnType::Default => syn::parse_quote!(()),
            ReturnType::Type(_, ty) => (**ty).clone(),
        };
        let (input_codec, output_codec) = (Codec::of(&input_ty), Codec::of(&output_ty));
        let encode = match &input_codec {
            Codec::None => quote!(::std::vec::Vec::new()),
            Codec::Text => quote!(::std::string::String::into_bytes(#argument)),
            Codec::Bytes => quote!(#argument),
            Codec::Json(_) => quote!(::packhost_pdk::__private::encode_json(&#argument)?),
        };
        let decode = match &output_codec {
            Codec::None => quote!(()),
            Codec::Text => quote!(::packhost_pdk::__private::decode_text(output)?),
            Codec::Bytes => quote!(output),
            Codec::Json(ty) => quote!(::packhost_pdk::__private::decode_json::<#ty>(&output)?),
        };
        let parameter = argument.as_ref().map(|pat| quote!(#pat: #input_ty));
        let import = format_ident!("__packhost_import_{}", rust_name);
        let (input_spec, output_spec) = (input_codec.spec(), output_codec.spec());
        let description = doc_text(&function.attrs);
        let docs = function
            .attrs
            .iter()
            .filter(|attr| attr.path().is_ident("doc"));
        let describe_fn = format_ident!("__packhost_describe_host_function");
        expanded.extend(quote! {
            #[link(wasm_import_module = #namespace)]
            extern "C" {
                #[link_name = #import_name]
                fn #import(input: u64) -> u64;
            }

            #(#docs)*
            // A `()` input is declared for symmetry and never read.
            #[allow(unused_variables)]
            #vis fn #rust_name(#parameter) -> ::core::result::Result<#output_ty, ::packhost_pdk::Error> {
                let input: ::std::vec::Vec<u8> = #encode;
                // SAFETY: the import takes a kernel block this call allocated and returns
                // one the host allocated, as the Extism ABI defines host functions.
                let output = ::packhost_pdk::__private::call_host(|block| unsafe { #import(block) }, &input)?;
                let _ = &output;
                ::core::result::Result::Ok(#decode)
            }

            #[doc(hidden)]
            #[allow(non_camel_case_types)]
            #vis struct #rust_name {}

            impl #rust_name {
                #[doc(hidden)]
                pub fn #describe_fn() -> ::packhost_pdk::__private::HostFunctionSpec {
                    ::packhost_pdk::__private::HostFunctionSpec {
                        name: #import_name,
                        namespace: #namespace,
                        description: #description,
                        input: #input_spec,
                        output: #output_spec,
                    }
                }
            }
        });
    }
    Ok(expanded)
}

/// The function's `///` lines joined into one paragraph, for the manifest.
fn doc_comment(function: &ItemFn) -> String {
    doc_text(&function.attrs)
}

/// `///` lines among `attrs`, joined into one paragraph.
fn doc_text(attrs: &[Attribute]) -> String {
    let lines: Vec<String> = attrs
        .iter()
        .filter(|attr| attr.path().is_ident("doc"))
        .filter_map(|attr| match &attr.meta {
            Meta::NameValue(nv) => match &nv.value {
                Expr::Lit(ExprLit {
                    lit: Lit::Str(text),
                    ..
                }) => Some(text.value().trim().to_string()),
                _ => None,
            },
            _ => None,
        })
        .collect();
    lines.join(" ").trim().to_string()
}
