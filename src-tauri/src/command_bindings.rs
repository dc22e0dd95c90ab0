//! The window's side of the commands, made from Rust: `ui/src/lib/bindings/commands.ts`
//! (one typed function per command of `command_list.rs`, its parameters, result and doc
//! comment read from the command's own signature with `syn`) and
//! `capabilities/main.json` (the main window may call exactly these commands). The test
//! fails when either committed file differs from a fresh one; `UPDATE_BINDINGS=1` rewrites
//! them. Types are named as `dto::bindings` exports them (ts-rs), which the test checks.
//!
//! Why not tauri-specta: see ARCHITECTURE.md (Decisions).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// `(module, function)` of every command, in the list's order.
macro_rules! command_paths {
    ($($module:ident :: $function:ident),* $(,)?) => {
        &[$((stringify!($module), stringify!($function))),*]
    };
}

const COMMANDS: &[(&str, &str)] = with_app_commands!(command_paths);

/// Parameters Tauri fills in itself (never sent by the window).
const INJECTED: &[&str] = &["State", "AppHandle", "Window", "WebviewWindow", "Webview"];

/// What the capability says about itself.
const CAPABILITY_DESCRIPTION: &str = "The main window: the app's own commands and listening to its events, nothing else (no plugin's commands: no file system, shell, HTTP, opener or deep-link API; web links go through the app's own open_link, which accepts http(s) only, and invite links opened from outside through take_opened_link). Generated from src-tauri/src/command_list.rs.";

