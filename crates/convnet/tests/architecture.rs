//! The house rules of the library's module tree, checked on its sources:
//!
//! - each top-level module is one layer, and a module uses only layers below its own:
//!   basic types (`error`, `tensor`, `rng`, `parallel`, `numbers`) → `kernels` → `nn` → `data` → `io` →
//!   `train` → `viz` → `presets`, `bench`;
//! - no two modules (files) use each other, directly or round a longer loop.
//!
//! References are read from the code (`crate::…`, `super::…` paths, `use` groups included);
//! comments and `#[cfg(test)]` items are left out, and a module naming its own submodules
//! (declaring or re-exporting them) is containment, not use. Run:
//! `cargo test -p convnet --test architecture`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, bottom first.
const LAYERS: &[&[&str]] = &[
    &["error", "tensor", "rng", "parallel", "numbers"],
    &["kernels"],
    &["nn"],
    &["data"],
    &["io"],
    &["train"],
    &["viz"],
    &["presets", "bench"],
];

fn rank(top: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&top))
}

/// Every `.rs` file under `dir`.
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The module path of a source file (`nn/model/mod.rs` → `["nn", "model"]`).
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel.iter().map(|c| c.to_string_lossy().into_owned()).collect();
    if parts.last().is_some_and(|l| l == "mod" || l == "lib") {
        parts.pop();
    }
    parts
}

/// The code of a file without comments and without `#[cfg(test)]` items.
fn code_without_tests(text: &str) -> String {
    let mut out = String::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let t = line.trim_start();
        if t.starts_with("//") {
            continue;
        }
        if t.starts_with("#[cfg(test)]") {
            // Skip the item: up to the `;` or the brace that closes it.
            let (mut depth, mut opened) = (0i32, false);
            for l in lines.by_ref() {
                for ch in l.chars() {
                    match ch {
                        '{' => {
                            depth += 1;
                            opened = true;
                        }
                        '}' => depth -= 1,
                        _ => {}
                    }
                }
                if (opened && depth <= 0) || (!opened && l.trim_end().ends_with(';')) {
                    break;
                }
            }
            continue;
        }
        let code = line.split("//").next().unwrap_or("");
        out.push_str(code);
        out.push('\n');
    }
    out
}

/// Paths that start at `crate::` or `super::`, with `use` groups expanded one path each.
fn referenced_paths(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    for start in ["crate::", "super::"] {
        let mut from = 0;
        while let Some(i) = code[from..].find(start) {
            let at = from + i;
            from = at + start.len();
            let before = code[..at].chars().last();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue; // part of a longer path (super::super::x is read from its first super)
            }
            expand(&code[at..], String::new(), &mut out);
        }
    }
    out
}

/// Reads one path at the start of `text`, expanding a `{a, b::c}` group into each path.
fn expand(text: &str, prefix: String, out: &mut Vec<String>) {
    let end = text.find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':')).unwrap_or(text.len());
    let head = format!("{prefix}{}", &text[..end]);
    if text[end..].starts_with('{') && head.ends_with("::") {
        let inner = &text[end + 1..];
        let (mut depth, mut item_start) = (0, 0);
        for (i, ch) in inner.char_indices() {
            match ch {
                '{' => depth += 1,
                '}' if depth == 0 => {
                    expand(inner[item_start..i].trim_start(), head.clone(), out);
                    return;
                }
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    expand(inner[item_start..i].trim_start(), head.clone(), out);
                    item_start = i + 1;
                }
                _ => {}
            }
        }
    } else {
        out.push(head.trim_end_matches("::").to_string());
    }
}

/// The deepest existing module a path names, from module `from`.
fn resolve(path: &str, from: &[String], is_dir_module: bool, modules: &BTreeSet<Vec<String>>) -> Option<Vec<String>> {
    let mut parts = path.split("::").filter(|p| !p.is_empty());
    let mut base: Vec<String> = match parts.next()? {
        "crate" => Vec::new(),
        "super" => {
            // In `a/b.rs` (module a::b) super is `a`; in `a/b/mod.rs` (module a::b) it is `a` too.
            let _ = is_dir_module;
            from[..from.len().saturating_sub(1)].to_vec()
        }
        _ => return None,
    };
    let rest: Vec<&str> = parts.collect();
    let mut i = 0;
    while i < rest.len() && rest[i] == "super" {
        base.pop();
        i += 1;
    }
    let mut best = base.clone();
    for p in &rest[i..] {
        base.push(p.to_string());
        if modules.contains(&base) {
            best = base.clone();
        } else {
            break;
        }
    }
    (!best.is_empty()).then_some(best)
}

/// Module → the modules it uses.
fn graph() -> BTreeMap<Vec<String>, BTreeSet<Vec<String>>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let modules: BTreeSet<Vec<String>> = files.iter().map(|f| module_of(&src, f)).collect();
    let mut g: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    for f in &files {
        let m = module_of(&src, f);
        if m.is_empty() {
            continue; // lib.rs: the crate's facade
        }
        let is_dir = f.file_name().is_some_and(|n| n == "mod.rs");
        let code = code_without_tests(&std::fs::read_to_string(f).unwrap());
        let uses = g.entry(m.clone()).or_default();
        for p in referenced_paths(&code) {
            if let Some(target) = resolve(&p, &m, is_dir, &modules) {
                // A module naming itself or its own submodules is containment.
                if !target.starts_with(&m) {
                    uses.insert(target);
                }
            }
        }
    }
    g
}

#[test]
fn every_module_uses_only_layers_below_its_own() {
    let g = graph();
    let mut wrong = Vec::new();
    for (m, uses) in &g {
        let Some(r) = rank(&m[0]) else {
            wrong.push(format!("{} is in no layer (add it to LAYERS and ARCHITECTURE.md)", m.join("::")));
            continue;
        };
        for u in uses {
            let ru = rank(&u[0]).unwrap_or(usize::MAX);
            // Rooms of one layer may use each other only in the basic layer (tensor uses error);
            // cycles are caught by `no_module_cycles`.
            let allowed = m[0] == u[0] || ru < r || (ru == r && r == 0);
            if !allowed {
                wrong.push(format!("{} uses {} (a layer not below its own)", m.join("::"), u.join("::")));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // The check reads real references: the fit loop uses the model, checkpoints and callbacks.
    let fit = &g[&vec!["train".to_string(), "fit".to_string()]];
    for want in [["nn", "model"], ["train", "checkpoint"]] {
        assert!(fit.contains(&want.map(String::from).to_vec()), "train::fit should use {want:?}: {fit:?}");
    }
}

#[test]
fn no_module_cycles() {
    let g = graph();
    // Depth-first search; a back edge closes a cycle, reported with its path.
    fn visit(
        m: &Vec<String>,
        g: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        state: &mut BTreeMap<Vec<String>, u8>,
        stack: &mut Vec<Vec<String>>,
        cycles: &mut Vec<String>,
    ) {
        state.insert(m.clone(), 1);
        stack.push(m.clone());
        for u in g.get(m).into_iter().flatten() {
            match state.get(u).copied().unwrap_or(0) {
                0 => visit(u, g, state, stack, cycles),
                1 => {
                    let from = stack.iter().position(|s| s == u).unwrap_or(0);
                    let mut path: Vec<String> = stack[from..].iter().map(|s| s.join("::")).collect();
                    path.push(u.join("::"));
                    cycles.push(path.join(" → "));
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(m.clone(), 2);
    }
    let mut state = BTreeMap::new();
    let mut cycles = Vec::new();
    for m in g.keys() {
        if state.get(m).copied().unwrap_or(0) == 0 {
            visit(m, &g, &mut state, &mut Vec::new(), &mut cycles);
        }
    }
    assert!(cycles.is_empty(), "module cycles:\n{}", cycles.join("\n"));
}

#[test]
#[ignore = "prints the graph"]
fn print_graph() {
    for (m, uses) in graph() {
        let u: Vec<String> = uses.iter().map(|u| u.join("::")).collect();
        println!("{} -> {}", m.join("::"), u.join(", "));
    }
}

#[test]
fn the_reader_sees_through_use_groups() {
    let code = code_without_tests(
        "use crate::nn::{layers::Conv2D, model::{Logs, Sequential}};\n// crate::viz in a comment\n\
         #[cfg(test)]\nmod tests {\n    use crate::bench;\n}\nfn f() { super::x::y(); }\n",
    );
    let paths = referenced_paths(&code);
    assert_eq!(
        paths,
        ["crate::nn::layers::Conv2D", "crate::nn::model::Logs", "crate::nn::model::Sequential", "super::x::y"]
    );
}