/// One command, as the window sees it.
struct Command {
    name: String,
    docs: Vec<String>,
    /// `(Rust name, TypeScript type)` of each parameter the window sends.
    params: Vec<(String, String)>,
    /// The TypeScript type of what it resolves to.
    result: String,
}

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `send_private` → `sendPrivate` (Tauri's default for argument keys; the UI's names).
fn camel(snake: &str) -> String {
    let mut out = String::new();
    let mut upper = false;
    for c in snake.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

fn last_segment(ty: &syn::Type) -> Option<&syn::PathSegment> {
    match ty {
        syn::Type::Path(p) => p.path.segments.last(),
        syn::Type::Reference(r) => last_segment(&r.elem),
        _ => None,
    }
}

fn type_args(segment: &syn::PathSegment) -> Vec<&syn::Type> {
    match &segment.arguments {
        syn::PathArguments::AngleBracketed(a) => a
            .args
            .iter()
            .filter_map(|arg| match arg {
                syn::GenericArgument::Type(t) => Some(t),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// The TypeScript twin of a Rust type (as serde and ts-rs write it); names of the app's
/// own types go into `named`.
fn ts_type(ty: &syn::Type, named: &mut BTreeSet<String>) -> String {
    if let syn::Type::Tuple(t) = ty {
        assert!(t.elems.is_empty(), "a command uses a tuple type");
        return "null".into();
    }
    let segment = last_segment(ty).expect("a command uses a type that is not a path");
    let ident = segment.ident.to_string();
    let args = type_args(segment);
    let first = || {
        *args
            .first()
            .unwrap_or_else(|| panic!("{ident} without a type parameter"))
    };
    match ident.as_str() {
        "String" | "str" => "string".into(),
        "bool" => "boolean".into(),
        "u8" | "u16" | "u32" | "u64" | "usize" | "i8" | "i16" | "i32" | "i64" | "isize" | "f32"
        | "f64" => "number".into(),
        "Option" => format!("{} | null", ts_type(first(), named)),
        "Vec" => {
            let inner = ts_type(first(), named);
            if inner.contains(' ') {
                format!("({inner})[]")
            } else {
                format!("{inner}[]")
            }
        }
        // A command's result: what it resolves to (the error is a `CommandError`).
        "Result" => ts_type(first(), named),
        _ => {
            assert!(args.is_empty(), "a command uses the generic type {ident}");
            named.insert(ident.clone());
            ident
        }
    }
}

fn docs(attrs: &[syn::Attribute]) -> Vec<String> {
    attrs
        .iter()
        .filter_map(|a| match &a.meta {
            syn::Meta::NameValue(nv) if nv.path.is_ident("doc") => match &nv.value {
                syn::Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Str(s),
                    ..
                }) => Some(s.value().trim().to_owned()),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

fn is_command(f: &syn::ItemFn) -> bool {
    f.attrs.iter().any(|a| {
        let segments: Vec<String> = a
            .path()
            .segments
            .iter()
            .map(|s| s.ident.to_string())
            .collect();
        segments == ["tauri", "command"] || segments == ["command"]
    })
}

/// Reads a command's signature from `src/MODULE.rs`.
fn read_command(module: &str, function: &str, named: &mut BTreeSet<String>) -> Command {
    let path = manifest_dir().join("src").join(format!("{module}.rs"));
    let source = std::fs::read_to_string(&path).unwrap();
    let file = syn::parse_file(&source).unwrap();
    let f = file
        .items
        .iter()
        .find_map(|item| match item {
            syn::Item::Fn(f) if f.sig.ident == function => Some(f),
            _ => None,
        })
        .unwrap_or_else(|| panic!("{module}::{function} is not in {}", path.display()));
    assert!(
        is_command(f),
        "{module}::{function} is not a #[tauri::command]"
    );
    let mut params = Vec::new();
    for input in &f.sig.inputs {
        let syn::FnArg::Typed(arg) = input else {
            panic!("{module}::{function} takes self");
        };
        let injected =
            last_segment(&arg.ty).is_some_and(|s| INJECTED.contains(&&*s.ident.to_string()));
        if injected {
            continue;
        }
        let syn::Pat::Ident(name) = &*arg.pat else {
            panic!("{module}::{function} has a parameter that is not a plain name");
        };
        params.push((name.ident.to_string(), ts_type(&arg.ty, named)));
    }
    let result = match &f.sig.output {
        syn::ReturnType::Default => "null".into(),
        syn::ReturnType::Type(_, ty) => ts_type(ty, named),
    };
    Command {
        name: function.to_owned(),
        docs: docs(&f.attrs),
        params,
        result,
    }
}

fn commands() -> (Vec<Command>, BTreeSet<String>) {
    let mut named = BTreeSet::new();
    let commands = COMMANDS
        .iter()
        .map(|(module, function)| read_command(module, function, &mut named))
        .collect();
    (commands, named)
}

/// `ui/src/lib/bindings/commands.ts`.
fn typescript() -> String {
    let (commands, named) = commands();
    let mut out = String::from(
        "// Generated from src-tauri/src/command_list.rs and each command's signature by\n\
         // `cargo test -p cryptocat-desktop command_bindings` (with UPDATE_BINDINGS=1).\n\
         // Do not edit by hand.\n\n",
    );
    let names: Vec<&str> = named.iter().map(String::as_str).collect();
    out.push_str(&format!(
        "import type {{ {} }} from './index';\n\n",
        names.join(", ")
    ));
    out.push_str(
        "/** How a command is called: its name and its arguments by name (ipc.ts gives Tauri's\n \
         * invoke, which rejects with a `CommandError`). */\n\
         export type Call = <T>(command: string, args: Record<string, unknown>) => Promise<T>;\n\n\
         /** Every command of the app, typed as Rust declares it. */\n\
         export function commands(call: Call) {\n  return {\n",
    );
    for c in &commands {
        if !c.docs.is_empty() {
            out.push_str("    /**\n");
            for line in &c.docs {
                if line.is_empty() {
                    out.push_str("     *\n");
                } else {
                    out.push_str(&format!("     * {}\n", line.replace("*/", "* /")));
                }
            }
            out.push_str("     */\n");
        }
        let params: Vec<String> = c
            .params
            .iter()
            .map(|(name, ty)| format!("{}: {ty}", camel(name)))
            .collect();
        let args: Vec<String> = c.params.iter().map(|(name, _)| camel(name)).collect();
        out.push_str(&format!(
            "    {}: ({}): Promise<{}> => call('{}', {{ {} }}),\n",
            camel(&c.name),
            params.join(", "),
            c.result,
            c.name,
            args.join(", ")
        ));
    }
    out.push_str("  };\n}\n");
    out.replace("{  }", "{}")
}

/// `capabilities/main.json`.
fn capability() -> String {
    let mut permissions = vec![
        "core:event:allow-listen".to_owned(),
        "core:event:allow-unlisten".to_owned(),
    ];
    permissions.extend(
        COMMANDS
            .iter()
            .map(|(_, f)| format!("allow-{}", f.replace('_', "-"))),
    );
    let value = serde_json::json!({
        "$schema": "../gen/schemas/desktop-schema.json",
        "identifier": "main",
        "description": CAPABILITY_DESCRIPTION,
        "windows": ["main"],
        "permissions": permissions,
    });
    let mut out = serde_json::to_string_pretty(&value).unwrap();
    out.push('\n');
    out
}

/// Compares `path` with `fresh`, or rewrites it with `UPDATE_BINDINGS=1`.
fn check_or_update(path: &Path, fresh: &str) {
    if std::env::var_os("UPDATE_BINDINGS").is_some() {
        std::fs::write(path, fresh).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed == fresh,
        "{} is stale: run UPDATE_BINDINGS=1 cargo test -p cryptocat-desktop command_bindings \
         and commit it",
        path.display()
    );
}

#[test]
fn command_bindings() {
    let dir = manifest_dir();
    check_or_update(
        &dir.join("../ui/src/lib/bindings/commands.ts"),
        &typescript(),
    );
    check_or_update(&dir.join("capabilities/main.json"), &capability());
}

#[test]
fn every_named_type_is_in_the_bindings() {
    let (_, named) = commands();
    let bindings = crate::dto::bindings();
    for name in named {
        assert!(
            bindings.contains(&format!("export type {name} =")),
            "a command uses {name}, which ui/src/lib/bindings/index.ts does not declare"
        );
    }
}

#[test]
fn each_command_is_listed_once_and_every_command_is_listed() {
    let listed: BTreeSet<&str> = COMMANDS.iter().map(|(_, f)| *f).collect();
    assert_eq!(listed.len(), COMMANDS.len(), "a command is listed twice");
    // Every #[tauri::command] in the crate's sources is in the list (one the list lacks
    // would compile and never be callable).
    let mut found = BTreeSet::new();
    for entry in std::fs::read_dir(manifest_dir().join("src")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let source = std::fs::read_to_string(&path).unwrap();
        let file = syn::parse_file(&source).unwrap();
        for item in &file.items {
            if let syn::Item::Fn(f) = item {
                if is_command(f) {
                    found.insert(f.sig.ident.to_string());
                }
            }
        }
    }
    let found: BTreeSet<&str> = found.iter().map(String::as_str).collect();
    assert_eq!(found, listed);
}

#[test]
fn types_map_as_serde_writes_them() {
    let mut named = BTreeSet::new();
    let ty = |s: &str| syn::parse_str::<syn::Type>(s).unwrap();
    assert_eq!(
        ts_type(&ty("Option<Vec<u8>>"), &mut named),
        "number[] | null"
    );
    assert_eq!(
        ts_type(&ty("Vec<Option<String>>"), &mut named),
        "(string | null)[]"
    );
    assert_eq!(ts_type(&ty("Result<(), CommandError>"), &mut named), "null");
    assert_eq!(ts_type(&ty("Result<Joined>"), &mut named), "Joined");
    assert_eq!(named.into_iter().collect::<Vec<_>>(), ["Joined"]);
    assert_eq!(camel("set_unread_total"), "setUnreadTotal");
}
